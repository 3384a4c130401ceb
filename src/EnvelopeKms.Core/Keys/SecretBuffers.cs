using System.Collections.Concurrent;

namespace EnvelopeKms.Keys;

/// <summary>
/// Test hook: every array this library allocates to hold key material (data keys, file keys, KMS plaintext and its
/// base64 text, request and response bodies that may carry them) is reported to the tracker of the current async
/// flow, if a test installed one, so the test can prove each is all zeros once the operation is over. Without a
/// tracker (always, outside tests) this is one AsyncLocal read per allocation.
/// </summary>
internal static class SecretBuffers
{
    private static readonly AsyncLocal<ConcurrentQueue<byte[]>?> Tracker = new();

    /// <summary>Starts recording in the current async flow (and the tasks it starts); returns the recording.</summary>
    internal static ConcurrentQueue<byte[]> StartTrackingForTests() => Tracker.Value = new ConcurrentQueue<byte[]>();

    internal static byte[] Track(byte[] buffer)
    {
        Tracker.Value?.Enqueue(buffer);
        return buffer;
    }
}
