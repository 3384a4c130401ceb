using System.Diagnostics;
using System.Text.Json;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Interop;

/// <summary>
/// Runs the independent JavaScript implementation of docs/format.md (tests/interop/ekms.mjs, written from the spec
/// without reading this code) against the C# implementation in both directions, for format versions 1 and 2. Node.js 20 must be on PATH; if it
/// is not, these tests fail rather than skip, because a skipped interop test proves nothing.
/// </summary>
public sealed class NodeFormatInteropTests
{
    // A known data key (bytes 0xA0..0xBF), so a failure can be reproduced by hand with the CLI.
    private static readonly byte[] DataKeyBytes = Enumerable.Range(0xA0, 32).Select(i => (byte)i).ToArray();
    private static readonly string DataKeyHex = Convert.ToHexString(DataKeyBytes).ToLowerInvariant();

    // Non-ASCII keys, and two keys whose UTF-8 order differs from their UTF-16 order (U+FF61 vs U+1F600), so both
    // sides must agree on the canonical context encoding of §4.
    private static readonly Dictionary<string, string> Context = new()
    {
        ["project"] = "Apollo",
        ["ключ"] = "значение",
        ["\uFF61"] = "halfwidth",
        ["\U0001F600"] = "",
    };

    private static readonly WrappedDataKey Wrapped = new(
        WrappedDataKey.AlibabaKmsProvider, "acs:kms:cn-hangzhou:1234567890:key/key-interop", "v-interop", "cn-hangzhou",
        Convert.ToBase64String("interop-blob"u8.ToArray()));

    private static readonly Lazy<string> RepoRootLazy = new(FindRepoRoot);
    private static string Script => Path.Combine(RepoRootLazy.Value, "tests", "interop", "ekms.mjs");

    /// <summary>Every size class in v2 (the default), and the fixed ones again in v1.</summary>
    public static TheoryData<int, int, byte> Sizes()
    {
        var fixedSizes = new (int, int)[]
        {
            (0, 65536), (1, 65536), (4095, 65536), (65536, 65536), (65537, 65536), ((1 << 20) + 3, 65536),
            (4095, 4096), (4096, 4096), (4097, 4096), (3 * 4096, 4096), (0, 16 * 1024 * 1024),
        };
        var data = new TheoryData<int, int, byte>();
        foreach (var (size, frame) in fixedSizes) data.Add(size, frame, 2);
        foreach (var (size, frame) in fixedSizes.Take(6)) data.Add(size, frame, 1);
        // Random frame lengths, from a fixed seed so a failure is reproducible.
        var random = new Random(20261128);
        for (var i = 0; i < 4; i++) data.Add(random.Next(0, 600_000), random.Next(4096, 200_000), 2);
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task CSharpEncrypts_NodeDecrypts(int size, int frameLength, byte version)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(size, seed: size ^ frameLength);
        var file = await CSharpEncryptAsync(plaintext, frameLength, version);
        Assert.Equal(version, file[8]);
        File.WriteAllBytes(dir.File("cs.ekms"), file);

        var run = RunNode("decrypt", "--key-hex", DataKeyHex, "--in", dir.File("cs.ekms"), "--out", dir.File("out.bin"),
            "--context-json", JsonSerializer.Serialize(Context));

        Assert.True(run.ExitCode == 0, $"node decrypt failed: {run.Stderr}");
        Assert.Equal(plaintext, File.ReadAllBytes(dir.File("out.bin")));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task NodeEncrypts_CSharpDecrypts(int size, int frameLength, byte version)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(size, seed: ~(size ^ frameLength));
        File.WriteAllBytes(dir.File("in.bin"), plaintext);

        var run = RunNode([.. NodeEncryptArgs(dir.File("in.bin"), dir.File("node.ekms"), frameLength), "--version", version.ToString()]);
        Assert.True(run.ExitCode == 0, $"node encrypt failed: {run.Stderr}");

        var nodeFile = File.ReadAllBytes(dir.File("node.ekms"));
        Assert.Equal(version, nodeFile[8]);
        var (result, decrypted) = await CSharpDecryptAsync(nodeFile);
        Assert.Equal(plaintext, decrypted);
        Assert.Equal(size, result.PlaintextLength);
        Assert.Equal(Wrapped, result.UnwrappedFrom);
    }

