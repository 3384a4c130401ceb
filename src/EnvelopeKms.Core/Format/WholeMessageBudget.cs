namespace EnvelopeKms.Format;

/// <summary>
/// One budget of memory, for the whole process, shared by the operations that hold a whole message in memory: the
/// legacy format, Encryption SDK messages and conversions (EKMS streams in frames and needs none). Their per-file
/// caps (256 MiB, 2 GiB − 1 MiB, 1 GiB) are what one file may cost; without a shared budget, files in flight at once
/// multiplied them (an SDK header that authenticates, followed by a sparse tail, forces its body to be read whole,
/// and the header tag does not cover the body's length), so four such files asked for gigabytes.
/// </summary>
/// <remarks>
/// An operation reserves what it may allocate before it allocates, and waits, first come first served, until that
/// much is free; a request larger than the whole budget takes all of it, so it runs alone. The waiting is
/// asynchronous (no thread is blocked) and ends with the operation's cancellation. An operation reserves once: code
/// that runs inside a reservation (a conversion reading an SDK message) reserves nothing more, so a holder never
/// waits for itself.
/// </remarks>
public static class WholeMessageBudget
{
    /// <summary>The default budget: one Encryption SDK message of the largest size (2 GiB − 1 MiB of body) fits.</summary>
    public const long DefaultCapacity = 2L << 30;

    private static readonly object Gate = new();
    private static readonly LinkedList<Waiter> Waiters = new();
    private static readonly AsyncLocal<bool> Holding = new();
    private static long _capacity = DefaultCapacity;
    private static long _inUse;

    /// <summary>
    /// Bytes that whole-message operations may hold at once, in the whole process (at least 1 MiB). Hosts that accept
    /// files from writers they do not trust with memory can lower it; a lower budget makes large files wait for each
    /// other, it refuses none.
    /// </summary>
    public static long Capacity
    {
        get { lock (Gate) return _capacity; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1L << 20);
            lock (Gate)
            {
                _capacity = value;
                GrantWaiting();
            }
        }
    }

    /// <summary>Bytes reserved now.</summary>
    public static long Reserved
    {
        get { lock (Gate) return _inUse; }
    }

    /// <summary>
    /// Runs <paramref name="operation"/> once <paramref name="bytes"/> (at most the whole budget) are reserved for it,
    /// and frees them when it ends, however it ends.
    /// </summary>
    public static async Task<T> RunAsync<T>(long bytes, Func<Task<T>> operation, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operation);
        if (Holding.Value) return await operation().ConfigureAwait(false);
        long amount = await ReserveAsync(Math.Max(0, bytes), cancellationToken).ConfigureAwait(false);
        try
        {
            Holding.Value = true; // flows into the operation's awaits, not back to our caller
            return await operation().ConfigureAwait(false);
        }
        finally
        {
            // A budget of bytes means something only if the bytes come back: a large buffer just dropped would otherwise
            // stay resident beside the next operation's until the GC happens to run (four 256 MiB messages in turn
            // peaked at three buffers). One blocking collection per large message is small beside reading it.
            if (amount >= CollectAbove) GC.Collect(2, GCCollectionMode.Forced, blocking: true);
            Release(amount);
        }
    }

    /// <summary>Reservations from this size up are followed by a full collection when they end.</summary>
    private const long CollectAbove = 64L << 20;

    /// <inheritdoc cref="RunAsync{T}(long, Func{Task{T}}, CancellationToken)"/>
    public static Task RunAsync(long bytes, Func<Task> operation, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operation);
        return RunAsync(bytes, async () =>
        {
            await operation().ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    private static Task<long> ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (Gate)
        {
            long amount = Math.Min(bytes, _capacity);
            if (Waiters.Count == 0 && _inUse + amount <= _capacity)
            {
                _inUse += amount;
                return Task.FromResult(amount);
            }
            waiter = new Waiter(bytes);
            waiter.Node = Waiters.AddLast(waiter);
        }
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Cancellation = cancellationToken.Register(() =>
            {
                lock (Gate)
                {
                    if (waiter.Node?.List is null) return; // granted meanwhile: the operation runs and releases
                    Waiters.Remove(waiter.Node);
                    GrantWaiting(); // the head may have been holding back smaller requests behind it
                }
                waiter.Completion.TrySetCanceled(cancellationToken);
            });
        }
        return waiter.Completion.Task;
    }

    private static void Release(long amount)
    {
        lock (Gate)
        {
            _inUse -= amount;
            GrantWaiting();
        }
    }

    /// <summary>Grants waiting requests in order while the first one fits (a large request is never overtaken). Under the lock.</summary>
    private static void GrantWaiting()
    {
        while (Waiters.First is { } first)
        {
            long amount = Math.Min(first.Value.Bytes, _capacity);
            if (_inUse + amount > _capacity) return;
            _inUse += amount;
            Waiters.RemoveFirst();
            first.Value.Cancellation.Dispose();
            first.Value.Completion.TrySetResult(amount);
        }
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;
        public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Waiter>? Node { get; set; }
        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
