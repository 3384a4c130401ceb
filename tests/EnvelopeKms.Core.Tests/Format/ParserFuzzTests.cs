using System.Buffers.Binary;
using System.Text;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;
using Xunit.Abstractions;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// Seeded, reproducible fuzzing of the header parser and the frame reader, in the normal suite: random bytes,
/// structured headers with random (often huge) declared lengths and counts, and mutations of genuine files.
/// Every case must end, within its timeout, with success or a documented error (an <see cref="EnvelopeException"/>
/// or a <see cref="KeyProviderException"/> from the key provider), and header parsing must never allocate more than
/// <see cref="HeaderAllocationBound"/>, however large the declared lengths. A failure names the seed and the case;
/// <c>EKMS_FUZZ_SEED</c> replays another seed, <c>EKMS_FUZZ_SCALE</c> multiplies the case counts.
/// </summary>
public class ParserFuzzTests(ITestOutputHelper output)
{
    private const int F = EnvelopeFormat.MinFrameLength;

    /// <summary>The largest header docs/format.md §3 allows (16 wrapped keys at every field's cap): 170,243 bytes.</summary>
    private const int MaxHeaderBytes = EnvelopeFormat.FixedPrefixSize + 2 + 65_535 + 2
        + EnvelopeFormat.MaxWrappedKeysHardLimit * (10 + EnvelopeFormat.MaxProviderIdLength + EnvelopeFormat.MaxKeyIdLength
            + EnvelopeFormat.MaxKeyVersionLength + EnvelopeFormat.MaxRegionLength + EnvelopeFormat.MaxCiphertextBlobLength)
        + EnvelopeFormat.CommitmentSize + EnvelopeFormat.TagSize;

    /// <summary>
    /// What parsing one header may allocate: the header bytes kept for the tag (a growing buffer: at most twice the
    /// header, plus the copies made while growing, plus the final copy), the decoded strings (UTF-16: at most twice
    /// their bytes) and the context map, plus a fixed 64 KiB for objects, messages and the exception. 8 × the largest
    /// header bounds all of it (about 1.4 MB); what a header declares beyond what the file holds must not count.
    /// </summary>
    private const long HeaderAllocationBound = 8L * MaxHeaderBytes + 64 * 1024;

    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    private static int Seed(int defaultSeed)
        => int.TryParse(Environment.GetEnvironmentVariable("EKMS_FUZZ_SEED"), out var s) ? s : defaultSeed;

    private static int Cases(int n)
        => n * (int.TryParse(Environment.GetEnvironmentVariable("EKMS_FUZZ_SCALE"), out var k) && k > 0 ? k : 1);

    [Fact]
    public void TheDocumentedLargestHeaderIs170243Bytes() => Assert.Equal(170_243, MaxHeaderBytes);

    // ---- the harness ------------------------------------------------------------------------------------------

    private sealed record Outcome(string Kind, long HeaderAllocated);