    /// <summary>
    /// The strongest check: given the message id C# chose, Node writes the same file byte for byte, and parses the
    /// C# header to the same fields.
    /// </summary>
    [Theory]
    [InlineData(0, 4096, 1)]
    [InlineData(70_000, 65536, 1)]
    [InlineData(12_345, 5000, 1)]
    [InlineData(0, 4096, 2)]
    [InlineData(70_000, 65536, 2)]
    [InlineData(12_345, 5000, 2)]
    public async Task NodeReproducesACSharpFileFromItsMessageId(int size, int frameLength, byte version)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(size, seed: 7);
        var csFile = await CSharpEncryptAsync(plaintext, frameLength, version);
        File.WriteAllBytes(dir.File("cs.ekms"), csFile);
        File.WriteAllBytes(dir.File("in.bin"), plaintext);

        var header = RunNode("header", "--in", dir.File("cs.ekms"));
        Assert.True(header.ExitCode == 0, header.Stderr);
        using var json = JsonDocument.Parse(header.Stdout);
        var root = json.RootElement;
        Assert.Equal(frameLength, root.GetProperty("frameLength").GetInt32());
        Assert.Equal(Context, root.GetProperty("context").Deserialize<Dictionary<string, string>>());
        var keys = root.GetProperty("wrappedKeys").EnumerateArray().Select(k => new WrappedDataKey(
            k.GetProperty("providerId").GetString()!, k.GetProperty("keyId").GetString()!, k.GetProperty("keyVersionId").GetString()!,
            k.GetProperty("region").GetString()!, k.GetProperty("ciphertextBlob").GetString()!)).ToList();
        Assert.Equal(new[] { Wrapped }, keys);

