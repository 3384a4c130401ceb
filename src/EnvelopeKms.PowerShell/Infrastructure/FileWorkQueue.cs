using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Runs per-file work concurrently (at most ThrottleLimit at once) while everything that talks to PowerShell —
/// output, errors, verbose, progress — happens on the pipeline thread: workers post completions to a queue that the
/// pipeline thread drains between records, whenever the backlog is full, and at the end. Files queue up to a
/// backlog well beyond ThrottleLimit, so the pipeline thread keeps binding and checking inputs while the first files
/// wait for their data key from KMS: that round trip overlaps with the pipeline instead of stalling it.
/// <para>
/// Completions are handed on in INPUT order (the order of <see cref="Start"/> and <see cref="Post"/> calls), while
/// the files still run in parallel: a completion waits until every earlier input has completed. What waits is the
/// completion (a result object or an exception), never a file's data: the read-ahead budgets are given back by the
/// worker itself. A completion that <see cref="StopsBatch"/> (a per-file error under -ErrorAction Stop, or one that
/// ends the pipeline) is acted on as soon as it arrives: no file starts after it, files in flight are cancelled and
/// waited for (their pending outputs are removed), the successes of earlier inputs are handed on in order, then the
/// stopping completion itself; anything after it is dropped.
/// </para>
/// <para>
/// Work can be fed one input at a time (ProcessRecord) or as a planned list in input order (EndProcessing): each
/// <see cref="Start"/> or <see cref="Post"/> takes the next position.
/// </para>
/// </summary>
internal sealed class FileWorkQueue : IDisposable
{
    public sealed record Completion(WorkItem Item, object? Result, Exception? Error);

    /// <summary>One file in flight; <see cref="Progress"/> is updated by the worker.</summary>
    public sealed class WorkItem(string source, long length)
    {
        public string Source { get; } = source;
        public long Length { get; } = length;
        public Format.ProgressCounter Progress { get; } = new();
        public Task? Task { get; set; }
        /// <summary>The input's position in the batch, given by the queue.</summary>
        public long Sequence { get; internal set; } = -1;
    }

    /// <summary>
    /// Decides on the pipeline thread, as a completion arrives, whether it stops the batch (see the class remarks).
    /// Default: no completion does.
    /// </summary>
    public Func<Completion, bool> StopsBatch { get; init; } = _ => false;

    private readonly BlockingCollection<Completion> _completed = new();
    /// <summary>Files queued (started or waiting for a worker) before the pipeline thread waits for completions.</summary>
    public const int MaxBacklog = 4096;
    private readonly SemaphoreSlim _running;
    private readonly HashSet<WorkItem> _inFlight = []; // removal per completion must not scan a long backlog
    private readonly CancellationTokenSource _cancellation;
    private readonly CancellationToken _cancellationToken;
    private readonly Action<Completion> _onCompleted;
    /// <summary>Completions that arrived before an earlier input completed, by position.</summary>
    private readonly Dictionary<long, Completion> _waiting = [];
    private long _nextSequence;
    private long _nextToRelease;
    private bool _stopped;
    private bool _disposed;
    private readonly Action<IReadOnlyCollection<WorkItem>, int> _onTick;
    private readonly Stopwatch _sinceTick = Stopwatch.StartNew();
    private int _completedCount;

    public FileWorkQueue(int throttleLimit, Action<Completion> onCompleted, Action<IReadOnlyCollection<WorkItem>, int> onTick, CancellationToken cancellationToken)
    {
        _running = new SemaphoreSlim(Math.Max(1, throttleLimit));
        _onCompleted = onCompleted;
        _onTick = onTick;
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _cancellationToken = _cancellation.Token;
    }

    /// <summary>Completions handed on so far.</summary>
    public int CompletedCount => _completedCount;

    /// <summary>True once a completion stopped the batch: nothing more is started or handed on.</summary>
    public bool Stopped => _stopped;

    /// <summary>
    /// An input that needs no work (refused or skipped before it would start): its completion takes the next
    /// position and is handed on in input order like a file that ran. Pipeline thread only.
    /// </summary>
    public void Post(WorkItem item, object? result, Exception? error)
    {
        if (_stopped) return;
        item.Sequence = _nextSequence++;
        _inFlight.Add(item);
        _completed.Add(new Completion(item, result, error));
        HandleAvailable();
    }

    /// <summary>Queues <paramref name="work"/>; it runs when one of the ThrottleLimit workers is free. Pipeline thread only.</summary>
    public void Start(WorkItem item, Func<WorkItem, CancellationToken, Task<object?>> work)
        => StartCore<IDisposable>(item, null, (i, _, ct) => work(i, ct));

    /// <summary>
    /// Like <see cref="Start"/>, but a small source (<see cref="Files.SmallFile.MaxLength"/>) is first made ready by
    /// <paramref name="readAhead"/> (read whole, and its output created when the bool it gets is true), outside the
    /// ThrottleLimit: while the first files wait for their data key from KMS, the files queued behind them do all
    /// the work that needs no key instead of the cores standing idle for the round trip. At most
    /// <see cref="MaxReadAheadBytes"/> are held, and at most <see cref="MaxOutputsAhead"/> outputs are open;
    /// <paramref name="work"/> gets null when a file was not read ahead (too large, over the budget, or unreadable
    /// just then: the ordinary path then reads it and reports any error). Whatever was made ready is disposed after
    /// <paramref name="work"/>.
    /// </summary>
    public void StartWithReadAhead<T>(WorkItem item, Func<WorkItem, bool, T?> readAhead, Func<WorkItem, T?, CancellationToken, Task<object?>> work)
        where T : class, IDisposable
        => StartCore(item, readAhead, work);

