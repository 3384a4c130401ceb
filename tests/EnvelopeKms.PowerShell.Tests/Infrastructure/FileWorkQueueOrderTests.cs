using EnvelopeKms.PowerShell.Infrastructure;
using Xunit;

namespace EnvelopeKms.PowerShell.Tests.Infrastructure;

/// <summary>
/// The queue's output order and stop rule: completions handed on in input order whatever order the files finish
/// in, and a stopping completion that cancels the rest. Completion order is forced with gates, not timing.
/// </summary>
public sealed class FileWorkQueueOrderTests
{
    private static void WaitFor(Func<bool> condition)
        => Assert.True(SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(30)), "timed out");

    [Fact]
    public void Completions_AreHandedOnInInputOrder_WhenFilesFinishInReverse()
    {
        const int count = 6;
        var gates = Enumerable.Range(0, count).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var handled = new List<string>();
        int finished = 0;
        using var queue = new FileWorkQueue(count, c => handled.Add(c.Item.Source), (_, _) => { }, CancellationToken.None);
        for (int i = 0; i < count; i++)
        {
            int index = i;
            queue.Start(new FileWorkQueue.WorkItem($"f{index}", 1), async (item, ct) =>
            {
                await gates[index].Task.WaitAsync(ct).ConfigureAwait(false);
                Interlocked.Increment(ref finished);
                return item.Source;
            });
        }
        // The last five finish first: nothing may be handed on while the first is still running.
        for (int i = count - 1; i >= 1; i--) gates[i].SetResult();
        WaitFor(() => Volatile.Read(ref finished) == count - 1);
        queue.HandleAvailable();
        Assert.Empty(handled);
        gates[0].SetResult();
        queue.Drain();
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"f{i}"), handled);
        Assert.Equal(count, queue.CompletedCount);
    }

    [Fact]
    public void APostedCompletion_TakesItsInputsPlace()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new List<string>();
        using var queue = new FileWorkQueue(2, c => handled.Add(c.Item.Source + (c.Error is null ? "" : "!")), (_, _) => { }, CancellationToken.None);
        queue.Start(new FileWorkQueue.WorkItem("a", 1), async (item, ct) => { await gate.Task.WaitAsync(ct).ConfigureAwait(false); return null; });
        queue.Post(new FileWorkQueue.WorkItem("refused", 0), null, new IOException("exists"));
        queue.Start(new FileWorkQueue.WorkItem("c", 1), (_, _) => Task.FromResult<object?>(null));
        queue.HandleAvailable();
        Assert.Empty(handled); // "refused" and "c" wait for "a"
        gate.SetResult();
        queue.Drain();
        Assert.Equal(["a", "refused!", "c"], handled);
    }

    [Fact]
    public void AStoppingFailure_CancelsTheRest_HandsOnEarlierSuccesses_ThenItself_AndStartsNothingMore()
    {
        var slowGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new List<FileWorkQueue.Completion>();
        int cancelled = 0, startedLater = 0;
        var queue = new FileWorkQueue(3, handled.Add, (_, _) => { }, CancellationToken.None) { StopsBatch = _ => true };
        // Input 0 completes at once but waits behind nothing; input 1 runs until cancelled; input 2 fails.
        queue.Start(new FileWorkQueue.WorkItem("done", 1), (_, _) => Task.FromResult<object?>("ok"));
        queue.Start(new FileWorkQueue.WorkItem("in flight", 1), async (_, ct) =>
        {
            try { await slowGate.Task.WaitAsync(ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { Interlocked.Increment(ref cancelled); throw; }
            return null;
        });
        var failing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        queue.Start(new FileWorkQueue.WorkItem("fails", 1), async (_, ct) => { await failing.Task.WaitAsync(ct).ConfigureAwait(false); throw new IOException("bad"); });
        WaitFor(() => { queue.HandleAvailable(); return handled.Count == 1; });
        failing.SetResult();
        WaitFor(() => { queue.HandleAvailable(); return queue.Stopped; });
        Assert.Equal(1, Volatile.Read(ref cancelled));
        Assert.Equal(["done", "fails"], handled.Select(c => c.Item.Source));
        Assert.IsType<IOException>(handled[^1].Error);
        // After the stop nothing starts and nothing more is handed on.
        queue.Start(new FileWorkQueue.WorkItem("later", 1), (_, _) => { Interlocked.Increment(ref startedLater); return Task.FromResult<object?>(null); });
        queue.Post(new FileWorkQueue.WorkItem("later refused", 0), null, new IOException("x"));
        queue.Drain();
        queue.Dispose();
        Assert.Equal(0, startedLater);
        Assert.Equal(2, handled.Count);
    }

    [Fact]
    public void WithoutAStop_AFailureIsHandedOnInPlace_AndLaterFilesStillRun()
    {
        var handled = new List<string>();
        using var queue = new FileWorkQueue(2, c => handled.Add(c.Item.Source), (_, _) => { }, CancellationToken.None) { StopsBatch = _ => false };
        queue.Start(new FileWorkQueue.WorkItem("a", 1), (_, _) => throw new IOException("bad"));
        for (int i = 0; i < 5; i++) queue.Start(new FileWorkQueue.WorkItem($"b{i}", 1), (item, _) => Task.FromResult<object?>(item.Source));
        queue.Drain();
        Assert.Equal(["a", "b0", "b1", "b2", "b3", "b4"], handled);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(0, 10, 0)]
    [InlineData(5, 5, 50)]
    [InlineData(99, 1, 99)]
    [InlineData(999, 1, 99)]
    [InlineData(10, 0, 100)]
    public void TheBatchBar_ShowsTheShareDone_NeverFullWhileFilesRun(int completed, int inFlight, int expected)
        => Assert.Equal(expected, ProgressReporter.BatchPercent(completed, inFlight));
}
