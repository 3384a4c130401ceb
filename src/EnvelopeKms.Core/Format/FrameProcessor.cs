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
/// Streams frames through AES-GCM with reading, crypto and writing overlapped. A large body is cut into batches of
/// ~1 MiB, which a few threads (one per core, at most <see cref="MaxWorkers"/>) read and encrypt or decrypt in
/// parallel, each into a slot of its own, while whichever thread is free writes the finished slots in order (see
/// <see cref="Pipeline"/>). Buffers come from the shared pool and are reused for every batch, so the per-frame loop
/// allocates nothing; a body that fits in one batch is processed inline without any thread.
/// </summary>
internal sealed class FrameProcessor : IDisposable
{
    /// <summary>More workers than this only add buffers: one writer thread cannot take batches faster.</summary>
    internal const int MaxWorkers = 4;
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
        int workers = Math.Clamp(parallelism, 1, MaxWorkers);
        if (expectedInputLength is long known)
        {
            // Small inputs (the many-small-files case) get buffers sized to the file, not to a full batch.
            long frames = known / (encrypt ? frameLength : frameLength + EnvelopeFormat.TagSize) + 1;
            framesPerBatch = (int)Math.Min(framesPerBatch, frames);
            if (frames <= framesPerBatch) workers = 1;
        }
        _framesPerBatch = framesPerBatch;
        _ciphers = new IFrameCipher[workers];
        for (int i = 0; i < workers; i++) _ciphers[i] = FrameCipher.Create(fileKey);

        // One slot to start with; a body longer than one batch rents the others when it starts the pipeline. Two
        // per worker (one being filled, one waiting for the writer) and two for the writer keep everyone busy.
        _slots = new Slot?[2 * workers + 2];
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