    /// <summary>Parses (and, if the header parses, decrypts) one input, on its own thread, within the timeout.</summary>
    private static async Task<Outcome> RunCase(byte[] input, InMemoryKeyProvider provider, bool trickle, string label)
    {
        var work = Task.Run(async () =>
        {
            Stream stream = trickle ? new OneByteAtATimeStream(input) : new MemoryStream(input, writable: false);
            long before = GC.GetAllocatedBytesForCurrentThread();
            EnvelopeHeader header;
            try
            {
                // MemoryStream and TrickleStream complete synchronously, so all of the parser's work is on this thread.
                header = await EnvelopeHeader.ReadAsync(stream, EnvelopeReadLimits.Default, CancellationToken.None);
            }
            catch (EnvelopeException e)
            {
                return new Outcome("header:" + e.Error, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            try
            {
                Envelope.CheckRequiredContext(header, EncryptionContext.Empty);
                using var key = await Envelope.UnwrapAsync(header, provider, CancellationToken.None);
                var sink = new MemoryStream();
                var result = await Envelope.DecryptBodyAsync(header, stream, sink, key, new EnvelopeDecryptOptions { Parallelism = 1 });
                Assert.Equal(result.PlaintextLength, sink.Length);
                return new Outcome("decrypted", allocated);
            }
            catch (EnvelopeException e)
            {
                return new Outcome("body:" + e.Error, allocated);
            }
            catch (KeyProviderException e)
            {
                return new Outcome("key:" + e.Error, allocated);
            }
        });
        Outcome outcome;
        try
        {
            outcome = await work.WaitAsync(CaseTimeout);
        }
        catch (TimeoutException)
        {
            throw new Xunit.Sdk.XunitException($"{label}: no answer within {CaseTimeout} (a hang); input {Describe(input)}");
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{label}: undocumented {e.GetType().FullName}: {e.Message}; input {Describe(input)}\n{e}");
        }
        if (outcome.HeaderAllocated > HeaderAllocationBound)
            throw new Xunit.Sdk.XunitException($"{label}: header parsing allocated {outcome.HeaderAllocated} bytes (bound {HeaderAllocationBound}); input {Describe(input)}");
        return outcome;
    }

    private static string Describe(byte[] input)
        => $"{input.Length} bytes: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 160)))}{(input.Length > 160 ? "…" : "")}";

    private void Report(string name, int seed, Dictionary<string, int> kinds, long maxAllocated)
        => output.WriteLine($"{name} seed {seed}: {kinds.Values.Sum()} cases, max header allocation {maxAllocated} B; "
            + string.Join(", ", kinds.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value}")));

    private async Task Fuzz(string name, int defaultSeed, int cases, Func<Random, InMemoryKeyProvider, byte[]> generate, InMemoryKeyProvider? provider = null)
    {
        int seed = Seed(defaultSeed);
        var random = new Random(seed);
        provider ??= new InMemoryKeyProvider();
        var kinds = new Dictionary<string, int>();
        long maxAllocated = 0;
        for (int i = 0; i < cases; i++)
        {
            var input = generate(random, provider);
            var outcome = await RunCase(input, provider, trickle: i % 16 == 0, $"{name} seed {seed} case {i}");
            kinds[outcome.Kind] = kinds.GetValueOrDefault(outcome.Kind) + 1;
            maxAllocated = Math.Max(maxAllocated, outcome.HeaderAllocated);
        }
        Report(name, seed, kinds, maxAllocated);
    }

    // ---- generators -------------------------------------------------------------------------------------------

    private static byte[] Prefix(Random r, uint? frameLength = null)
    {
        var b = new byte[EnvelopeFormat.FixedPrefixSize];
        EnvelopeFormat.Magic.CopyTo(b);
        b[8] = r.Next(20) == 0 ? (byte)r.Next(256) : EnvelopeFormat.Version1;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(9), r.Next(20) == 0 ? (ushort)r.Next(65536) : EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit);
        b[11] = r.Next(20) == 0 ? (byte)r.Next(256) : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), frameLength ?? (r.Next(16) switch
        {
            0 => (uint)r.NextInt64(0, uint.MaxValue + 1L),
            1 => uint.MaxValue,
            2 => EnvelopeFormat.MaxFrameLength + 1u,
            3 => EnvelopeFormat.MinFrameLength - 1u,
            _ => F,
        }));
        r.NextBytes(b.AsSpan(16, 32));
        return b;
    }

    /// <summary>A length: usually plausible, often exactly at or just past a cap, sometimes the u16 maximum.</summary>
    private static int Length(Random r, int cap) => r.Next(8) switch
    {
        0 => 0xFFFF,
        1 => cap,
        2 => cap + 1,
        3 => 0,
        4 => r.Next(0x10000),
        _ => r.Next(Math.Min(cap, 64) + 1),
    };

