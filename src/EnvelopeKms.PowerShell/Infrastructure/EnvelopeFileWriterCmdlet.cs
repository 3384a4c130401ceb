using System.Management.Automation;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Base of the cmdlets that write one output file per input (Protect- and Unprotect-EnvelopeFile): -Destination,
/// -Force, -PassThru and -ThrottleLimit, the concurrent work queue, progress, and the result/error handling on the
/// pipeline thread.
/// </summary>
public abstract class EnvelopeFileWriterCmdlet : EnvelopeFileCmdlet
{
    private string? _destinationFile;
    private string? _destinationDirectory;
    private int _inputs;
    private FileWorkQueue? _queue;
    private ProgressReporter? _progress;

    /// <summary>A folder for the outputs, or a file name when there is one input. Default: beside each source.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    /// <summary>Overwrite existing outputs.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write a result object for each file written.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Files processed at once.</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = Math.Max(2, Environment.ProcessorCount * 2);

    /// <summary>What the files of this command share, which decides the failures that end the pipeline once instead of once per file.</summary>
    private protected abstract PipelineEnd PipelineEnd { get; }

    /// <summary>The <see cref="PipelineEnd"/> for one failure, when the command's files share more in some steps than in others.</summary>
    private protected virtual PipelineEnd PipelineEndFor(Exception error) => PipelineEnd;

    private protected FileWorkQueue Queue => _queue ?? throw new InvalidOperationException("BeginWriting was not called.");

    /// <summary>Resolves -Destination and starts the work queue; call from BeginProcessing.</summary>
    protected void BeginWriting()
    {
        if (Destination is not null)
        {
            string resolved = ResolveDestination(Destination);
            bool endsWithSeparator = Destination.EndsWith('/') || Destination.EndsWith(System.IO.Path.DirectorySeparatorChar);
            if (Directory.Exists(resolved) || endsWithSeparator)
            {
                if (!Directory.Exists(resolved) && ShouldProcess(resolved, "Create destination directory")) Directory.CreateDirectory(resolved);
                _destinationDirectory = resolved;
            }
            else _destinationFile = resolved;
        }
        _progress = new ProgressReporter(this, MyInvocation.MyCommand.Name);
        _queue = new FileWorkQueue(ThrottleLimit, OnCompleted, _progress.Update, CancellationToken);
    }

    /// <summary>
    /// The output path for <paramref name="source"/>: -Destination when it names a file (one input only), else
    /// <paramref name="outputName"/> in the -Destination folder or beside the source; null when there is no name.
    /// </summary>
    protected string? DestinationFor(string source, string? outputName)
    {
        if (_destinationFile is not null)
        {
            if (++_inputs > 1)
            {
                CancelWork();
                var e = new ArgumentException($"-Destination '{Destination}' names a file, but more than one file was given. Give a folder instead.");
                ThrowTerminatingError(ErrorIds.EnvelopeDestinationNotDirectory.ToRecord(e, Destination));
            }
            return _destinationFile;
        }
        if (outputName is null) return null;
        return System.IO.Path.Combine(_destinationDirectory ?? System.IO.Path.GetDirectoryName(source)!, outputName);
    }

    /// <summary>Writes ResourceExists and returns false when the destination exists and -Force was not given.</summary>
    protected bool CheckDestinationFree(string source, string destination)
    {
        if (Force || !File.Exists(destination)) return true;
        WriteError(ErrorIds.EnvelopeDestinationExists.ToRecord(new Files.DestinationExistsException(destination), source));
        return false;
    }

    /// <summary>Waits for the files in flight and finishes progress; call from EndProcessing.</summary>
    protected void EndWriting()
    {
        Queue.Drain();
        WriteQueuedVerbose();
        _progress!.Complete();
        WriteSkippedDirectorySummary();
    }

    private void OnCompleted(FileWorkQueue.Completion completion)
    {
        WriteQueuedVerbose();
        if (completion.Error is null)
        {
            var result = (EnvelopeFileResult)completion.Result!;
            ModuleState.Current.RememberKey(result.KeyId);
            string region = result.Region is null ? "" : $" (region {result.Region})";
            string done = result.Operation switch { "Protect" => "Encrypted", "Convert" => "Converted", _ => "Decrypted" };
            WriteVerbose($"{done} '{result.Source}' to '{result.Path}' with KMS key {result.KeyId}{region}{(result.SourceRemoved ? "; source removed" : "")}.");
            if (result.SlotProblem is { } slotProblem) WriteWarning($"'{result.Source}': {slotProblem}");
            if (PassThru) WriteObject(result);
            return;
        }
        var record = ErrorMapper.ToErrorRecord(completion.Error, completion.Item.Source);
        if (PipelineEndFor(completion.Error).Ends(ErrorMapper.IdOf(completion.Error)))
        {
            CancelWork();
            ThrowTerminatingError(record);
        }
        WriteError(record);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CancelWork();
            _queue?.Dispose();
        }
        base.Dispose(disposing);
    }
}
