// The bare loop of the performance anchors: AES-256-GCM over 64 KiB frames, file to file, nothing else (no header,
// no KMS, no temp file). With one thread it reads, seals or opens, and writes in turn; with two, a second thread
// writes while the first reads and does the AES. It prints the time after start-up and a warm-up, as the module's
// rows exclude pwsh start-up and follow a warm-up file. Usage: BareAesGcm encrypt|decrypt 1|2 <source> <destination>
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;

const int Frame = 64 << 10, Tag = 16, FramesPerBatch = 16;
if (args.Length != 4 || args[0] is not ("encrypt" or "decrypt") || args[1] is not ("1" or "2"))
{
    Console.Error.WriteLine("usage: BareAesGcm encrypt|decrypt 1|2 <source> <destination>");
    return 2;
}
bool encrypt = args[0] == "encrypt";
bool twoThreads = args[1] == "2";
var key = new byte[32]; // a fixed key: this measures throughput, it protects nothing
using var aes = new AesGcm(key, Tag);
// Warm up (JIT, OpenSSL's first use) before the clock starts: the module is timed warm too.
{
    var warm = new byte[Frame + Tag];
    Span<byte> warmNonce = stackalloc byte[12];
    for (int i = 0; i < 64; i++) aes.Encrypt(warmNonce, warm.AsSpan(0, Frame), warm.AsSpan(0, Frame), warm.AsSpan(Frame, Tag));
}
var clock = Stopwatch.StartNew();
using var input = File.OpenHandle(args[2], FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
using var output = File.OpenHandle(args[3], FileMode.CreateNew, FileAccess.Write);
int inBatch = FramesPerBatch * (encrypt ? Frame : Frame + Tag);
int outBatch = FramesPerBatch * (encrypt ? Frame + Tag : Frame);
long readOffset = 0, writeOffset = 0, frameIndex = 0;

int Process(byte[] source, int length, byte[] destination)
{
    Span<byte> nonce = stackalloc byte[12];
    int inFrame = encrypt ? Frame : Frame + Tag, produced = 0;
    for (int offset = 0; offset < length; offset += inFrame)
    {
        int n = Math.Min(inFrame, length - offset);
        BinaryPrimitives.WriteInt64BigEndian(nonce[4..], frameIndex++);
        if (encrypt)
        {
            aes.Encrypt(nonce, source.AsSpan(offset, n), destination.AsSpan(produced, n), destination.AsSpan(produced + n, Tag));
            produced += n + Tag;
        }
        else
        {
            aes.Decrypt(nonce, source.AsSpan(offset, n - Tag), source.AsSpan(offset + n - Tag, Tag), destination.AsSpan(produced, n - Tag));
            produced += n - Tag;
        }
    }
    return produced;
}

int ReadBatch(byte[] buffer)
{
    int total = 0;
    while (total < buffer.Length)
    {
        int n = RandomAccess.Read(input, buffer.AsSpan(total), readOffset);
        if (n == 0) break;
        total += n;
        readOffset += n;
    }
    return total;
}

var inBuffer = new byte[inBatch];
if (!twoThreads)
{
    var outBuffer = new byte[outBatch];
    int read;
    while ((read = ReadBatch(inBuffer)) > 0)
    {
        int n = Process(inBuffer, read, outBuffer);
        RandomAccess.Write(output, outBuffer.AsSpan(0, n), writeOffset);
        writeOffset += n;
    }
}
else
{
    using var free = new BlockingCollection<byte[]>(4);
    using var full = new BlockingCollection<(byte[] Buffer, int Length)>(4);
    for (int i = 0; i < 4; i++) free.Add(new byte[outBatch]);
    var writer = new Thread(() =>
    {
        foreach (var (buffer, length) in full.GetConsumingEnumerable())
        {
            RandomAccess.Write(output, buffer.AsSpan(0, length), writeOffset);
            writeOffset += length;
            free.Add(buffer);
        }
    });
    writer.Start();
    int read;
    while ((read = ReadBatch(inBuffer)) > 0)
    {
        var buffer = free.Take();
        full.Add((buffer, Process(inBuffer, read, buffer)));
    }
    full.CompleteAdding();
    writer.Join();
}
Console.WriteLine($"elapsed_ms {clock.Elapsed.TotalMilliseconds:0.000}");
return 0;