        // The batch the slot holds, between the thread that fills it and the one that writes it (Pipeline._gate).
        public bool Ready;
        public int InputUsedThisBatch;
        public long Plaintext;
        public bool Last;
        public Exception? Error;
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
            ProcessBatch(_ciphers[0], _slots[0]!, read, last: true, firstIndex: 1, out long plaintext);
            await output.WriteAsync(_slots[0]!.Output.AsMemory(0, _slots[0]!.OutputLength), cancellationToken).ConfigureAwait(false);
            progress?.Add(plaintext);
            return plaintext;
        }
        // A large body: dedicated threads, because I/O queued to the thread pool would wait behind other work there.
        return await Task.Factory.StartNew(() => RunPipelined(input, output, read, progress, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    private int InputBatchSize => _framesPerBatch * (_encrypt ? _frameLength : _frameLength + EnvelopeFormat.TagSize);

    /// <summary>
    /// Runs the body through <see cref="Pipeline"/> on this thread and <c>workers - 1</c> more; batch 0 was read
    /// already and is this thread's first job.
    /// </summary>
    private long RunPipelined(Stream input, Stream output, int firstRead, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        for (int i = 1; i < _slots.Length; i++) _slots[i] = RentSlot();
        var pipeline = new Pipeline(this, input, output, firstRead, progress);
        using var registration = cancellationToken.Register(pipeline.Cancel);
        var threads = new Thread[_ciphers.Length - 1];
        for (int w = 0; w < threads.Length; w++)
        {
            var cipher = _ciphers[w + 1];
            threads[w] = new Thread(() => pipeline.Run(cipher, firstBatch: false)) { IsBackground = true, Name = "EnvelopeKms frames" };
            threads[w].Start();
        }
        try
        {
            pipeline.Run(_ciphers[0], firstBatch: true);
        }
        finally
        {
            // Every thread is out of the buffers before they can go back to the pool.
            pipeline.Cancel();
            foreach (var t in threads) t.Join();
        }
        if (pipeline.Error is not null) ExceptionDispatchInfo.Throw(pipeline.Error);
        cancellationToken.ThrowIfCancellationRequested();
        return pipeline.Finish();
    }

    /// <summary>
    /// The batches of one large body, shared by a few identical threads. Each thread repeatedly takes the most urgent
    /// job: write the next batch in order if it is ready and no one is writing, else claim the next batch (if its slot
    /// is free) and read + encrypt/decrypt it into its slot. Writes into one file are serial in the kernel and cost
    /// about what <c>cp</c> costs, so whoever is free writes, and the rest of the time every thread does AES: the
    /// cores are shared out by the work itself, not by the scheduler slicing more threads than cores (a dedicated
    /// writer thread got only 2/3 of a core beside two AES threads on two cores, and was the critical path).
    /// </summary>
    /// <remarks>
    /// A file is read at explicit offsets, so reads run in parallel; any other stream is read in batch order (a
    /// batch waits for its turn). The body ends at the first batch shorter than a full one; a thread cannot know that
    /// an earlier batch was short, so what it finds (a short read, a failed frame, a read error) is kept in its slot
    /// and acted on only when the writer reaches that batch: batches past the end are dropped, errors come out in
    /// file order.
    /// </remarks>
    private sealed class Pipeline
    {
        private readonly FrameProcessor _processor;
        private readonly Stream _input;
        private readonly Stream _output;
        private readonly int _firstRead;
        private readonly ProgressCounter? _progress;
        private readonly FileStream? _file;
        private readonly Microsoft.Win32.SafeHandles.SafeFileHandle? _handle; // positional reads; null: in order
        private readonly long _bodyStart;
        private readonly int _inputBatch;
        private readonly Slot[] _slots;

        private readonly object _gate = new(); // guards everything below
        private long _nextClaim = 1;           // batch 0 is the first job of the calling thread
        private long _nextRead = 1;            // in-order reads: the batch whose turn it is
        private long _written;                 // batches written so far: batch k may use slot k mod n once k < _written + n
        private bool _writing;
        private long _endBatch = long.MaxValue; // the first short or failed batch known so far
        private bool _done;
        private long _total;
        private long _consumed;

        public Exception? Error { get; private set; }

        public Pipeline(FrameProcessor processor, Stream input, Stream output, int firstRead, ProgressCounter? progress)
        {
            _processor = processor;
            _input = input;
            _output = output;
            _firstRead = firstRead;
            _progress = progress;
            _inputBatch = processor.InputBatchSize;
            _slots = processor._slots!;
            _file = input as FileStream;
            if (_file is { CanSeek: true })
            {
                _bodyStart = _file.Position - firstRead;
                _handle = _file.SafeFileHandle; // once: the getter seeks the OS file position
            }
        }

        private Slot SlotOf(long batch) => _slots[batch % _slots.Length];

        public void Cancel()
        {
            lock (_gate)
            {
                _done = true;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>After every thread has stopped: the plaintext byte count; the stream is left after the body.</summary>
        public long Finish()
        {
            if (_handle is not null) _file!.Position = _bodyStart + _consumed;
            return _total;
        }

        public void Run(IFrameCipher cipher, bool firstBatch)
        {
            try
            {
                long claimed = firstBatch ? 0 : -1;
                while (true)
                {
                    if (claimed >= 0) Process(cipher, claimed);
                    claimed = -1;
                    long toWrite = -1;
                    lock (_gate)
                    {
                        while (true)
                        {
                            if (_done) return;
                            if (!_writing && SlotOf(_written).Ready)
                            {
                                _writing = true;
                                toWrite = _written;
                                break;
                            }
                            if (_nextClaim <= _endBatch && _nextClaim < _written + _slots.Length)
                            {
                                claimed = _nextClaim++;
                                break;
                            }
                            Monitor.Wait(_gate);
                        }
                    }
                    if (toWrite >= 0) Write(toWrite);
                }
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        private void Fail(Exception e)
        {
            lock (_gate)
            {
                Error ??= e;
                _done = true;
                Monitor.PulseAll(_gate);
            }
        }

        private void Process(IFrameCipher cipher, long batch)
        {
            var slot = SlotOf(batch);
            int read = 0;
            slot.Error = null;
            try
            {
                if (batch == 0)
                {
                    read = _firstRead;
                }
                else if (_handle is not null)
                {
                    read = ReadBatch(_handle, _input, slot, _bodyStart + batch * _inputBatch, _inputBatch);
                }
                else
                {
                    lock (_gate)
                    {
                        while (_nextRead != batch && !_done && batch <= _endBatch) Monitor.Wait(_gate);
                        if (_done || batch > _endBatch) return; // past the end: dropped
                    }
                    try
                    {
                        read = ReadBatch(null, _input, slot, 0, _inputBatch);
                    }
                    finally
                    {
                        lock (_gate)
                        {
                            _nextRead++;
                            Monitor.PulseAll(_gate);
                        }
                    }
                }
                slot.InputUsedThisBatch = read;
                slot.Last = read < _inputBatch;
                _processor.ProcessBatch(cipher, slot, read, slot.Last, 1 + batch * _processor._framesPerBatch, out slot.Plaintext);
            }
            catch (Exception e)
            {
                slot.Error = e;
                slot.Last = true;
            }
            lock (_gate)
            {
                slot.Ready = true;
                if (slot.Last) _endBatch = Math.Min(_endBatch, batch);
                Monitor.PulseAll(_gate);
            }
        }

        private void Write(long batch)
        {
            var slot = SlotOf(batch);
            if (slot.Error is not null)
            {
                Fail(slot.Error);
                return;
            }
            _output.Write(slot.Output, 0, slot.OutputLength);
            _total += slot.Plaintext;
            _consumed += slot.InputUsedThisBatch;
            _progress?.Add(slot.Plaintext);
            lock (_gate)
            {
                slot.Ready = false;
                _writing = false;
                _written++;
                if (slot.Last) _done = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Reads up to <paramref name="count"/> bytes at <paramref name="offset"/> (or, without a handle, from where the stream stands).</summary>
    private static int ReadBatch(Microsoft.Win32.SafeHandles.SafeFileHandle? handle, Stream input, Slot slot, long offset, int count)
    {
        int total = 0;
        while (total < count)
        {
            int n = handle is not null
                ? RandomAccess.Read(handle, slot.Input.AsSpan(total, count - total), offset + total)
                : input.Read(slot.Input, total, count - total);
            if (n == 0) break;
            total += n;
            slot.InputUsed = Math.Max(slot.InputUsed, total); // marked as it fills: a read that fails half-way is wiped too
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
    private int ProcessBatch(IFrameCipher cipher, Slot slot, int read, bool last, long firstIndex, out long plaintextBytes)
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

        CryptRange(cipher, slot, 0, frames, fullFrames, finalLength, firstIndex);
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
