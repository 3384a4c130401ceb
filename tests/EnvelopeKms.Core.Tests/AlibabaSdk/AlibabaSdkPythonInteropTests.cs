using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>
/// Runs the independent Python implementation of the Encryption SDK format (tests/interop/alibaba_sdk.py, written
/// from the official SDKs' sources with asn1crypto — the DER library of the official Python SDK — and pyca/cryptography) against
/// the C# code in both directions, and checks that both write the same bytes from the same inputs. Debian's
/// /usr/bin/python3 with python3-asn1crypto and python3-cryptography must be there (build.ps1 -Task Test installs
/// them); if not, these tests fail rather than skip.
/// </summary>
public sealed class AlibabaSdkPythonInteropTests : IDisposable
{
    private const string Arn1 = "acs:kms:cn-hangzhou:1234567890:key/key-interop-1";
    private const string Arn2 = "acs:kms:cn-beijing:1234567890:key/key-interop-2";
    private static readonly Dictionary<string, string> Context = new()
    {
        ["project"] = "Apollo",
        ["ключ"] = "значение",
        ["\uFF61"] = "halfwidth",
        ["\U0001F600"] = "",
    };
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    public static TheoryData<int, string, int> Cases()
    {
        var data = new TheoryData<int, string, int>();
        foreach (int size in new[] { 0, 1, 127, 128, 4095, 65_536, (1 << 20) + 3 })
        foreach (var layout in new[] { "asn1", "stream" })
        foreach (int keyLength in new[] { 16, 32 })
            data.Add(size, layout, keyLength);
        return data;
    }

