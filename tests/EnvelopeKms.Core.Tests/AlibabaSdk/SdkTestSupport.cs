using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>
/// A key provider for Encryption SDK tests: it unwraps the blobs it was told about to their keys (16 or 32 bytes), the
/// way a KMS would, and counts calls. (The real KMS provider is exercised against the local KMS server in Pester.)
/// </summary>
internal sealed class SdkKeyProvider : IDataKeyProvider
{
    private readonly Dictionary<string, byte[]> _keys = new(StringComparer.Ordinal);
    public int DecryptCalls;

    public SdkKeyProvider Add(string ciphertextBlob, byte[] key)
    {
        _keys[ciphertextBlob] = key;
        return this;
    }

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => GenerateDataKeyAsync(keyIds, context, DataKey.KeyLength, cancellationToken);

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        var key = RandomNumberGenerator.GetBytes(keyLength);
        var entries = keyIds.Select(id =>
        {
            string blob = Convert.ToBase64String(RandomNumberGenerator.GetBytes(40));
            Add(blob, key);
            return new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, id, "v1", "", blob);
        }).ToList();
        return Task.FromResult(new DataKey(key, entries, keyIds[0]));
    }

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => DecryptDataKeyAsync(entries, context, DataKey.KeyLength, cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref DecryptCalls);
        foreach (var entry in entries)
        {
            if (!_keys.TryGetValue(entry.CiphertextBlob, out var key)) continue;
            if (key.Length != keyLength) throw new KeyProviderException(KeyProviderError.InvalidDataKey, $"a {key.Length}-byte key where {keyLength} were needed");
            return Task.FromResult(new DataKey(key, entries, "kms-reported-" + entry.KeyId) { UnwrappedFrom = entry });
        }
        throw new KeyProviderException(KeyProviderError.NoMatchingKey, "No entry could be unwrapped.");
    }
}

/// <summary>tests/vectors/alibaba-sdk.json, written by the independent Python implementation.</summary>
internal sealed record SdkVector(string Name, int Algorithm, byte[] DataKey, byte[] HeaderIv, byte[] BodyIv, Dictionary<string, string> Context,
    (string Arn, string Blob)[] Keys, int PlaintextLength, byte[] ContextBytes, byte[] AuthenticatedFields, byte[] HeaderAuthTag,
    byte[] Ciphertext, byte[] BodyAuthTag, byte[] Asn1, byte[] Stream)
{
    public static string FilePath => Path.Combine(SdkPaths.RepoRoot, "tests", "vectors", "alibaba-sdk.json");

    public static IReadOnlyList<SdkVector> All { get; } = Load();

    public byte[] Plaintext => Enumerable.Range(0, PlaintextLength).Select(i => (byte)(i % 251)).ToArray();

    public EncryptionContext EncryptionContext => EncryptionContext.Create(Context);

    public IReadOnlyList<string> Arns => Keys.Select(k => k.Arn).ToList();

    public DataKey NewDataKey() => new(DataKey, Keys.Select(k => new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, k.Arn, "", "", k.Blob)).ToList());

    public SdkKeyProvider Provider()
    {
        var provider = new SdkKeyProvider();
        foreach (var (_, blob) in Keys) provider.Add(blob, DataKey);
        return provider;
    }

    public byte[] Message(AlibabaSdkLayout layout) => layout == AlibabaSdkLayout.Asn1 ? Asn1 : Stream;

    private static List<SdkVector> Load()
    {
        var root = JsonNode.Parse(File.ReadAllText(FilePath))!;
        static byte[] Hex(JsonNode? n) => Convert.FromHexString((string)n!);
        return root["vectors"]!.AsArray().Select(v => new SdkVector(
            (string)v!["name"]!, (int)v["algorithm"]!, Hex(v["dataKey"]), Hex(v["headerIv"]), Hex(v["bodyIv"]),
            v["encryptionContext"]!.AsObject().ToDictionary(p => p.Key, p => (string)p.Value!),
            v["encryptedDataKeys"]!.AsArray().Select(k => ((string)k!["cmkArn"]!, (string)k["ciphertextBlob"]!)).ToArray(),
            (int)v["plaintextLength"]!, Hex(v["contextBytes"]), Hex(v["authenticatedFields"]), Hex(v["headerAuthTag"]),
            Hex(v["ciphertext"]), Hex(v["bodyAuthTag"]), Hex(v["asn1"]), Hex(v["stream"]))).ToList();
    }

    public override string ToString() => Name;
}

internal static class SdkPaths
{
    public static string RepoRoot { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvelopePS.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"EnvelopePS.sln not found above {AppContext.BaseDirectory}");
    }
}

