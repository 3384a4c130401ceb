using EnvelopeKms.PowerShell.Infrastructure;
using Xunit;

namespace EnvelopeKms.PowerShell.Tests.Infrastructure;

/// <summary>
/// The write queue without a pipeline: its throttle, where completions are handled, and the read-ahead budgets
/// (bytes held per queue, outputs open per process). One class, so no other test moves the process-wide count.
/// </summary>
public sealed class FileWorkQueueTests
{
    private sealed class Ahead(Action onDispose) : IDisposable
    {
        public void Dispose() => onDispose();
    }

    private static void WaitFor(Func<bool> condition)
        => Assert.True(SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(30)), "timed out");

    [Fact]
    public void AtMostTheThrottleLimitRun_AndCompletionsAreHandledOnTheCallingThread()
    {
        int running = 0, most = 0, pipelineThread = Environment.CurrentManagedThreadId;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new List<FileWorkQueue.Completion>();
        using var queue = new FileWorkQueue(3, c =>
        {
            Assert.Equal(pipelineThread, Environment.CurrentManagedThreadId);
            handled.Add(c);
        }, (_, _) => { }, CancellationToken.None);
        for (int i = 0; i < 20; i++)
        {
            queue.Start(new FileWorkQueue.WorkItem($"f{i}", 10), async (item, ct) =>
            {
                int now = Interlocked.Increment(ref running);
                InterlockedMax(ref most, now);
                await gate.Task.WaitAsync(ct).ConfigureAwait(false);
                Interlocked.Decrement(ref running);
                return item.Source;
            });
        }
        WaitFor(() => Volatile.Read(ref running) == 3);
        gate.SetResult();
        queue.Drain();
        Assert.Equal(3, most);
        Assert.Equal(20, queue.CompletedCount);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"f{i}").Order(), handled.Select(c => (string)c.Result!).Order());
    }

    [Fact]
    public void AFailure_IsAFileCompletion_NotAnExceptionOfTheQueue()
    {
        var handled = new List<FileWorkQueue.Completion>();
        using var queue = new FileWorkQueue(2, handled.Add, (_, _) => { }, CancellationToken.None);
        queue.Start(new FileWorkQueue.WorkItem("bad", 1), (_, _) => throw new IOException("disk full"));
        queue.Start(new FileWorkQueue.WorkItem("good", 1), (_, _) => Task.FromResult<object?>("ok"));
        queue.Drain();
        Assert.IsType<IOException>(Assert.Single(handled, c => c.Item.Source == "bad").Error);
        Assert.Equal("ok", Assert.Single(handled, c => c.Item.Source == "good").Result);
    }

    [Fact]
    public void ReadAhead_HoldsAtMostTheByteBudget_AndOnlySmallFiles()
    {
        const int size = Files.SmallFile.MaxLength;
        int fit = (int)(FileWorkQueue.MaxReadAheadBytes / size);
        int readAhead = 0, withoutAhead = 0, disposed = 0, started = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var queue = new FileWorkQueue(1, _ => { }, (_, _) => { }, CancellationToken.None);
        for (int i = 0; i < fit + 40; i++)
        {
            queue.StartWithReadAhead(new FileWorkQueue.WorkItem($"f{i}", size), (_, _) =>
            {
                Interlocked.Increment(ref readAhead);
                return new Ahead(() => Interlocked.Increment(ref disposed));
            }, async (_, ahead, ct) =>
            {
                Interlocked.Increment(ref started);
                if (ahead is null) Interlocked.Increment(ref withoutAhead);
                await gate.Task.WaitAsync(ct).ConfigureAwait(false);
                return null;
            });
        }
        // A file larger than a small file is never read ahead, whatever the budget.
        bool largeReadAhead = false;
        queue.StartWithReadAhead(new FileWorkQueue.WorkItem("large", size + 1), (_, _) => { largeReadAhead = true; return new Ahead(() => { }); },
            (_, _, _) => Task.FromResult<object?>(null));
        WaitFor(() => Volatile.Read(ref readAhead) == fit && Volatile.Read(ref started) == 1);
        Thread.Sleep(200); // the 40 over the budget have had their chance
        Assert.Equal(fit, Volatile.Read(ref readAhead));
        gate.SetResult();
        queue.Drain();
        Assert.Equal(40, withoutAhead);
        Assert.Equal(fit, disposed);
        Assert.False(largeReadAhead);

        // Everything released: the next small file is read ahead again.
        bool again = false;
        queue.StartWithReadAhead(new FileWorkQueue.WorkItem("next", size), (_, _) => new Ahead(() => { }),
            (_, ahead, _) => { again = ahead is not null; return Task.FromResult<object?>(null); });
        queue.Drain();
        Assert.True(again);
    }

    [Fact]
    public void OutputsCreatedAhead_StayWithinTheProcessBudget()
    {
        int files = FileWorkQueue.MaxOutputsAhead + 50, withOutput = 0, withoutOutput = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var queue = new FileWorkQueue(1, _ => { }, (_, _) => { }, CancellationToken.None);
        for (int i = 0; i < files; i++)
        {
            queue.StartWithReadAhead(new FileWorkQueue.WorkItem($"f{i}", 100), (_, createOutput) =>
            {
                Interlocked.Increment(ref createOutput ? ref withOutput : ref withoutOutput);
                return new Ahead(() => { });
            }, async (_, _, ct) =>
            {
                await gate.Task.WaitAsync(ct).ConfigureAwait(false);
                return null;
            });
        }
        WaitFor(() => Volatile.Read(ref withOutput) + Volatile.Read(ref withoutOutput) == files);
        Assert.Equal(FileWorkQueue.MaxOutputsAhead, withOutput);
        Assert.Equal(50, withoutOutput);
        gate.SetResult();
        queue.Drain();
    }

    [Fact]
    public void AfterCancellation_WaitingFilesCompleteAsStopped_WithoutReadingAhead()
    {
        using var stop = new CancellationTokenSource();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new List<FileWorkQueue.Completion>();
        int readAhead = 0;
        using var queue = new FileWorkQueue(1, handled.Add, (_, _) => { }, stop.Token);
        queue.Start(new FileWorkQueue.WorkItem("first", 1), async (_, ct) => { await gate.Task.WaitAsync(ct).ConfigureAwait(false); return null; });
        stop.Cancel();
        queue.StartWithReadAhead(new FileWorkQueue.WorkItem("second", 1), (_, _) => { Interlocked.Increment(ref readAhead); return new Ahead(() => { }); },
            (_, _, _) => Task.FromResult<object?>("ran"));
        queue.Drain();
        Assert.All(handled, c => Assert.IsAssignableFrom<OperationCanceledException>(c.Error));
        Assert.Equal(2, handled.Count);
        Assert.Equal(0, readAhead);
    }

    [Theory]
    [InlineData(1024, 192)]
    [InlineData(256, 0)]
    [InlineData(100, 0)]
    [InlineData(1 << 20, 1024)]
    public void TheOutputBudget_IsAQuarterOfWhatTheDescriptorLimitLeaves(int limit, int expected)
        => Assert.Equal(expected, OpenFileLimit.OutputsAheadFor(limit));

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
