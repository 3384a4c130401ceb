using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Buffers.Binary;
using System.Security.Cryptography;
using EnvelopeKms.Crypto;

namespace EnvelopeKms.Format;

/// <summary>Counts bytes processed so a caller on another thread (the PowerShell pipeline) can report progress.</summary>
public sealed class ProgressCounter
{
    private long _bytes;
    public long Bytes => Interlocked.Read(ref _bytes);
    internal void Add(long n) => Interlocked.Add(ref _bytes, n);
}

/// <summary>
/// Streams frames through AES-GCM with reading, crypto and writing overlapped: while batch b is being encrypted
/// or decrypted (split across cores), the next batches are being read and the previous ones written, each on a
/// thread of its own. Buffers come from the shared pool and are reused for every batch, so the per-frame loop
/// allocates nothing; a body that fits in one batch is processed inline without any thread.
/// </summary>
internal sealed class FrameProcessor : IDisposable
{
    private const int SlotCount = 4;
    private const int TargetBatchBytes = 1 << 20;

    private readonly bool _encrypt;
    private readonly int _frameLength;
    private readonly int _framesPerBatch;
    private readonly IFrameCipher[] _ciphers;
    private readonly byte[] _messageId;
    private readonly Slot?[] _slots;
    private bool _failed; // after a failure the marks may not cover what a half-done batch left: wipe whole buffers

    public FrameProcessor(bool encrypt, ReadOnlySpan<byte> fileKey, ReadOnlySpan<byte> messageId, int frameLength, long? expectedInputLength, int parallelism)
    {
        _encrypt = encrypt;
        _frameLength = frameLength;
        _messageId = messageId.ToArray();
        int framesPerBatch = Math.Max(1, TargetBatchBytes / frameLength);
        if (expectedInputLength is long known)
        {
            // Small inputs (the many-small-files case) get buffers sized to the file, not to a full batch.
            long frames = known / (encrypt ? frameLength : frameLength + EnvelopeFormat.TagSize) + 1;
            framesPerBatch = (int)Math.Min(framesPerBatch, frames);
        }
        _framesPerBatch = framesPerBatch;
        int workers = Math.Clamp(parallelism, 1, Math.Max(1, framesPerBatch));
        _ciphers = new IFrameCipher[workers];
        for (int i = 0; i < workers; i++) _ciphers[i] = FrameCipher.Create(fileKey);

        // One slot to start with; a body longer than one batch rents the others when it starts the pipeline.
        _slots = new Slot?[SlotCount];
        _slots[0] = RentSlot();
    }

    private Slot RentSlot()
    {
        int plainBytes = _framesPerBatch * _frameLength;
        int sealedBytes = _framesPerBatch * (_frameLength + EnvelopeFormat.TagSize);
        return new Slot(
            ArrayPool<byte>.Shared.Rent(_encrypt ? plainBytes : sealedBytes),
            ArrayPool<byte>.Shared.Rent(_encrypt ? sealedBytes : plainBytes));
    }

    private sealed class Slot(byte[] input, byte[] output)
    {
        public readonly byte[] Input = input;
        public readonly byte[] Output = output;
        public int OutputLength;
        /// <summary>High-water marks: only what was used needs wiping (a pooled array may be twice the size asked).</summary>
        public int InputUsed;
        public int OutputUsed;
    }

