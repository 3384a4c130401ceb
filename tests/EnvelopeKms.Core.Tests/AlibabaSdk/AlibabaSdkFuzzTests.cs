using System.Buffers.Binary;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>
/// Seeded, reproducible mutations of genuine Encryption SDK messages (both layouts, every vector): bit flips, byte
/// insertions and deletions, truncations, extreme values written over length fields, duplicated chunks. Every case
/// must end, within its timeout, with the original plaintext or a documented error, write nothing on failure, and
/// parse its header within a fixed allocation bound whatever it declares. <c>EKMS_FUZZ_SEED</c> replays another seed.
/// </summary>
public class AlibabaSdkFuzzTests
{
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The header is read into one buffer of at most 256 KiB and parsed with copies of its fields: 8 × that, plus 64 KiB.</summary>
    private const long HeaderAllocationBound = 8L * AlibabaSdkFormat.MaxHeadLength + 64 * 1024;

    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("EKMS_FUZZ_SEED"), out var s) ? s : 20260611;

    [Fact]
    public async Task MutatedMessagesEndWithThePlaintextOrADocumentedError()
    {
        var random = new Random(Seed);
        var kinds = new Dictionary<string, int>();
        int cases = 0;
        foreach (var v in SdkVector.All)
        {
            foreach (var layout in new[] { AlibabaSdkLayout.Asn1, AlibabaSdkLayout.Stream })
            {
                var original = v.Message(layout);
                for (int i = 0; i < 300; i++)
                {
                    var (mutated, what) = Mutate(original, random);
                    string label = $"seed {Seed}, {v.Name}, {layout}, case {i}: {what}";
                    string kind = await RunCase(mutated, v, label, trickle: i % 5 == 0);
                    kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
                    cases++;
                }
            }
        }
        Assert.Equal(3000, cases);
        // The mutations reach the parser's every stage, not just the first check.
        foreach (var expected in new[] { "SdkMalformed", "Truncated", "HeaderTampered", "FrameTampered" })
            Assert.True(kinds.ContainsKey(expected), $"no case ended in {expected}: {string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))}");
    }

    private static async Task<string> RunCase(byte[] input, SdkVector v, string label, bool trickle)
    {
        var work = Task.Run(async () =>
        {
            // Header parsing alone, from a seekable stream (synchronous, so on this thread), within the allocation bound.
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { await AlibabaSdkEnvelope.ReadHeaderAsync(new MemoryStream(input, writable: false)); }
            catch (EnvelopeException) { }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated <= HeaderAllocationBound, $"{label}: header parsing allocated {allocated} bytes");

            var output = new MemoryStream();
            Stream stream = trickle ? new TrickleStream(input) : new MemoryStream(input, writable: false);
            try
            {
                await AlibabaSdkEnvelope.DecryptAsync(stream, output, v.Provider());
                Assert.True(output.ToArray().AsSpan().SequenceEqual(v.Plaintext), $"{label}: decrypted to something else");
                return "ok";
            }
            catch (EnvelopeException e)
            {
                Assert.True(output.Length == 0, $"{label}: {output.Length} bytes written before {e.Error}");
                return e.Error.ToString();
            }
            catch (KeyProviderException e)
            {
                Assert.True(output.Length == 0, $"{label}: {output.Length} bytes written before {e.Error}");
                return "KeyProvider." + e.Error;
            }
        });
        if (await Task.WhenAny(work, Task.Delay(CaseTimeout)) != work) Assert.Fail($"{label}: did not end within {CaseTimeout}");
        try { return await work; }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException) { Assert.Fail($"{label}: undocumented {e.GetType().Name}: {e.Message}"); throw; }
    }

    private static (byte[], string) Mutate(byte[] original, Random random)
    {
        var bytes = (byte[])original.Clone();
        int at = random.Next(bytes.Length);
        switch (random.Next(7))
        {
            case 0:
                bytes[at] ^= (byte)(1 << random.Next(8));
                return (bytes, $"bit flip at {at}");
            case 1:
                return ([.. bytes[..at], (byte)random.Next(256), .. bytes[at..]], $"byte inserted at {at}");
            case 2:
                return ([.. bytes[..at], .. bytes[(at + 1)..]], $"byte deleted at {at}");
            case 3:
                return (bytes[..at], $"truncated to {at}");
            case 4:
            {
                // An extreme 32-bit value over whatever is there (the stream layout's lengths and counts; DER long-form lengths).
                int value = random.Next(5) switch { 0 => int.MaxValue, 1 => -1, 2 => 0, 3 => 0x7FFF, _ => random.Next() };
                int where = Math.Min(at, bytes.Length - 4);
                if (where < 0) return (bytes, "unchanged");
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(where), value);
                return (bytes, $"int32 {value} written at {where}");
            }
            case 5:
            {
                // A DER length byte made long-form with a huge value.
                bytes[at] = (byte)(0x81 + random.Next(8));
                return (bytes, $"0x{bytes[at]:x2} written at {at}");
            }
            default:
            {
                int length = random.Next(1, Math.Min(64, bytes.Length - at) + 1);
                return ([.. bytes[..(at + length)], .. bytes[at..]], $"{length} bytes at {at} duplicated");
            }
        }
    }
}
