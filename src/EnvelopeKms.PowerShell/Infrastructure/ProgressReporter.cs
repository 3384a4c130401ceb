using System.Diagnostics;
using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Parent progress for the batch and a child bar for a large file in flight, written at most four times a second
/// and only once an operation has run for half a second (so quick runs never flash a bar).
/// </summary>
internal sealed class ProgressReporter(Cmdlet cmdlet, string activity)
{
    private const int BatchId = 1;
    private const int FileId = 2;
    private const long LargeFile = 64L << 20;
    private readonly Stopwatch _elapsed = Stopwatch.StartNew();
    private bool _written;
    private bool _childWritten;

    public void Update(IReadOnlyCollection<FileWorkQueue.WorkItem> inFlight, int completed)
    {
        if (_elapsed.ElapsedMilliseconds < 500) return;
        var current = inFlight.Count > 0 ? inFlight.MaxBy(i => i.Length) : null;
        var batch = new ProgressRecord(BatchId, activity, $"{completed} done, {inFlight.Count} queued or in progress")
        {
            CurrentOperation = current?.Source,
            PercentComplete = BatchPercent(completed, inFlight.Count),
        };
        cmdlet.WriteProgress(batch);
        _written = true;
        if (current is not null && current.Length >= LargeFile)
        {
            long done = current.Progress.Bytes;
            cmdlet.WriteProgress(new ProgressRecord(FileId, System.IO.Path.GetFileName(current.Source), $"{done >> 20} of {current.Length >> 20} MiB")
            {
                ParentActivityId = BatchId,
                PercentComplete = (int)Math.Clamp(done * 100 / Math.Max(1, current.Length), 0, 100),
            });
            _childWritten = true;
        }
    }

    /// <summary>
    /// The share of the inputs seen so far that is done: 0 at "0 done" (never a full bar before anything finished),
    /// at most 99 while files are still in flight (more input may still come down the pipeline).
    /// </summary>
    internal static int BatchPercent(int completed, int inFlight)
    {
        int total = completed + inFlight;
        if (total == 0) return 0;
        int percent = (int)(completed * 100L / total);
        return inFlight > 0 ? Math.Min(percent, 99) : percent;
    }

    public void Complete()
    {
        if (_childWritten) cmdlet.WriteProgress(new ProgressRecord(FileId, "done", "done") { ParentActivityId = BatchId, RecordType = ProgressRecordType.Completed });
        if (_written) cmdlet.WriteProgress(new ProgressRecord(BatchId, activity, "done") { RecordType = ProgressRecordType.Completed });
    }
}