        Assert.Equal(version, root.GetProperty("version").GetInt32());
        var args = NodeEncryptArgs(dir.File("in.bin"), dir.File("node.ekms"), frameLength)
            .Concat(new[] { "--message-id-hex", root.GetProperty("messageId").GetString()!, "--version", version.ToString() }).ToArray();
        if (version == 2)
        {
            var slots = root.GetProperty("slots").EnumerateArray().ToList();
            Assert.Equal(2, slots.Count);
            Assert.All(slots, slot => Assert.Equal(1, slot.GetProperty("generation").GetInt32()));
            args = [.. args, "--header-nonce-hex", slots[0].GetProperty("headerNonce").GetString()!];
        }
        var run = RunNode(args);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(Convert.ToHexString(csFile), Convert.ToHexString(File.ReadAllBytes(dir.File("node.ekms"))));
    }

    /// <summary>One flipped bit in a C#-written file: Node refuses with the code §7 names and writes no output.</summary>
    /// <remarks>In v2 a flipped header bit in one slot only makes the reader use the other slot, so the slot
    /// fields are flipped in both slots (the one-slot case is <see cref="CSharpFileWithOneDamagedSlot_NodeUsesTheOther"/>).</remarks>
    [Theory]
    [InlineData("body", "FrameTampered", 1)]
    [InlineData("header tag", "HeaderTampered", 1)]
    [InlineData("commitment", "KeyCommitmentMismatch", 1)]
    [InlineData("message id", "KeyCommitmentMismatch", 1)]
    [InlineData("body", "FrameTampered", 2)]
    [InlineData("header tag", "HeaderTampered", 2)]
    [InlineData("commitment", "KeyCommitmentMismatch", 2)]
    [InlineData("message id", "KeyCommitmentMismatch", 2)]
    [InlineData("slot size", "MalformedHeader", 2)]
    public async Task CSharpFileWithOneFlippedBit_IsRejectedByNode(string where, string expectedCode, byte version)
    {
        using var dir = new TempDir();
        var file = await CSharpEncryptAsync(Bytes.Random(10_000, seed: 3), 4096, version);
        var (headerLength, contentEnds) = HeaderLayout(file);
        var offsets = where switch
        {
            "body" => [headerLength + 4096 + 16 + 100], // inside frame 2
            "header tag" => contentEnds.Select(end => end - 1),
            "commitment" => contentEnds.Select(end => end - 16 - 32),
            "message id" => [16],
            "slot size" => [50],
            _ => throw new ArgumentOutOfRangeException(nameof(where)),
        };
        foreach (int offset in offsets) file[offset] ^= 0x04;
        File.WriteAllBytes(dir.File("bad.ekms"), file);

        var run = RunNode("decrypt", "--key-hex", DataKeyHex, "--in", dir.File("bad.ekms"), "--out", dir.File("out.bin"));

        Assert.NotEqual(0, run.ExitCode);
        Assert.Equal(expectedCode, run.Stderr.Split('\n')[0].Trim());
        Assert.False(File.Exists(dir.File("out.bin")), "Node must write nothing when decryption fails");
        Assert.Single(Directory.GetFiles(dir.Path)); // and leave no temp file behind
    }

    /// <summary>A torn or damaged slot in a C# file: Node, like C#, decrypts with the other slot and says so.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task CSharpFileWithOneDamagedSlot_NodeUsesTheOther(int bad)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(5000, seed: 5);
        var file = await CSharpEncryptAsync(plaintext, 4096, 2);
        var (_, contentEnds) = HeaderLayout(file);
        file[contentEnds[bad] - 1] ^= 0x01; // that slot's tag
        File.WriteAllBytes(dir.File("bad.ekms"), file);

        var run = RunNode("decrypt", "--key-hex", DataKeyHex, "--in", dir.File("bad.ekms"), "--out", dir.File("out.bin"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(plaintext, File.ReadAllBytes(dir.File("out.bin")));
        using var json = JsonDocument.Parse(run.Stdout);
        Assert.Equal(1 - bad, json.RootElement.GetProperty("activeSlot").GetInt32());
        Assert.Equal("damaged", json.RootElement.GetProperty("slotStates")[bad].GetString());

        var (result, decrypted) = await CSharpDecryptAsync(file);
        Assert.Equal(plaintext, decrypted);
        Assert.Equal(1 - bad, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[bad].State);
    }

    /// <summary>Node re-wraps a C# file (§12.5): a second entry in place, then a list too large for the slot (a rewrite); C# reads both.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task NodeRewrapsACSharpFile_CSharpDecrypts(byte version)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(9000, seed: 6);
        var file = await CSharpEncryptAsync(plaintext, 4096, version);
        File.WriteAllBytes(dir.File("cs.ekms"), file);
        var second = Wrapped with { KeyId = "acs:kms:cn-shanghai:1234567890:key/key-dr", Region = "cn-shanghai", CiphertextBlob = "ZHItYmxvYg==" };
        string Keys(IEnumerable<WrappedDataKey> keys) => JsonSerializer.Serialize(keys.Select(k => new
        {
            providerId = k.ProviderId, keyId = k.KeyId, keyVersionId = k.KeyVersionId, region = k.Region, ciphertextBlob = k.CiphertextBlob,
        }));

        var run = RunNode("rewrap", "--key-hex", DataKeyHex, "--in", dir.File("cs.ekms"), "--out", dir.File("two.ekms"), "--wrapped-keys-json", Keys([Wrapped, second]));
        Assert.True(run.ExitCode == 0, run.Stderr);
        using (var json = JsonDocument.Parse(run.Stdout))
        {
            Assert.Equal(version == 1, json.RootElement.GetProperty("rewritten").GetBoolean());
            Assert.Equal(version == 1 ? 1 : 2, json.RootElement.GetProperty("generation").GetInt32());
        }
        var two = File.ReadAllBytes(dir.File("two.ekms"));
        var (result, decrypted) = await CSharpDecryptAsync(two);
        Assert.Equal(plaintext, decrypted);
        Assert.Equal(new[] { Wrapped, second }, result.Header.WrappedKeys);
        Assert.Equal(2, two[8]);
        int bodyAt = HeaderLayout(file).HeaderLength;
        Assert.Equal(file[bodyAt..], two[HeaderLayout(two).HeaderLength..]);

        var many = Enumerable.Range(0, 8).Select(i => second with { KeyId = $"acs:kms:cn-shanghai:1234567890:key/{new string('k', 300)}{i}" }).Prepend(Wrapped).ToList();
        run = RunNode("rewrap", "--key-hex", DataKeyHex, "--in", dir.File("two.ekms"), "--out", dir.File("many.ekms"), "--wrapped-keys-json", Keys(many));
        Assert.True(run.ExitCode == 0, run.Stderr);
        using (var json = JsonDocument.Parse(run.Stdout)) Assert.True(json.RootElement.GetProperty("rewritten").GetBoolean());
        var (manyResult, manyPlain) = await CSharpDecryptAsync(File.ReadAllBytes(dir.File("many.ekms")), maxWrappedKeys: 16);
        Assert.Equal(plaintext, manyPlain);
        Assert.Equal(many, manyResult.Header.WrappedKeys);
        Assert.True(manyResult.Header.SlotSize > 1024);
    }

    /// <summary>C# re-wraps (in place, then a v1 file by a full rewrite); Node reads the result and agrees on the keys and generation.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task CSharpRewraps_NodeDecrypts(byte version)
    {
        using var dir = new TempDir();
        var plaintext = Bytes.Random(20_000, seed: 8);
        File.WriteAllBytes(dir.File("f.ekms"), await CSharpEncryptAsync(plaintext, 4096, version));
        var updater = new EnvelopeKms.Files.EnvelopeKeyUpdater(new FixedKeyProvider(), new FixedKeyProvider(), new EnvelopeKms.Files.EnvelopeKeyChange { Add = ["key-dr"] });
        var result = await updater.UpdateFileAsync(dir.File("f.ekms"));
        Assert.Equal(version == 1, result.Rewritten);

        var run = RunNode("decrypt", "--key-hex", DataKeyHex, "--in", dir.File("f.ekms"), "--out", dir.File("out.bin"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(plaintext, File.ReadAllBytes(dir.File("out.bin")));
        var header = RunNode("header", "--in", dir.File("f.ekms"));
        using var json = JsonDocument.Parse(header.Stdout);
        Assert.Equal(version == 1 ? 1 : 2, json.RootElement.GetProperty("generation").GetInt32());
        Assert.Equal(["acs:kms:cn-hangzhou:1234567890:key/key-interop", "key-dr"],
            json.RootElement.GetProperty("wrappedKeys").EnumerateArray().Select(k => k.GetProperty("keyId").GetString()));
        Assert.All(json.RootElement.GetProperty("slots").EnumerateArray(), slot => Assert.Equal(result.Generation, (uint)slot.GetProperty("generation").GetInt32()));
    }

    /// <summary>And the other way: a Node-written file with one flipped body bit is refused by C#.</summary>
    [Fact]
    public async Task NodeFileWithOneFlippedBit_IsRejectedByCSharp()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("in.bin"), Bytes.Random(10_000, seed: 4));
        var run = RunNode(NodeEncryptArgs(dir.File("in.bin"), dir.File("node.ekms"), 4096));
        Assert.True(run.ExitCode == 0, run.Stderr);
        var file = File.ReadAllBytes(dir.File("node.ekms"));
        file[^1] ^= 0x80; // the final frame's tag

        var error = await Assert.ThrowsAsync<EnvelopeException>(() => CSharpDecryptAsync(file));
        Assert.Equal(EnvelopeError.FrameTampered, error.Error);
    }

    // --------------------------------------------------------------------------------------------------------------

    private static async Task<byte[]> CSharpEncryptAsync(byte[] plaintext, int frameLength, byte version = EnvelopeFormat.DefaultVersion)
    {
        using var dataKey = new DataKey(DataKeyBytes, [Wrapped], Wrapped.KeyId);
        using var input = new MemoryStream(plaintext);
        using var output = new MemoryStream();
        await Envelope.EncryptAsync(input, output, dataKey, EncryptionContext.Create(Context),
            new EnvelopeEncryptOptions { FrameLength = frameLength, FormatVersion = version });
        return output.ToArray();
    }

    private static async Task<(EnvelopeDecryptResult Result, byte[] Plaintext)> CSharpDecryptAsync(byte[] file, int maxWrappedKeys = 8)
    {
        using var input = new MemoryStream(file);
        using var output = new MemoryStream();
        var result = await Envelope.DecryptAsync(input, output, new FixedKeyProvider(),
            new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(Context), Limits = new EnvelopeReadLimits { MaxWrappedKeys = maxWrappedKeys } });
        return (result, output.ToArray());
    }

    private static string[] NodeEncryptArgs(string input, string output, int frameLength) =>
    [
        "encrypt", "--key-hex", DataKeyHex, "--in", input, "--out", output, "--frame-length", frameLength.ToString(),
        "--context-json", JsonSerializer.Serialize(Context), "--blob", Wrapped.CiphertextBlob, "--key-id", Wrapped.KeyId,
        "--key-version-id", Wrapped.KeyVersionId, "--region", Wrapped.Region,
    ];

    // Reads the layout with Node's parser rather than C#'s, so the offsets above come from the spec's layout: the
    // header length, and where the tag of each header ends (v1: the header's end; v2: each slot's content end).
    private static (int HeaderLength, int[] ContentEnds) HeaderLayout(byte[] file)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("f.ekms"), file);
        var run = RunNode("header", "--in", dir.File("f.ekms"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        int headerLength = root.GetProperty("headerLength").GetInt32();
        if (root.GetProperty("version").GetInt32() == 1) return (headerLength, [headerLength]);
        int slotSize = root.GetProperty("slotSize").GetInt32();
        return (headerLength, root.GetProperty("slots").EnumerateArray()
            .Select(slot => 52 + slot.GetProperty("index").GetInt32() * slotSize + slot.GetProperty("contentLength").GetInt32()).ToArray());
    }

    /// <summary>Unwraps only <see cref="Wrapped"/>, to the known data key, the way a KMS would.</summary>
    private sealed class FixedKeyProvider : IDataKeyProvider, IDataKeyWrapper
    {
        public Task<WrappedDataKey> WrapDataKeyAsync(string keyId, DataKey dataKey, EncryptionContext context, CancellationToken cancellationToken) =>
            Task.FromResult(new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, keyId, "", "", "bmV3LWJsb2I="));

        public Task<IReadOnlyList<string>> ResolveKeyReferenceAsync(string keyReference, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<string>>([keyReference]);

        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken) =>
            throw new NotSupportedException("decryption only");

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            var entry = entries.FirstOrDefault(e => e == Wrapped)
                ?? throw new KeyProviderException(KeyProviderError.NoMatchingKey, "Not the interop key.");
            return Task.FromResult(new DataKey(DataKeyBytes, entries, entry.KeyId) { UnwrappedFrom = entry });
        }
    }

    private sealed record NodeRun(int ExitCode, string Stdout, string Stderr);

    private static NodeRun RunNode(params string[] args)
    {
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoRootLazy.Value,
        };
        start.ArgumentList.Add(Script);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start node");
        // Read both pipes concurrently so a chatty child cannot deadlock on a full pipe.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("node did not finish within 2 minutes");
        }
        return new NodeRun(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvelopePS.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"EnvelopePS.sln not found above {AppContext.BaseDirectory}");
    }
}