internal static class Sdk
{
    public static async Task<byte[]> EncryptAsync(byte[] plaintext, DataKey key, IReadOnlyList<string> arns, EncryptionContext context,
        AlibabaSdkLayout layout, byte[]? headerIv = null, byte[]? bodyIv = null)
    {
        var output = new MemoryStream();
        if (headerIv is null) await AlibabaSdkEnvelope.EncryptAsync(new MemoryStream(plaintext), output, key, arns, context, layout);
        else await AlibabaSdkEnvelope.EncryptAsync(new MemoryStream(plaintext), output, key, arns, context, layout, headerIv, bodyIv!, null, default);
        return output.ToArray();
    }

    public static async Task<(AlibabaSdkDecryptResult Result, byte[] Plaintext)> DecryptAsync(byte[] message, IDataKeyProvider provider,
        EncryptionContext? required = null, bool trickle = false)
    {
        var output = new MemoryStream();
        Stream input = trickle ? new TrickleStream(message) : new MemoryStream(message);
        var result = await AlibabaSdkEnvelope.DecryptAsync(input, output, provider, new AlibabaSdkDecryptOptions { RequiredContext = required ?? EncryptionContext.Empty });
        return (result, output.ToArray());
    }
}

/// <summary>
/// Runs the independent Encryption SDK implementation, tests/interop/alibaba_sdk.py (written from the official SDKs'
/// sources), with Debian's /usr/bin/python3, python3-asn1crypto and python3-cryptography (build.ps1 -Task Test installs
/// them); if they are missing, the tests that use it fail rather than skip.
/// </summary>
internal static class PythonSdk
{
    private const string Python = "/usr/bin/python3";
    private static readonly string Script = Path.Combine(SdkPaths.RepoRoot, "tests", "interop", "alibaba_sdk.py");

    public sealed record Run(int ExitCode, string Stdout, string Stderr);

    public static Run Invoke(params string[] args)
    {
        Xunit.Assert.True(File.Exists(Python), $"{Python} is missing: install Debian's python3, python3-asn1crypto and python3-cryptography (build.ps1 -Task Test does).");
        var start = new System.Diagnostics.ProcessStartInfo(Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = SdkPaths.RepoRoot,
        };
        start.ArgumentList.Add(Script);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment["PYTHONIOENCODING"] = "utf-8";
        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException("could not start python3");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("python3 did not finish within 2 minutes");
        }
        return new Run(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Decrypts <paramref name="message"/> with the data key; returns the fields the Python reader found.</summary>
    public static JsonNode Decrypt(TempDir dir, byte[] message, byte[] dataKey, out byte[] plaintext)
    {
        string input = dir.File($"py-{Guid.NewGuid():N}.msg"), output = input + ".out";
        File.WriteAllBytes(input, message);
        var run = Invoke("decrypt", "--key-hex", Convert.ToHexString(dataKey), "--in", input, "--out", output);
        Xunit.Assert.True(run.ExitCode == 0, $"alibaba_sdk.py decrypt failed ({run.ExitCode}): {run.Stderr}");
        plaintext = File.ReadAllBytes(output);
        return JsonNode.Parse(run.Stdout)!;
    }

    /// <summary>Every field the Python reader found equals the one the core's reader found, in message order.</summary>
    public static void AssertSameFields(JsonNode python, AlibabaSdkHeader header, byte[] message)
    {
        static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes).ToLowerInvariant();
        Xunit.Assert.Equal(header.Layout == AlibabaSdkLayout.Asn1 ? "asn1" : "stream", (string)python["layout"]!);
        Xunit.Assert.Equal(header.Version, (int)python["version"]!);
        Xunit.Assert.Equal((int)header.Algorithm, (int)python["algorithm"]!);
        Xunit.Assert.Equal(header.EncryptedDataKeys.Select(k => (k.CmkArn, k.CiphertextBlob)),
            python["encryptedDataKeys"]!.AsArray().Select(k => ((string)k!["cmkArn"]!, (string)k["ciphertextBlob"]!)));
        var context = python["encryptionContext"]!.AsObject().Select(p => KeyValuePair.Create(p.Key, (string)p.Value!)).ToList();
        Xunit.Assert.True(header.EncryptionContext.ContentEquals(EncryptionContext.Create(context)));
        Xunit.Assert.Equal(context.Count, header.EncryptionContext.Count);
        Xunit.Assert.Equal(Hex(AlibabaSdkHeader.SerializeContext(header.EncryptionContext)), (string)python["contextBytes"]!);
        Xunit.Assert.Equal(Hex(header.HeaderIv.Span), (string)python["headerIv"]!);
        Xunit.Assert.Equal(Hex(header.HeaderAuthTag.Span), (string)python["headerAuthTag"]!);
        Xunit.Assert.Equal(Hex(header.BodyIv.Span), (string)python["bodyIv"]!);
        Xunit.Assert.Equal(Hex(message.AsSpan(message.Length - AlibabaSdkFormat.TagSize)), (string)python["bodyAuthTag"]!);
        Xunit.Assert.Equal(header.PlaintextLength, (long)python["plaintextLength"]!);
    }
}