    /// <summary>Processes the whole body; returns the plaintext byte count.</summary>
    public async Task<long> RunAsync(Stream input, Stream output, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        try
        {
            return await RunCoreAsync(input, output, progress, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _failed = true;
            throw;
        }
    }

    private async Task<long> RunCoreAsync(Stream input, Stream output, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        int inputBatch = InputBatchSize;
        int read = await FillAsync(input, _slots[0]!.Input, inputBatch, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (read < inputBatch)
        {
            // The whole body fits in one batch (every small file): no threads, no queues.
            ProcessBatch(_slots[0]!, read, last: true, firstIndex: 1, out long plaintext);
            await output.WriteAsync(_slots[0]!.Output.AsMemory(0, _slots[0]!.OutputLength), cancellationToken).ConfigureAwait(false);
            progress?.Add(plaintext);
            return plaintext;
        }
        // A large body: reading, AES and writing each get a thread of their own, so the kernel's copy work for the
        // two files and the AES work overlap on the cores instead of adding up. Dedicated threads, because I/O
        // queued to the thread pool would wait behind the AES workers that occupy it.
        return await Task.Factory.StartNew(() => RunPipelined(input, output, read, progress, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    private int InputBatchSize => _framesPerBatch * (_encrypt ? _frameLength : _frameLength + EnvelopeFormat.TagSize);

    /// <summary>Reader thread → this thread (AES, split across cores) → writer thread, through bounded queues of slots.</summary>
    private long RunPipelined(Stream input, Stream output, int firstRead, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        int inputBatch = InputBatchSize;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var free = new BlockingCollection<Slot>(_slots.Length);
        using var filled = new BlockingCollection<(Slot Slot, int Read)>(_slots.Length);
        using var sealedSlots = new BlockingCollection<(Slot Slot, long Plaintext)>(_slots.Length);
        Exception? ioError = null;
        void Fail(Exception e)
        {
            Interlocked.CompareExchange(ref ioError, e, null);
            stop.Cancel();
        }

        filled.Add((_slots[0]!, firstRead));
        for (int i = 1; i < _slots.Length; i++) free.Add(_slots[i] = RentSlot());

        var reader = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    var slot = free.Take(stop.Token);
                    int n = FillSync(input, slot.Input, inputBatch, stop.Token);
                    filled.Add((slot, n), stop.Token);
                    if (n < inputBatch) break;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (Exception e) { Fail(e); }
            finally { filled.CompleteAdding(); }
        }) { IsBackground = true, Name = "EnvelopeKms reader" };

        var writer = new Thread(() =>
        {
            try
            {
                foreach (var (slot, plaintext) in sealedSlots.GetConsumingEnumerable(stop.Token))
                {
                    output.Write(slot.Output, 0, slot.OutputLength);
                    progress?.Add(plaintext);
                    free.Add(slot, stop.Token);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (Exception e) { Fail(e); }
        }) { IsBackground = true, Name = "EnvelopeKms writer" };

        reader.Start();
        writer.Start();
        long nextIndex = 1;
        long total = 0;
        Exception? cryptError = null;
        try
        {
            foreach (var (slot, read) in filled.GetConsumingEnumerable(stop.Token))
            {
                bool last = read < inputBatch;
                int frames = ProcessBatch(slot, read, last, nextIndex, out long plaintext);
                nextIndex += frames;
                total += plaintext;
                sealedSlots.Add((slot, plaintext), stop.Token);
                if (last) break;
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (Exception e)
        {
            cryptError = e;
            stop.Cancel();
        }
        finally
        {
            sealedSlots.CompleteAdding();
            // Both threads end before the buffers can go back to the pool.
            reader.Join();
            writer.Join();
        }
        if (cryptError is not null) ExceptionDispatchInfo.Throw(cryptError);
        if (ioError is not null) ExceptionDispatchInfo.Throw(ioError);
        cancellationToken.ThrowIfCancellationRequested();
        return total;
    }

    private static int FillSync(Stream input, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        int total = 0;
        while (total < count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = input.Read(buffer, total, count - total);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private static async Task<int> FillAsync(Stream input, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        int total = 0;
        while (total < count)
        {
            int n = await input.ReadAsync(buffer.AsMemory(total, count - total), cancellationToken).ConfigureAwait(false);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>Lays out the frames of one batch and runs them through the ciphers; returns the frame count.</summary>
    private int ProcessBatch(Slot slot, int read, bool last, long firstIndex, out long plaintextBytes)
    {
        slot.InputUsed = Math.Max(slot.InputUsed, read);
        int sealedFrame = _frameLength + EnvelopeFormat.TagSize;
        int fullFrames;
        int finalLength = -1; // plaintext length of the final frame, if this batch holds it
        if (_encrypt)
        {
            fullFrames = read / _frameLength;
            if (last) finalLength = read - fullFrames * _frameLength;
        }
        else
        {
            fullFrames = read / sealedFrame;
            if (last)
            {
                int rest = read - fullFrames * sealedFrame;
                if (rest < EnvelopeFormat.TagSize)
                {
                    throw new EnvelopeException(EnvelopeError.Truncated,
                        "The file is truncated: it ends without its final frame.") { FrameIndex = firstIndex + fullFrames };
                }
                finalLength = rest - EnvelopeFormat.TagSize;
            }
        }
        int frames = fullFrames + (finalLength >= 0 ? 1 : 0);
        if (firstIndex + frames - 1 > EnvelopeFormat.MaxFrameCount)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, "The body has more than 2^32 frames.");

        plaintextBytes = (long)fullFrames * _frameLength + Math.Max(finalLength, 0);
        slot.OutputLength = _encrypt
            ? fullFrames * sealedFrame + (finalLength >= 0 ? finalLength + EnvelopeFormat.TagSize : 0)
            : (int)plaintextBytes;
        slot.OutputUsed = Math.Max(slot.OutputUsed, slot.OutputLength);

        int workers = Math.Min(_ciphers.Length, frames);
        if (workers <= 1)
        {
            CryptRange(_ciphers[0], slot, 0, frames, fullFrames, finalLength, firstIndex);
        }
        else
        {
            int perWorker = (frames + workers - 1) / workers;
            try
            {
                Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
                {
                    int start = w * perWorker;
                    int end = Math.Min(frames, start + perWorker);
                    if (start < end) CryptRange(_ciphers[w], slot, start, end, fullFrames, finalLength, firstIndex);
                });
            }
            catch (AggregateException e) when (e.InnerExceptions.All(x => x is EnvelopeException))
            {
                // Report the first frame that failed, as a sequential reader would.
                throw e.InnerExceptions.Cast<EnvelopeException>().MinBy(x => x.FrameIndex)!;
            }
        }
        return frames;
    }

    private void CryptRange(IFrameCipher cipher, Slot slot, int start, int end, int fullFrames, int finalLength, long firstIndex)
    {
        int sealedFrame = _frameLength + EnvelopeFormat.TagSize;
        Span<byte> nonce = stackalloc byte[FrameCipher.NonceSize];
        Span<byte> aad = stackalloc byte[FrameAad.Size];
        nonce.Clear();
        _messageId.CopyTo(aad);
        for (int j = start; j < end; j++)
        {
            bool isFinal = j == fullFrames;
            int length = isFinal ? finalLength : _frameLength;
            long index = firstIndex + j;
            BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], (ulong)index);
            FrameAad.Write(aad, index, isFinal, length);
            int plainOffset = j * _frameLength;
            int sealedOffset = j * sealedFrame;
            if (_encrypt)
            {
                cipher.Encrypt(nonce,
                    slot.Input.AsSpan(plainOffset, length),
                    slot.Output.AsSpan(sealedOffset, length),
                    slot.Output.AsSpan(sealedOffset + length, EnvelopeFormat.TagSize),
                    aad);
            }
            else if (!cipher.TryDecrypt(nonce,
                         slot.Input.AsSpan(sealedOffset, length),
                         slot.Input.AsSpan(sealedOffset + length, EnvelopeFormat.TagSize),
                         slot.Output.AsSpan(plainOffset, length),
                         aad))
            {
                throw new EnvelopeException(EnvelopeError.FrameTampered,
                    $"Frame {index} failed authentication: the file was modified, truncated, extended, or had frames reordered or spliced in.")
                { FrameIndex = index };
            }
        }
    }

    public void Dispose()
    {
        foreach (var cipher in _ciphers) cipher.Dispose();
        foreach (var slot in _slots)
        {
            if (slot is null) continue;
            // Plaintext sits in one of the two buffers; wipe what was used of both before the pool hands them on.
            CryptographicOperations.ZeroMemory(_failed ? slot.Input : slot.Input.AsSpan(0, slot.InputUsed));
            CryptographicOperations.ZeroMemory(_failed ? slot.Output : slot.Output.AsSpan(0, slot.OutputUsed));
            ArrayPool<byte>.Shared.Return(slot.Input);
            ArrayPool<byte>.Shared.Return(slot.Output);
        }
    }
}

/// <summary>Per-frame associated data: message id (32) || frame index (8) || final flag (1) || plaintext length (4).</summary>
internal static class FrameAad
{
    public const int Size = EnvelopeFormat.MessageIdSize + 8 + 1 + 4;

    public static void Write(Span<byte> aad, long index, bool isFinal, int length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(aad[32..], (ulong)index);
        aad[40] = isFinal ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(aad[41..], (uint)length);
    }
}
