using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Runs per-file work concurrently (at most ThrottleLimit at once) while everything that talks to PowerShell —
/// output, errors, verbose, progress — happens on the pipeline thread: workers post completions to a queue that the
/// pipeline thread drains whenever it is waiting for a free slot, between records, and at the end.
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
    }

    private readonly BlockingCollection<Completion> _completed = new();
    private readonly SemaphoreSlim _slots;
    private readonly List<WorkItem> _inFlight = [];
    private readonly CancellationToken _cancellationToken;
    private readonly Action<Completion> _onCompleted;
    private readonly Action<IReadOnlyList<WorkItem>, int> _onTick;
    private readonly Stopwatch _sinceTick = Stopwatch.StartNew();
    private int _completedCount;

    public FileWorkQueue(int throttleLimit, Action<Completion> onCompleted, Action<IReadOnlyList<WorkItem>, int> onTick, CancellationToken cancellationToken)
    {
        _slots = new SemaphoreSlim(Math.Max(1, throttleLimit));
        _onCompleted = onCompleted;
        _onTick = onTick;
        _cancellationToken = cancellationToken;
    }

    public int CompletedCount => _completedCount;

    /// <summary>Starts <paramref name="work"/> when a slot is free, handling completions while it waits. Pipeline thread only.</summary>
    public void Start(WorkItem item, Func<WorkItem, CancellationToken, Task<object?>> work)
    {
        while (!_slots.Wait(0)) HandleNext(TimeSpan.FromMilliseconds(250));
        _inFlight.Add(item);
        item.Task = Task.Run(async () =>
        {
            Completion completion;
            try { completion = new Completion(item, await work(item, _cancellationToken).ConfigureAwait(false), null); }
            catch (Exception e) { completion = new Completion(item, null, e); }
            // Free the slot before posting: the pipeline thread wakes on the completion and at once tries to take
            // a slot for the next file; posting first made it miss the slot and sleep a full tick (250 ms).
            _slots.Release();
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
        while (_inFlight.Count > 0) HandleNext(TimeSpan.FromMilliseconds(250));
        HandleAvailable();
    }

    private void HandleNext(TimeSpan wait)
    {
        if (_completed.TryTake(out var completion, wait)) Handle(completion);
        Tick();
    }

    private void Handle(Completion completion)
    {
        _inFlight.Remove(completion.Item);
        _completedCount++;
        _onCompleted(completion);
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
        var tasks = _inFlight.Select(i => i.Task).OfType<Task>().ToArray();
        try { Task.WaitAll(tasks, TimeSpan.FromSeconds(30)); } catch (AggregateException) { }
        _completed.Dispose();
        _slots.Dispose();
    }
}