    private static byte[] KeyFor(int keyLength) => Enumerable.Range(0xA0, keyLength).Select(i => (byte)i).ToArray();
    private static string Blob(int i, int size) => Convert.ToBase64String(Bytes.Random(40 + i * 37, seed: size + i)); // two lengths, so DER and ARN orders differ
    private static AlibabaSdkLayout Layout(string name) => name == "asn1" ? AlibabaSdkLayout.Asn1 : AlibabaSdkLayout.Stream;

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task PythonEncrypts_CSharpDecrypts(int size, string layout, int keyLength)
    {
        var plaintext = Bytes.Random(size, seed: size ^ keyLength);
        File.WriteAllBytes(_dir.File("in.bin"), plaintext);
        var key = KeyFor(keyLength);
        string blob1 = Blob(1, size), blob2 = Blob(2, size);
        var run = RunPython("encrypt", "--layout", layout, "--key-hex", Convert.ToHexString(key), "--in", _dir.File("in.bin"), "--out", _dir.File("py.msg"),
            "--context-json", JsonSerializer.Serialize(Context), "--edk", Arn1, blob1, "--edk", Arn2, blob2);
        Assert.True(run.ExitCode == 0, $"python encrypt failed: {run.Stderr}");

        var provider = new SdkKeyProvider().Add(blob2, key); // only the second CMK's blob is known: the first entry is skipped
        var (result, back) = await Sdk.DecryptAsync(File.ReadAllBytes(_dir.File("py.msg")), provider, EncryptionContext.Create(Context));
        Assert.Equal(plaintext, back);
        Assert.Equal(Layout(layout), result.Header.Layout);
        Assert.Equal(keyLength == 16 ? 1 : 2, (int)result.Header.Algorithm);
        Assert.True(result.Header.EncryptionContext.ContentEquals(EncryptionContext.Create(Context)));
        Assert.Equal(Arn2, result.UnwrappedFrom!.KeyId);
        Assert.Equal([(Arn2, blob2), (Arn1, blob1)], result.Header.EncryptedDataKeys.Select(k => (k.CmkArn, k.CiphertextBlob)).OrderBy(k => k.CmkArn, StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task CSharpEncrypts_PythonDecrypts(int size, string layout, int keyLength)
    {
        var plaintext = Bytes.Random(size, seed: ~(size ^ keyLength));
        var key = KeyFor(keyLength);
        using var dataKey = new DataKey(key, [Wrapped(Arn1, Blob(1, size)), Wrapped(Arn2, Blob(2, size))]);
        File.WriteAllBytes(_dir.File("cs.msg"), await Sdk.EncryptAsync(plaintext, dataKey, [Arn1, Arn2], EncryptionContext.Create(Context), Layout(layout)));

        var run = RunPython("decrypt", "--key-hex", Convert.ToHexString(key), "--in", _dir.File("cs.msg"), "--out", _dir.File("out.bin"));
        Assert.True(run.ExitCode == 0, $"python decrypt failed: {run.Stderr}");
        Assert.Equal(plaintext, File.ReadAllBytes(_dir.File("out.bin")));
        var header = JsonNode.Parse(run.Stdout)!;
        Assert.Equal(layout, (string)header["layout"]!);
        Assert.Equal(keyLength == 16 ? 1 : 2, (int)header["algorithm"]!);
        Assert.Equal(size, (int)header["plaintextLength"]!);
        Assert.Equal(Context.OrderBy(p => p.Key, StringComparer.Ordinal), header["encryptionContext"]!.AsObject().Select(p => KeyValuePair.Create(p.Key, (string)p.Value!)).OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal([Arn2, Arn1], header["encryptedDataKeys"]!.AsArray().Select(k => (string)k!["cmkArn"]!).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public async Task GivenTheSameIvsBothWriteTheSameBytes(int seed)
    {
        var random = new Random(seed);
        var plaintext = Bytes.Random(random.Next(0, 5000), seed);
        File.WriteAllBytes(_dir.File("in.bin"), plaintext);
        var key = Bytes.Random(seed % 2 == 0 ? 16 : 32, seed);
        var headerIv = Bytes.Random(12, seed + 1);
        var bodyIv = Bytes.Random(12, seed + 2);
        // A random context with non-ASCII keys, and 1 to 4 CMKs with blobs of random lengths.
        var context = Enumerable.Range(0, random.Next(0, 6)).ToDictionary(i => $"k{i}-{(char)random.Next(0x20, 0x7F)}{char.ConvertFromUtf32(random.Next(0x80, 0x2FFF))}", i => new string('v', random.Next(0, 300)));
        var keys = Enumerable.Range(0, random.Next(1, 5)).Select(i => ($"acs:kms:cn-region-{random.Next(0, 9)}:1234567890:key/k{i}", Convert.ToBase64String(Bytes.Random(random.Next(1, 200), seed * 10 + i)))).ToList();
        using var dataKey = new DataKey(key, keys.Select(k => Wrapped(k.Item1, k.Item2)).ToList());
        foreach (var layout in new[] { "asn1", "stream" })
        {
            var ours = await Sdk.EncryptAsync(plaintext, dataKey, keys.Select(k => k.Item1).ToList(), EncryptionContext.Create(context), Layout(layout), headerIv, bodyIv);
            var args = new List<string> { "encrypt", "--layout", layout, "--key-hex", Convert.ToHexString(key), "--in", _dir.File("in.bin"), "--out", _dir.File("py.msg"),
                "--context-json", JsonSerializer.Serialize(context), "--header-iv-hex", Convert.ToHexString(headerIv), "--body-iv-hex", Convert.ToHexString(bodyIv) };
            foreach (var (arn, blob) in keys) args.AddRange(["--edk", arn, blob]);
            var run = RunPython([.. args]);
            Assert.True(run.ExitCode == 0, run.Stderr);
            Assert.Equal(Convert.ToHexString(File.ReadAllBytes(_dir.File("py.msg"))), Convert.ToHexString(ours));
        }
    }

    [Fact]
    public void PythonReproducesTheCommittedVectors()
    {
        var run = RunPython("vectors", "--out", _dir.File("vectors.json"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(_dir.File("vectors.json"))), JsonNode.Parse(File.ReadAllText(SdkVector.FilePath))),
            "tests/interop/alibaba_sdk.py vectors no longer writes tests/vectors/alibaba-sdk.json");
    }

    [Theory]
    [InlineData("asn1")]
    [InlineData("stream")]
    public async Task PythonAlsoRefusesTamperedMessages(string layout)
    {
        var key = KeyFor(32);
        using var dataKey = new DataKey(key, [Wrapped(Arn1, Blob(1, 0))]);
        var message = await Sdk.EncryptAsync(Bytes.Random(100, 1), dataKey, [Arn1], EncryptionContext.Create(Context), Layout(layout));
        var header = await AlibabaSdkEnvelope.ReadHeaderAsync(new MemoryStream(message));
        int tagAt = message.AsSpan().IndexOf(header.HeaderAuthTag.Span);
        foreach (int at in new[] { tagAt, message.Length - 1, message.Length - 40 })
        {
            var tampered = (byte[])message.Clone();
            tampered[at] ^= 0x01;
            File.WriteAllBytes(_dir.File("t.msg"), tampered);
            var run = RunPython("decrypt", "--key-hex", Convert.ToHexString(key), "--in", _dir.File("t.msg"), "--out", _dir.File("t.bin"));
            Assert.True(run.ExitCode == 3, $"python accepted a message tampered at {at}: {run.ExitCode} {run.Stderr}");
            await Assert.ThrowsAsync<EnvelopeKms.Format.EnvelopeException>(() => Sdk.DecryptAsync(tampered, new SdkKeyProvider().Add(Blob(1, 0), key)));
        }
    }

    private static WrappedDataKey Wrapped(string arn, string blob) => new(WrappedDataKey.AlibabaKmsProvider, arn, "", "", blob);

    private static PythonSdk.Run RunPython(params string[] args) => PythonSdk.Invoke(args);
}