    private static void Str16(List<byte> b, Random r, int cap, bool honest)
    {
        int n = Length(r, cap);
        b.Add((byte)(n >> 8));
        b.Add((byte)n);
        int actual = honest ? n : r.Next(Math.Min(n, 300) + 1); // dishonest: declares more than follows
        for (int i = 0; i < actual; i++) b.Add(RandomTextByte(r));
    }

    private static byte RandomTextByte(Random r) => r.Next(10) switch
    {
        0 => (byte)r.Next(0x80, 0x100), // continuation bytes, overlong leads, surrogate encodings…
        1 => 0,
        _ => (byte)r.Next(0x20, 0x7F),
    };

    private static byte[] StructuredHeader(Random r, InMemoryKeyProvider _)
    {
        var b = new List<byte>(Prefix(r));
        bool honest = r.Next(3) != 0;
        // Encryption context: random count and entries, possibly unsorted, duplicated, invalid UTF-8, or lying about L.
        var ec = new List<byte>();
        if (r.Next(4) != 0)
        {
            int count = r.Next(5) == 0 ? 0xFFFF : r.Next(0, 6);
            ec.Add((byte)(count >> 8));
            ec.Add((byte)count);
            for (int i = 0; i < Math.Min(count, 6); i++)
            {
                Str16(ec, r, 40, honest);
                Str16(ec, r, 40, honest);
            }
        }
        int declaredEc = r.Next(6) == 0 ? 0xFFFF : r.Next(4) == 0 ? r.Next(0x10000) : ec.Count;
        b.Add((byte)(declaredEc >> 8));
        b.Add((byte)declaredEc);
        b.AddRange(ec);
        int keys = r.Next(6) switch { 0 => 0xFFFF, 1 => 0, 2 => 17, 3 => 9, _ => r.Next(1, 4) };
        b.Add((byte)(keys >> 8));
        b.Add((byte)keys);
        for (int k = 0; k < Math.Min(keys, 4); k++)
        {
            Str16(b, r, EnvelopeFormat.MaxProviderIdLength, honest);
            Str16(b, r, EnvelopeFormat.MaxKeyIdLength, honest);
            Str16(b, r, EnvelopeFormat.MaxKeyVersionLength, honest);
            Str16(b, r, EnvelopeFormat.MaxRegionLength, honest);
            Str16(b, r, EnvelopeFormat.MaxCiphertextBlobLength, honest);
        }
        int tail = r.Next(4) == 0 ? r.Next(48) : 48 + r.Next(3) * r.Next(40);
        for (int i = 0; i < tail; i++) b.Add((byte)r.Next(256));
        return b.ToArray();
    }

    private static byte[] RandomBytes(Random r, InMemoryKeyProvider _)
    {
        var b = new byte[r.Next(8) == 0 ? r.Next(4096) : r.Next(200)];
        r.NextBytes(b);
        switch (r.Next(6))
        {
            case 0: if (b.Length >= 8) EnvelopeFormat.Magic.CopyTo(b); break;
            case 1: Encoding.ASCII.GetBytes("iUVLTQ0K").AsSpan(0, Math.Min(8, b.Length)).CopyTo(b); break;
            case 2: EnvelopeFormat.Magic[..Math.Min(b.Length, r.Next(1, 9))].CopyTo(b); break;
        }
        return b;
    }