    /// <summary>Plaintext bytes of small files read ahead and not yet processed, at most.</summary>
    public const long MaxReadAheadBytes = 32L << 20;
    private long _readAheadBytes;

    /// <summary>
    /// Outputs created ahead and not yet committed, at most, in the whole process (the descriptor limit is the
    /// process's, and two pipelines may run at once in two runspaces).
    /// </summary>
    public static int MaxOutputsAhead { get; } = OpenFileLimit.OutputsAheadFor(OpenFileLimit.Current);
    private static int _outputsAheadInProcess;

    private void StartCore<T>(WorkItem item, Func<WorkItem, bool, T?>? readAhead, Func<WorkItem, T?, CancellationToken, Task<object?>> work)
        where T : class, IDisposable
    {
        while (_inFlight.Count >= MaxBacklog && !_stopped) HandleNext(TimeSpan.FromMilliseconds(250));
        if (_stopped) return;
        item.Sequence = _nextSequence++;
        _inFlight.Add(item);
        item.Task = Task.Run(async () =>
        {
            Completion completion;
            T? ahead = null;
            // Whether the file counts against the budgets is decided once, here, and undone once, in the finally.
            bool counted = readAhead is not null && item.Length <= Files.SmallFile.MaxLength;
            bool reserved = counted && Interlocked.Add(ref _readAheadBytes, item.Length) <= MaxReadAheadBytes;
            bool outputReserved = reserved && Interlocked.Increment(ref _outputsAheadInProcess) <= MaxOutputsAhead;
            try
            {
                if (reserved && !_cancellationToken.IsCancellationRequested) ahead = readAhead!(item, outputReserved);
                await _running.WaitAsync(_cancellationToken).ConfigureAwait(false);
                try { completion = new Completion(item, await work(item, ahead, _cancellationToken).ConfigureAwait(false), null); }
                finally { _running.Release(); }
            }
            catch (Exception e) { completion = new Completion(item, null, e); }
            finally
            {
                ahead?.Dispose();
                if (counted) Interlocked.Add(ref _readAheadBytes, -item.Length);
                if (reserved) Interlocked.Decrement(ref _outputsAheadInProcess);
            }
            _completed.Add(completion);
        });
        HandleAvailable();
    }

    /// <summary>Handles whatever has completed, without waiting.</summary>
    public void HandleAvailable()
    {
        while (_completed.TryTake(out var completion)) Handle(completion);
        Tick();
    }

    /// <summary>Waits for every file in flight, handling completions and progress as they come.</summary>
    public void Drain()
    {
        while (_inFlight.Count > 0 && !_stopped) HandleNext(TimeSpan.FromMilliseconds(250));
        HandleAvailable();
    }

    private void HandleNext(TimeSpan wait)
    {
        if (_completed.TryTake(out var completion, wait)) Handle(completion);
        Tick();
    }

    /// <summary>A completion has arrived: hand it on when it is the next in input order, or stop the batch.</summary>
    private void Handle(Completion completion)
    {
        if (_stopped) return;
        if (completion.Error is not null && StopsBatch(completion))
        {
            Stop(completion);
            return;
        }
        _waiting.Add(completion.Item.Sequence, completion);
        while (_waiting.Remove(_nextToRelease, out var next))
        {
            _nextToRelease++;
            Release(next);
        }
    }

    private void Release(Completion completion)
    {
        _inFlight.Remove(completion.Item);
        _completedCount++;
        _onCompleted(completion);
    }

    /// <summary>
    /// Cancels every other file and waits for them, hands on the successes of earlier inputs in order, then the
    /// stopping completion (whose handler normally throws: a terminating error, or WriteError under Stop).
    /// </summary>
    private void Stop(Completion stopping)
    {
        _stopped = true;
        _cancellation.Cancel();
        WaitForWorkers();
        while (_completed.TryTake(out var late)) _waiting.TryAdd(late.Item.Sequence, late);
        foreach (var earlier in _waiting.Where(p => p.Key < stopping.Item.Sequence && p.Value.Error is null).OrderBy(p => p.Key).Select(p => p.Value).ToList())
            Release(earlier);
        _waiting.Clear();
        Release(stopping);
        _inFlight.Clear();
    }

    private void WaitForWorkers()
    {
        var tasks = _inFlight.Select(i => i.Task).OfType<Task>().ToArray();
        try { Task.WaitAll(tasks, TimeSpan.FromSeconds(30)); } catch (AggregateException) { }
    }

    private void Tick()
    {
        if (_sinceTick.ElapsedMilliseconds < 250) return;
        _sinceTick.Restart();
        _onTick(_inFlight, _completedCount);
    }

    /// <summary>
    /// After a stop (Ctrl+C) or a terminating error: waits for the workers to see the cancellation and remove their
    /// temp files, so the cmdlet returns with nothing half-written left behind.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _cancellation.Cancel();
        WaitForWorkers();
        _completed.Dispose();
        _running.Dispose();
        _cancellation.Dispose();
    }
}
