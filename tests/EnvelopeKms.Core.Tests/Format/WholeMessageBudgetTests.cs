using EnvelopeKms.Format;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// The process-wide budget of whole-message operations (issue 18: four files at once multiplied a per-file cap into
/// gigabytes): requests wait, first come first served, until their bytes are free; one larger than the budget runs
/// alone; a holder's nested request does not wait for itself; a cancelled wait frees its place. Run with no other
/// test, since it changes the process's budget.
/// </summary>
[Collection(nameof(Files.AllocationCounting))]
public class WholeMessageBudgetTests : IDisposable
{
    private const long MiB = 1 << 20;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public WholeMessageBudgetTests() => WholeMessageBudget.Capacity = 100 * MiB;

    public void Dispose() => WholeMessageBudget.Capacity = WholeMessageBudget.DefaultCapacity;

    /// <summary>Starts an operation that holds <paramref name="bytes"/> until <paramref name="release"/> completes; <paramref name="started"/> completes when it runs.</summary>
    private static Task Hold(long bytes, TaskCompletionSource started, Task release, CancellationToken cancellationToken = default)
        => WholeMessageBudget.RunAsync(bytes, async () =>
        {
            started.TrySetResult();
            await release;
        }, cancellationToken);

    private static TaskCompletionSource Signal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [Fact]
    public async Task RequestsWaitInOrderUntilTheirBytesAreFree()
    {
        var (aStarted, bStarted, cStarted) = (Signal(), Signal(), Signal());
        var (aRelease, bRelease, cRelease) = (Signal(), Signal(), Signal());
        var a = Hold(60 * MiB, aStarted, aRelease.Task);
        await aStarted.Task.WaitAsync(Timeout);
        var b = Hold(60 * MiB, bStarted, bRelease.Task);
        var c = Hold(10 * MiB, cStarted, cRelease.Task); // would fit now, but B came first and must not starve
        await Task.Delay(200);
        Assert.False(bStarted.Task.IsCompleted);
        Assert.False(cStarted.Task.IsCompleted);
        Assert.Equal(60 * MiB, WholeMessageBudget.Reserved);

        aRelease.SetResult();
        await Task.WhenAll(bStarted.Task, cStarted.Task).WaitAsync(Timeout); // 60 + 10 fit together
        Assert.Equal(70 * MiB, WholeMessageBudget.Reserved);
        bRelease.SetResult();
        cRelease.SetResult();
        await Task.WhenAll(a, b, c).WaitAsync(Timeout);
        Assert.Equal(0, WholeMessageBudget.Reserved);
    }

    [Fact]
    public async Task ARequestLargerThanTheBudget_RunsAlone()
    {
        var (bigStarted, smallStarted) = (Signal(), Signal());
        var (bigRelease, smallRelease) = (Signal(), Signal());
        var big = Hold(5L << 30, bigStarted, bigRelease.Task);
        await bigStarted.Task.WaitAsync(Timeout);
        Assert.Equal(100 * MiB, WholeMessageBudget.Reserved);
        var small = Hold(1 * MiB, smallStarted, smallRelease.Task);
        await Task.Delay(200);
        Assert.False(smallStarted.Task.IsCompleted);
        bigRelease.SetResult();
        await smallStarted.Task.WaitAsync(Timeout);
        smallRelease.SetResult();
        await Task.WhenAll(big, small).WaitAsync(Timeout);
        Assert.Equal(0, WholeMessageBudget.Reserved);
    }

    [Fact]
    public async Task ANestedRequestOfAHolder_DoesNotWaitForItself()
    {
        int result = await WholeMessageBudget.RunAsync(100 * MiB,
            () => WholeMessageBudget.RunAsync(50 * MiB, () => Task.FromResult(42), CancellationToken.None), CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(42, result);
        Assert.Equal(0, WholeMessageBudget.Reserved);
    }

    [Fact]
    public async Task ACancelledWait_EndsWithCancellation_AndLetsTheNextOneIn()
    {
        var (aStarted, bStarted, cStarted) = (Signal(), Signal(), Signal());
        var aRelease = Signal();
        var a = Hold(90 * MiB, aStarted, aRelease.Task);
        await aStarted.Task.WaitAsync(Timeout);
        using var cancel = new CancellationTokenSource();
        var b = Hold(50 * MiB, bStarted, Task.CompletedTask, cancel.Token);
        var c = Hold(10 * MiB, cStarted, Task.CompletedTask); // fits, but waits behind B
        await Task.Delay(200);
        Assert.False(cStarted.Task.IsCompleted);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b.WaitAsync(Timeout));
        await c.WaitAsync(Timeout); // B's place is freed: C runs beside A
        Assert.False(bStarted.Task.IsCompleted);
        aRelease.SetResult();
        await a.WaitAsync(Timeout);
        Assert.Equal(0, WholeMessageBudget.Reserved);
    }

    [Fact]
    public async Task AFailingOperation_FreesItsBytes()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(() => WholeMessageBudget.RunAsync(80 * MiB, () => Task.FromException<int>(new InvalidOperationException()), CancellationToken.None));
        Assert.Equal(0, WholeMessageBudget.Reserved);
        Assert.Throws<ArgumentOutOfRangeException>(() => WholeMessageBudget.Capacity = 1000);
    }
}
