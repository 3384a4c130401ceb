using System.Management.Automation;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// The parallel part of a file cmdlet (Protect-, Unprotect-, Convert-EnvelopeFile, Update-EnvelopeFileKey): a
/// <see cref="FileWorkQueue"/> whose completions come back on the pipeline thread in input order, progress, and the
/// one result/error rule:
/// <list type="bullet">
/// <item>a success goes to the cmdlet's <c>onSuccess</c> (verbose lines, warnings), then, with -PassThru, to the output;</item>
/// <item>a failure is an error record naming the file; when <see cref="PipelineEnd"/> says it ends the pipeline
/// it is a terminating error, else a non-terminating one;</item>
/// <item>under -ErrorAction Stop (or <c>$ErrorActionPreference = 'Stop'</c>) a per-file failure stops the batch
/// as soon as it arrives: no file starts after it, files in flight are cancelled (their pending outputs removed),
/// files already completed stay.</item>
/// </list>
/// Work is fed one input at a time from ProcessRecord, or as a list planned in input order from EndProcessing:
/// the order of <see cref="Start"/>, <see cref="StartWithReadAhead{T}"/> and <see cref="Refuse"/> calls is the
/// order of the output.
/// </summary>
internal sealed class FileBatch : IDisposable
{
    private readonly PSCmdlet _cmdlet;
    private readonly KmsConnection? _kms;
    private readonly bool _passThru;
    private readonly Func<Exception, PipelineEnd> _pipelineEndFor;
    private readonly Func<object, object?> _onSuccess;
    private readonly bool _tellReadFromWrite;
    private readonly bool _stopOnError;
    private readonly ProgressReporter _progress;
    private readonly FileWorkQueue _queue;

    /// <param name="cmdlet">The cmdlet whose pipeline thread handles the completions.</param>
    /// <param name="kms">The connection whose queued verbose lines are written between completions (null without KMS).</param>
    /// <param name="throttleLimit">Files processed at once.</param>
    /// <param name="passThru">Write each success's output object.</param>
    /// <param name="pipelineEndFor">What the files of the command share, for one failure.</param>
    /// <param name="onSuccess">Reports a result (verbose, warnings) and returns the object -PassThru writes.</param>
    /// <param name="tellReadFromWrite">
    /// Report an I/O or access failure as <see cref="ErrorIds.EnvelopeReadFailed"/> (ReadError) when the source
    /// cannot be read, and as <see cref="ErrorIds.EnvelopeWriteFailed"/> (WriteError) otherwise (an unwritable
    /// destination): for the commands that read one file and write another (Protect, Unprotect, Convert).
    /// </param>
    /// <param name="cancellationToken">The cmdlet's stop token (Ctrl+C, terminating errors).</param>
    public FileBatch(PSCmdlet cmdlet, KmsConnection? kms, int throttleLimit, bool passThru, Func<Exception, PipelineEnd> pipelineEndFor,
        Func<object, object?> onSuccess, bool tellReadFromWrite, CancellationToken cancellationToken)
    {
        _cmdlet = cmdlet;
        _kms = kms;
        _passThru = passThru;
        _pipelineEndFor = pipelineEndFor;
        _onSuccess = onSuccess;
        _tellReadFromWrite = tellReadFromWrite;
        _stopOnError = ErrorActionIsStop(cmdlet);
        _progress = new ProgressReporter(cmdlet, cmdlet.MyInvocation.MyCommand.Name);
        _queue = new FileWorkQueue(throttleLimit, OnCompleted, _progress.Update, cancellationToken) { StopsBatch = StopsBatch };
    }

    /// <summary>Inputs whose completion has been handled.</summary>
    public int CompletedCount => _queue.CompletedCount;

    /// <inheritdoc cref="FileWorkQueue.Start"/>
    public void Start(FileWorkQueue.WorkItem item, Func<FileWorkQueue.WorkItem, CancellationToken, Task<object?>> work) => _queue.Start(item, work);

    /// <inheritdoc cref="FileWorkQueue.StartWithReadAhead{T}"/>
    public void StartWithReadAhead<T>(FileWorkQueue.WorkItem item, Func<FileWorkQueue.WorkItem, bool, T?> readAhead, Func<FileWorkQueue.WorkItem, T?, CancellationToken, Task<object?>> work)
        where T : class, IDisposable
        => _queue.StartWithReadAhead(item, readAhead, work);

    /// <summary>
    /// An input refused before any work (its output exists, it cannot be removed…): its error takes the input's
    /// place in the output order, and under -ErrorAction Stop it stops the batch like any per-file failure.
    /// </summary>
    public void Refuse(string source, Exception error) => _queue.Post(new FileWorkQueue.WorkItem(source, 0), null, error);

    /// <summary>Waits for the files in flight, handling their completions, and finishes progress. From EndProcessing.</summary>
    public void End()
    {
        _queue.Drain();
        _kms?.WriteQueuedVerbose();
        _progress.Complete();
    }

    /// <summary>The -ErrorAction given to the command, else the caller's $ErrorActionPreference.</summary>
    internal static bool ErrorActionIsStop(PSCmdlet cmdlet)
    {
        object? preference = cmdlet.MyInvocation.BoundParameters.TryGetValue("ErrorAction", out var bound) ? bound : cmdlet.GetVariableValue("ErrorActionPreference");
        return LanguagePrimitives.TryConvertTo<ActionPreference>(preference, out var action) && action == ActionPreference.Stop;
    }

    private bool StopsBatch(FileWorkQueue.Completion completion)
        => _stopOnError || _pipelineEndFor(completion.Error!).Ends(ErrorMapper.IdOf(completion.Error!));

    private void OnCompleted(FileWorkQueue.Completion completion)
    {
        _kms?.WriteQueuedVerbose();
        if (completion.Error is null)
        {
            var output = _onSuccess(completion.Result!);
            if (_passThru && output is not null) _cmdlet.WriteObject(output);
            return;
        }
        var record = ErrorMapper.ToErrorRecord(completion.Error, completion.Item.Source);
        var id = ErrorMapper.IdOf(completion.Error);
        if (_tellReadFromWrite && (id == ErrorIds.EnvelopeWriteFailed || id == ErrorIds.EnvelopeAccessDenied))
        {
            // The file system says "denied" or "I/O error" alike for the source and for the destination: the
            // source's readability tells which side failed.
            id = CanRead(completion.Item.Source) ? ErrorIds.EnvelopeWriteFailed : ErrorIds.EnvelopeReadFailed;
            record = id.ToRecord(completion.Error is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : completion.Error, completion.Item.Source);
        }
        if (_pipelineEndFor(completion.Error).Ends(id))
            _cmdlet.ThrowTerminatingError(record); // the queue has stopped: files in flight were cancelled and waited for
        _cmdlet.WriteError(record);
    }

    /// <summary>Whether the source opens for reading now: when it does not, an I/O failure is the source's, not the destination's.</summary>
    private static bool CanRead(string source)
    {
        try
        {
            using var stream = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>After a stop or a terminating error: cancels the files in flight and waits for them to remove their temp files.</summary>
    public void Dispose() => _queue.Dispose();
}
