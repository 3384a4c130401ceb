using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using EnvelopeKms.Crypto;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// Known-answer vectors in tests/vectors/ekms-v1.json and ekms-v2.json: fixed data key, message id, context,
/// wrapped key (and for v2 header nonce) → exact file bytes. The independent Node.js implementation (tests/interop) checks the same file.
/// Set EKMS_WRITE_VECTORS=1 to rewrite the file after a deliberate format change.
/// </summary>
public class KnownAnswerTests
{
    private const int F = 4096;
    internal static readonly byte[] DataKeyBytes = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    internal static readonly byte[] MessageId = Enumerable.Range(0x20, 32).Select(i => (byte)i).ToArray();
    private static readonly int[] Sizes = [0, 1, F - 1, F, F + 1, 2 * F + 1];

    /// <summary>The v2 vectors' header nonce (both slots, generation 1): bytes 0x40 to 0x47.</summary>
    internal static readonly byte[] HeaderNonce = Enumerable.Range(0x40, 8).Select(i => (byte)i).ToArray();

    internal static string VectorPath => VectorPathFor(1);

    internal static string VectorPathFor(int version)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EnvelopePS.sln"))) dir = dir.Parent;
        return Path.Combine(dir!.FullName, "tests", "vectors", $"ekms-v{version}.json");
    }

    private static byte[] Plaintext(int size) => Enumerable.Range(0, size).Select(i => (byte)(i % 251)).ToArray();

    private static EncryptionContext Context => EncryptionContext.Create(new Dictionary<string, string>
    {
        ["project"] = "Apollo",
        ["purpose"] = "known-answer vector",
    });

    private static DataKey Key => new(DataKeyBytes,
        [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "acs:kms:cn-hangzhou:1234567890:key/key-vector", "v-0001", "cn-hangzhou", "dmVjdG9yLWJsb2I=")]);

    private static async Task<byte[]> Build(int size, byte version)
    {
        using var key = Key;
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream(Plaintext(size)), output, key, Context, MessageId,
            new EnvelopeEncryptOptions { FrameLength = F, FormatVersion = version, FixedHeaderNonce = HeaderNonce }, null, default);
        return output.ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task FilesMatchTheCommittedVectors(byte version)
    {
        var built = new JsonArray();
        foreach (int size in Sizes)
        {
            var file = await Build(size, version);
            built.Add(new JsonObject
            {
                ["plaintextLength"] = size,
                ["plaintextRule"] = "byte i = i mod 251",
                ["file"] = Convert.ToHexString(file).ToLowerInvariant(),
            });
        }
        var document = version == 1
            ? new JsonObject
            {
                ["description"] = "EKMS v1 known-answer vectors (docs/format.md §9). Same data key, message id, context and wrapped key for every size.",
            }
            : new JsonObject
            {
                ["description"] = "EKMS v2 known-answer vectors (docs/format.md §12.7). Same data key, message id, header nonce, context and wrapped key for every size; both slots identical, generation 1.",
                ["headerNonce"] = Convert.ToHexString(HeaderNonce).ToLowerInvariant(),
            };
        foreach (var (name, value) in new JsonObject
        {
            ["dataKey"] = Convert.ToHexString(DataKeyBytes).ToLowerInvariant(),
            ["messageId"] = Convert.ToHexString(MessageId).ToLowerInvariant(),
            ["frameLength"] = F,
            ["encryptionContext"] = new JsonObject { ["project"] = "Apollo", ["purpose"] = "known-answer vector" },
            ["wrappedKey"] = new JsonObject
            {
                ["providerId"] = "aliyun-kms",
                ["keyId"] = "acs:kms:cn-hangzhou:1234567890:key/key-vector",
                ["keyVersionId"] = "v-0001",
                ["region"] = "cn-hangzhou",
                ["ciphertextBlob"] = "dmVjdG9yLWJsb2I=",
            },
            ["vectors"] = built,
        })
        {
            document[name] = value?.DeepClone();
        }
        string json = document.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        string path = VectorPathFor(version);
        if (Environment.GetEnvironmentVariable("EKMS_WRITE_VECTORS") == "1") await File.WriteAllTextAsync(path, json + "\n");
        var committed = JsonNode.Parse(await File.ReadAllTextAsync(path))!;
        Assert.True(JsonNode.DeepEquals(document, committed), $"the format's output differs from {Path.GetFileName(path)}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task CommittedVectorsDecrypt(int version)
    {
        var committed = JsonNode.Parse(await File.ReadAllTextAsync(VectorPathFor(version)))!;
        var provider = new InMemoryKeyProvider();
        provider.Add("dmVjdG9yLWJsb2I=", DataKeyBytes);
        foreach (var vector in committed["vectors"]!.AsArray())
        {
            var file = Convert.FromHexString((string)vector!["file"]!);
            int size = (int)vector["plaintextLength"]!;
            Assert.Equal(version, file[8]);
            Assert.Equal(Plaintext(size), await EnvelopeRoundTripTests.DecryptAsync(file, provider));
        }
    }

    [Fact]
    public void KeyScheduleMatchesAnIndependentHkdfComputation()
    {
        Span<byte> fileKey = stackalloc byte[32], commitment = stackalloc byte[32];
        KeySchedule.Derive(DataKeyBytes, MessageId, 1, fileKey, commitment);
        // HKDF-SHA-512 written out with HMAC only: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info || 0x01)[..32].
        var prk = HMACSHA512.HashData(MessageId, DataKeyBytes);
        byte[] Expand(string label) => HMACSHA512.HashData(prk, (byte[])[.. System.Text.Encoding.ASCII.GetBytes(label), 0x00, 0x01, 0x01])[..32];
        Assert.Equal(Expand("EKMS1-DERIVEKEY"), fileKey.ToArray());
        Assert.Equal(Expand("EKMS1-COMMITKEY"), commitment.ToArray());
    }

    [Fact]
    public async Task AFileOver4GiBHasTheComputedLengthAndItsLastFrameDecryptsAtTheComputedOffset()
    {
        // Real bytes through the real pipeline (4 GiB of AES-GCM takes about a second on two cores); the output is
        // not stored: a sink keeps its length and the tail, and the last frame is checked independently with AesGcm.
        const long size = (4L << 30) + 4097;
        const int frame = 1 << 20;
        using var key = Key;
        var sink = new TailSink(frame + 16);
        var header = await Envelope.EncryptAsync(new ZeroStream(size), sink, key, EncryptionContext.Empty, MessageId,
            new EnvelopeEncryptOptions { FrameLength = frame }, null, default);
        long expectedLength = header.Length + FrameLayout.BodyLength(size, frame);
        Assert.Equal(expectedLength, sink.Length);
        long finalIndex = FrameLayout.FrameCount(size, frame);
        Assert.True(finalIndex > 4096);
        Assert.Equal(sink.Length - (size % frame) - 16, FrameLayout.FrameOffset(header.Length, frame, finalIndex));

        Span<byte> fileKey = stackalloc byte[32], commitment = stackalloc byte[32];
        KeySchedule.Derive(DataKeyBytes, MessageId, 1, fileKey, commitment);
        var nonce = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(nonce.AsSpan(4), (ulong)finalIndex);
        var aad = new byte[45];
        MessageId.CopyTo(aad, 0);
        BinaryPrimitives.WriteUInt64BigEndian(aad.AsSpan(32), (ulong)finalIndex);
        aad[40] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(aad.AsSpan(41), (uint)(size % frame));
        var tail = sink.Tail;
        var finalFrame = tail[^(int)(size % frame + 16)..];
        var plaintext = new byte[size % frame];
        using var aes = new AesGcm(fileKey, 16);
        aes.Decrypt(nonce, finalFrame[..^16], finalFrame[^16..], plaintext, aad);
        Assert.All(plaintext, b => Assert.Equal(0, b));
    }

    private sealed class ZeroStream(long length) : Stream
    {
        private long _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class TailSink(int keep) : Stream
    {
        private readonly byte[] _tail = new byte[keep];
        private long _length;
        public byte[] Tail => _length >= keep ? _tail : _tail[..(int)_length];
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count)
        {
            var data = buffer.AsSpan(offset, count);
            if (data.Length >= keep) data[^keep..].CopyTo(_tail);
            else
            {
                Array.Copy(_tail, data.Length, _tail, 0, keep - data.Length);
                data.CopyTo(_tail.AsSpan(keep - data.Length));
            }
            _length += count;
        }
    }
}
