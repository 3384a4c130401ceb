using System.Buffers.Binary;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// The multi-threaded path of the frame processor (bodies longer than one ~1 MiB batch): batches are read, sealed or
/// opened and written by several threads, so these check what a race would break — batch order, where the stream is
/// left, which error comes out, and that a failure stops everything.
/// </summary>
public class FramePipelineTests : IDisposable
{
    private const int F = 4096;          // 256 frames per batch
    private const int Batch = 1 << 20;   // plaintext bytes per batch at F
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Every 4 KiB block starts with its own index, so a block written in the wrong place is found.</summary>
    private static byte[] Numbered(int length, int seed)
    {
        var data = Bytes.Random(length, seed);
        for (int i = 0; i + 4 <= length; i += F) BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(i), i / F);
        return data;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(16)] // more threads than cores and than MaxWorkers: capped, and maximally preempted
    public async Task FilesOfManyBatches_RoundTripInOrder_AtEveryParallelism(int parallelism)
    {
        var plaintext = Numbered(24 * Batch + 12345, parallelism);
        string source = _dir.File($"many-{parallelism}.bin"), sealedFile = source + ".ekms", opened = source + ".out";
        File.WriteAllBytes(source, plaintext);
        using var key = _provider.NewKey();
        for (int round = 0; round < 3; round++)
        {
            var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, sealedFile, key, EncryptionContext.Empty, overwrite: true,
                new EnvelopeEncryptOptions { FrameLength = F, Parallelism = parallelism });
            Assert.Equal(plaintext.Length, encrypted.PlaintextLength);
            var decrypted = await EnvelopeFileOperations.DecryptFileAsync(sealedFile, opened, _provider, overwrite: true,
                new EnvelopeDecryptOptions { Parallelism = parallelism });
            Assert.Equal(plaintext.Length, decrypted.PlaintextLength);
            Assert.True(plaintext.AsSpan().SequenceEqual(File.ReadAllBytes(opened)), $"round {round}: the decrypted file differs");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task StreamsThatCannotSeek_AreReadInBatchOrder(int parallelism)
    {
        var plaintext = Numbered(9 * Batch + 77, 3);
        using var key = _provider.NewKey();
        var sealedBytes = new MemoryStream();
        await Envelope.EncryptAsync(new ChunkedStream(plaintext, 100_003), sealedBytes, key, EncryptionContext.Empty,
            new EnvelopeEncryptOptions { FrameLength = F, Parallelism = parallelism });
        var opened = new MemoryStream();
        await Envelope.DecryptAsync(new ChunkedStream(sealedBytes.ToArray(), 65_537), opened, _provider, new EnvelopeDecryptOptions { Parallelism = parallelism });
        Assert.True(plaintext.AsSpan().SequenceEqual(opened.ToArray()));
    }

    [Theory]
    [InlineData(0)]  // exactly whole batches: the empty final frame is a batch of its own
    [InlineData(1)]
    [InlineData(F)]
    public async Task BodiesEndingAtOrJustPastABatchBoundary_RoundTrip(int extra)
    {
        var plaintext = Numbered(4 * Batch + extra, extra);
        using var key = _provider.NewKey();
        var file = await EnvelopeRoundTripTests.EncryptAsync(plaintext, key, options: new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 2 });
        Assert.Equal(plaintext, await EnvelopeRoundTripTests.DecryptAsync(file, _provider, new EnvelopeDecryptOptions { Parallelism = 2 }));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4096)] // a buffered FileStream: the body starts at its logical position, not where the OS offset is
    public async Task AFileStreamIsLeftAtTheEndOfWhatWasProcessed(int bufferSize)
    {
        var plaintext = Numbered(5 * Batch + 999, 5);
        string source = _dir.File("position.bin"), sealedFile = _dir.File("position.ekms");
        File.WriteAllBytes(source, plaintext);
        using var key = _provider.NewKey();
        await using (var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize))
        await using (var output = new FileStream(sealedFile, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize))
        {
            await Envelope.EncryptAsync(input, output, key, EncryptionContext.Empty, new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 3 });
            Assert.Equal(plaintext.Length, input.Position);
        }
        await using (var input = new FileStream(sealedFile, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize))
        {
            var opened = new MemoryStream();
            await Envelope.DecryptAsync(input, opened, _provider, new EnvelopeDecryptOptions { Parallelism = 3 });
            Assert.Equal(input.Length, input.Position);
            Assert.Equal(plaintext, opened.ToArray());
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task ATamperedFrameInALateBatch_IsReportedByItsIndex_AndNoOutputIsLeft(int parallelism)
    {
        var plaintext = Numbered(12 * Batch + 100, 6);
        using var key = _provider.NewKey();
        var file = await EnvelopeRoundTripTests.EncryptAsync(plaintext, key, options: new EnvelopeEncryptOptions { FrameLength = F });
        int headerLength = (await EnvelopeHeader.ReadAsync(new MemoryStream(file))).Length;
        const long frame = 9 * 256 + 17; // 1-based index of a frame in batch 9
        // Two faults: the earlier one must be the one reported, whichever thread meets its batch first.
        file[headerLength + (int)((frame - 1) * (F + 16)) + 5] ^= 1;
        file[headerLength + (int)((frame + 256) * (F + 16)) + 5] ^= 1;
        string sealedFile = _dir.File("tampered.ekms"), opened = _dir.File("tampered.out");
        File.WriteAllBytes(sealedFile, file);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() =>
            EnvelopeFileOperations.DecryptFileAsync(sealedFile, opened, _provider, options: new EnvelopeDecryptOptions { Parallelism = parallelism }));
        Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        Assert.Equal(frame, e.FrameIndex);
        Assert.False(File.Exists(opened));
        Assert.Single(Directory.GetFiles(_dir.Path)); // no temp file either
    }

    [Fact]
    public async Task AFileCutAtABatchBoundary_IsTruncated()
    {
        var plaintext = Numbered(6 * Batch + 50, 8);
        using var key = _provider.NewKey();
        var file = await EnvelopeRoundTripTests.EncryptAsync(plaintext, key, options: new EnvelopeEncryptOptions { FrameLength = F });
        int headerLength = (await EnvelopeHeader.ReadAsync(new MemoryStream(file))).Length;
        var cut = file[..(headerLength + 3 * 256 * (F + 16))];
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeRoundTripTests.DecryptAsync(cut, _provider, new EnvelopeDecryptOptions { Parallelism = 4 }));
        Assert.Equal(EnvelopeError.Truncated, e.Error);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task AReadErrorMidBody_Propagates(int parallelism)
    {
        var plaintext = Numbered(8 * Batch, 9);
        using var key = _provider.NewKey();
        var input = new ChunkedStream(plaintext, Batch / 2) { FailAfterBytes = 5L * Batch };
        var e = await Assert.ThrowsAsync<IOException>(() =>
            Envelope.EncryptAsync(input, Stream.Null, key, EncryptionContext.Empty, new EnvelopeEncryptOptions { FrameLength = F, Parallelism = parallelism }));
        Assert.Equal("simulated read error", e.Message);
    }

    [Fact]
    public async Task AWriteErrorMidBody_Propagates()
    {
        var plaintext = Numbered(8 * Batch, 10);
        using var key = _provider.NewKey();
        var e = await Assert.ThrowsAsync<IOException>(() =>
            Envelope.EncryptAsync(new MemoryStream(plaintext), new FailingWriteStream(3L * Batch), key, EncryptionContext.Empty,
                new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 4 }));
        Assert.Equal("simulated write error", e.Message);
    }

    [Fact]
    public async Task CancellingMidBody_Stops_AndLeavesNoOutput()
    {
        var plaintext = Numbered(64 * Batch, 11);
        string source = _dir.File("cancel.bin"), sealedFile = _dir.File("cancel.ekms");
        File.WriteAllBytes(source, plaintext);
        using var key = _provider.NewKey();
        var progress = new ProgressCounter();
        using var cts = new CancellationTokenSource();
        var run = EnvelopeFileOperations.EncryptFileAsync(source, sealedFile, key, EncryptionContext.Empty,
            options: new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 2 }, progress: progress, cancellationToken: cts.Token);
        while (progress.Bytes == 0 && !run.IsCompleted) await Task.Delay(1);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.False(File.Exists(sealedFile));
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    /// <summary>A non-seekable stream that hands out at most <c>chunk</c> bytes per read, and can fail part way.</summary>
    private sealed class ChunkedStream(byte[] data, int chunk) : Stream
    {
        private int _position;
        public long FailAfterBytes { get; init; } = long.MaxValue;
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (_position >= FailAfterBytes) throw new IOException("simulated read error");
            int n = Math.Min(Math.Min(chunk, buffer.Length), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class FailingWriteStream(long failAfterBytes) : Stream
    {
        private long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > failAfterBytes) throw new IOException("simulated write error");
            _written += buffer.Length;
        }
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