    /// <summary>Genuine v1 and v2 files (made with the provider, so their keys unwrap) to mutate.</summary>
    private static List<byte[]> Genuine(InMemoryKeyProvider provider)
    {
        var files = new List<byte[]>();
        var contexts = new[]
        {
            EncryptionContext.Empty,
            EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Apollo", ["ünï"] = "çødé ✓", ["z"] = "" }),
        };
        int seed = 0;
        foreach (var context in contexts)
        {
            foreach (int length in new[] { 0, 1, F - 1, F, 2 * F + 7 })
            {
                foreach (byte version in new[] { EnvelopeFormat.Version1, EnvelopeFormat.Version2 })
                {
                    using var key = provider.NewKey("k1", "acs:kms:cn-test:1234:key/k2");
                    var output = new MemoryStream();
                    Envelope.EncryptAsync(new MemoryStream(Bytes.Random(length, seed++)), output, key, context,
                        new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 1, FormatVersion = version }).GetAwaiter().GetResult();
                    files.Add(output.ToArray());
                }
            }
        }
        return files;
    }

    private static byte[] Mutate(Random r, byte[] original, int headerLength)
    {
        var b = new List<byte>(original);
        int mutations = 1 + (r.Next(4) == 0 ? r.Next(8) : 0);
        for (int m = 0; m < mutations && b.Count > 0; m++)
        {
            // Most mutations land in the header, where the parser is.
            int at = r.Next(3) != 0 ? r.Next(Math.Min(headerLength, b.Count)) : r.Next(b.Count);
            switch (r.Next(9))
            {
                case 0: b[at] ^= (byte)(1 << r.Next(8)); break;
                case 1: b[at] = (byte)r.Next(256); break;
                case 2: b.RemoveRange(at, Math.Min(b.Count - at, 1 + r.Next(32))); break;
                case 3: b.InsertRange(at, Enumerable.Range(0, 1 + r.Next(32)).Select(_ => (byte)r.Next(256))); break;
                case 4: b.RemoveRange(at, b.Count - at); break; // truncate
                case 5: // a length field (any u16 in the header) set to an extreme
                    if (at + 1 < b.Count) { ushort v = r.Next(3) switch { 0 => 0xFFFF, 1 => 0, _ => (ushort)r.Next(0x10000) }; b[at] = (byte)(v >> 8); b[at + 1] = (byte)v; }
                    break;
                case 6: b.AddRange(Enumerable.Range(0, 1 + r.Next(40)).Select(_ => (byte)r.Next(256))); break; // extend
                case 7: // duplicate a chunk (frames, fields)
                    int len = Math.Min(b.Count - at, 1 + r.Next(F + 32));
                    b.InsertRange(r.Next(b.Count + 1), b.GetRange(at, len));
                    break;
                default: // the frame length set to an extreme
                    if (b.Count >= 16) BinaryPrimitives.WriteUInt32BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(b).Slice(12, 4),
                        r.Next(2) == 0 ? uint.MaxValue : (uint)r.NextInt64(0, uint.MaxValue + 1L));
                    break;
            }
        }
        return b.ToArray();
    }

    // ---- the fuzz runs ----------------------------------------------------------------------------------------

    [Fact]
    public Task RandomBytes_OnlyDocumentedErrors() => Fuzz("random", 1001, Cases(3000), RandomBytes);

    [Fact]
    public Task StructuredHeadersWithHugeDeclaredLengths_OnlyDocumentedErrors_BoundedAllocation()
        => Fuzz("structured", 2002, Cases(4000), StructuredHeader);

    [Fact]
    public async Task MutatedGenuineFiles_OnlyDocumentedErrors_BoundedAllocation()
    {
        var provider = new InMemoryKeyProvider();
        var files = Genuine(provider);
        var headerLengths = files.Select(f => EnvelopeHeader.ReadAsync(new MemoryStream(f)).Result.Length).ToArray();
        int decrypted = 0;
        await Fuzz("mutation", 3003, Cases(4000), (r, _) =>
        {
            int i = r.Next(files.Count);
            return Mutate(r, files[i], headerLengths[i]);
        }, provider);
        // The unmutated files still decrypt (the harness itself is sound).
        foreach (var file in files)
        {
            var outcome = await RunCase(file, provider, trickle: false, "genuine");
            Assert.Equal("decrypted", outcome.Kind);
            decrypted++;
        }
        Assert.Equal(files.Count, decrypted);
    }

    /// <summary>The documentation sample's legacy format: mutated four-line files parse and decrypt, or fail with a documented error.</summary>
    [Fact]
    public async Task MutatedLegacyFiles_OnlyDocumentedErrors()
    {
        int seed = Seed(4004);
        var random = new Random(seed);
        var provider = new InMemoryKeyProvider();
        var files = new List<byte[]>();
        foreach (int length in new[] { 0, 1, 16, 100, 1000 })
        {
            using var key = provider.NewKey("k1");
            files.Add(EnvelopeKms.Legacy.LegacyEnvelope.Encrypt(key, Bytes.Random(length, length)));
        }
        var kinds = new Dictionary<string, int>();
        for (int i = 0; i < Cases(2000); i++)
        {
            var original = files[random.Next(files.Count)];
            var input = Mutate(random, original, original.Length);
            if (random.Next(4) == 0)
            {
                // Text-level damage: line endings, spaces, extra or missing lines, non-base64 characters.
                var text = new StringBuilder(Encoding.ASCII.GetString(input));
                int at = random.Next(text.Length + 1);
                text.Insert(at, random.Next(5) switch { 0 => "\r\n", 1 => " ", 2 => "\n\n", 3 => "@", _ => "\u00e9" });
                input = Encoding.UTF8.GetBytes(text.ToString());
            }
            string label = $"legacy seed {seed} case {i}";
            var work = Task.Run(async () =>
            {
                try
                {
                    var envelope = EnvelopeKms.Legacy.LegacyEnvelope.Parse(input);
                    using var key = await provider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, CancellationToken.None);
                    envelope.Decrypt(key);
                    return "decrypted";
                }
                catch (EnvelopeException e) { return "legacy:" + e.Error; }
                catch (KeyProviderException e) { return "key:" + e.Error; }
            });
            string kind;
            try { kind = await work.WaitAsync(CaseTimeout); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"{label}: {e.GetType().FullName}: {e.Message}; input {Describe(input)}\n{e}"); }
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
        }
        Report("legacy", seed, kinds, 0);
    }

    // ---- the extremes, one by one -----------------------------------------------------------------------------

    private static byte[] Header(uint frameLength, int ecLength, byte[] ec, int? keyCount = null, Action<List<byte>>? keys = null)
    {
        var b = new List<byte>(Prefix(new Random(0), frameLength));
        b[8] = 1; b[9] = 0; b[10] = 1; b[11] = 0;
        b.Add((byte)(ecLength >> 8)); b.Add((byte)ecLength);
        b.AddRange(ec);
        if (keyCount is int n) { b.Add((byte)(n >> 8)); b.Add((byte)n); }
        keys?.Invoke(b);
        return b.ToArray();
    }

    private static void Field(List<byte> b, int declared, int actual, byte fill = (byte)'a')
    {
        b.Add((byte)(declared >> 8)); b.Add((byte)declared);
        b.AddRange(Enumerable.Repeat(fill, actual));
    }

    public static TheoryData<string, byte[], EnvelopeError> Extremes()
    {
        var data = new TheoryData<string, byte[], EnvelopeError>
        {
            { "frame length 2^32-1", Header(uint.MaxValue, 0, []), EnvelopeError.MalformedHeader },
            { "frame length 16 MiB + 1", Header(EnvelopeFormat.MaxFrameLength + 1u, 0, []), EnvelopeError.MalformedHeader },
            { "frame length 0", Header(0, 0, []), EnvelopeError.MalformedHeader },
            { "context claims 65535 bytes, file has 3", Header(F, 0xFFFF, [0, 1, 0]), EnvelopeError.Truncated },
            { "context count 65535 in 4 bytes", Header(F, 4, [0xFF, 0xFF, 0, 0], 1), EnvelopeError.MalformedHeader },
            { "65535 wrapped keys", Header(F, 0, [], 0xFFFF), EnvelopeError.LimitExceeded },
            { "17 wrapped keys", Header(F, 0, [], 17), EnvelopeError.LimitExceeded },
            { "0 wrapped keys", Header(F, 0, [], 0), EnvelopeError.MalformedHeader },
            { "provider id claims 65535", Header(F, 0, [], 1, b => Field(b, 0xFFFF, 10)), EnvelopeError.LimitExceeded },
            { "key id claims 2049", Header(F, 0, [], 1, b => { Field(b, 10, 10); Field(b, 2049, 2049); }), EnvelopeError.LimitExceeded },
            { "blob claims 65535", Header(F, 0, [], 1, b => { Field(b, 10, 10); Field(b, 5, 5); Field(b, 0, 0); Field(b, 0, 0); Field(b, 0xFFFF, 100); }), EnvelopeError.LimitExceeded },
            { "blob claims 4096, file ends", Header(F, 0, [], 1, b => { Field(b, 10, 10); Field(b, 5, 5); Field(b, 0, 0); Field(b, 0, 0); Field(b, 4096, 7); }), EnvelopeError.Truncated },
            { "key id invalid UTF-8", Header(F, 0, [], 1, b => { Field(b, 10, 10); Field(b, 2, 2, 0xC0); }), EnvelopeError.MalformedHeader },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(Extremes))]
    public async Task ExtremeDeclaredLengths_FailWithTheDocumentedError_WithoutAllocatingForThem(string what, byte[] input, EnvelopeError expected)
    {
        var provider = new InMemoryKeyProvider();
        var outcome = await RunCase(input, provider, trickle: false, what);
        Assert.Equal("header:" + expected, outcome.Kind);
        // A file of a few bytes that claims 64 KiB here or 16 MiB there costs what its caps allow, never what it claims.
        Assert.True(outcome.HeaderAllocated <= 256 * 1024, $"{what}: {outcome.HeaderAllocated} bytes");
        Assert.Equal(0, provider.DecryptCalls);
    }

    [Fact]
    public async Task TheLargestLegalHeader_ParsesWithinTheBound()
    {
        // 8 wrapped keys (the default reader limit) at every field's cap, and a 65,535-byte context.
        var pairs = new Dictionary<string, string>();
        int ecLength = 2;
        for (int i = 0; ecLength < 65_535 - 4 - 300; i++)
        {
            string name = $"k{i:D5}", value = new string('v', 250);
            pairs[name] = value;
            ecLength += 4 + name.Length + value.Length;
        }
        var context = EncryptionContext.Create(pairs);
        var entries = Enumerable.Range(0, 8).Select(i => new WrappedDataKey(new string('p', 64), new string((char)('a' + i), 2048),
            new string('v', 256), new string('r', 64), new string('b', 4095) + i % 10)).ToList();
        var provider = new InMemoryKeyProvider();
        using var key = new DataKey(new byte[32], entries, "k");
        var file = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream([1, 2, 3]), file, key, context, new EnvelopeEncryptOptions { FrameLength = F, Parallelism = 1 });
        var outcome = await RunCase(file.ToArray(), provider, trickle: false, "largest");
        Assert.StartsWith("key:", outcome.Kind); // parsed; the provider knows none of the blobs
        output.WriteLine($"largest legal header (8 keys): {file.Length - 3 - 16} bytes, parser allocated {outcome.HeaderAllocated} bytes");
        Assert.True(outcome.HeaderAllocated <= HeaderAllocationBound);
    }
}

/// <summary>
/// Hands out at most one byte per read, synchronously (unlike <see cref="TrickleStream"/>, whose inherited ReadAsync
/// hops to the thread pool), so the parser's allocations stay measurable on one thread.
/// </summary>
internal sealed class OneByteAtATimeStream(byte[] data) : MemoryStream(data, writable: false)
{
    public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 1));
    public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, 1)]);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => Task.FromResult(Read(buffer, offset, count));
}
