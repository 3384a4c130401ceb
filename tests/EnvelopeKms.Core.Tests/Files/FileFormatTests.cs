using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>The format abstraction: names, detection, each format's rules, and one verification per format.</summary>
public sealed class FileFormatTests : IDisposable
{
    private static readonly string[] Arns = ["acs:kms:cn-hangzhou:123456789012:key/key-1"];
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EveryFormat_HasItsOwnNameAndId_AndIsFoundByEither()
    {
        Assert.Equal(FileFormats.All.Count, FileFormats.All.Select(f => f.Name).Distinct(StringComparer.OrdinalIgnoreCase).Count());
        Assert.Equal(FileFormats.All.Count, FileFormats.All.Select(f => f.Id).Distinct().Count());
        foreach (var format in FileFormats.All)
        {
            Assert.Same(format, FileFormats.FromName(format.Name.ToLowerInvariant()));
            Assert.Same(format, FileFormats.FromId(format.Id));
        }
        Assert.Throws<ArgumentException>(() => FileFormats.FromName("Unknown"));
    }

    [Fact]
    public void TheLegacyFormat_RefusesAContextAndASecondKey()
    {
        var context = EncryptionContext.Create([new("app", "billing")]);
        Assert.Equal(FormatRule.NoContext, Assert.Throws<FormatRuleException>(() => FileFormats.Legacy.CheckEncryption(1, context)).Rule);
        Assert.Equal(FormatRule.OneKey, Assert.Throws<FormatRuleException>(() => FileFormats.Legacy.CheckEncryption(2, EncryptionContext.Empty)).Rule);
        FileFormats.Legacy.CheckEncryption(1, EncryptionContext.Empty);
    }

    [Fact]
    public void EveryOtherFormat_TakesAContext_AndUpToTheReadersKeyLimit()
    {
        var context = EncryptionContext.Create([new("app", "billing")]);
        foreach (var format in FileFormats.All.Where(f => f != FileFormats.Legacy))
        {
            format.CheckEncryption(EnvelopeFormat.DefaultMaxWrappedKeys, context);
            var e = Assert.Throws<FormatRuleException>(() => format.CheckEncryption(EnvelopeFormat.DefaultMaxWrappedKeys + 1, context));
            Assert.Equal(FormatRule.TooManyKeys, e.Rule);
        }
    }

    [Fact]
    public void TheEncryptionSdkFormats_RefuseAContextTheyCannotSerialize()
    {
        var large = EncryptionContext.Create([new("k", new string('v', EnvelopeKms.AlibabaSdk.AlibabaSdkFormat.MaxContextBytes))]);
        FileFormats.Ekms.CheckEncryption(1, large);
        Assert.Equal(FormatRule.ContextTooLarge, Assert.Throws<FormatRuleException>(() => FileFormats.AlibabaSdk.CheckEncryption(1, large)).Rule);
        Assert.Equal(FormatRule.ContextTooLarge, Assert.Throws<FormatRuleException>(() => FileFormats.AlibabaSdkStream.CheckEncryption(1, large)).Rule);
    }

    [Fact]
    public async Task AFileOfNoKnownFormat_IsReadAsEkms_WhoseReaderSaysWhatIsWrong()
    {
        string path = _dir.File("notes.txt");
        await File.WriteAllTextAsync(path, "hello, world");
        Assert.Null(await FileFormats.DetectAsync(path));
        Assert.Null(FileFormats.TryDetect(path));
        Assert.Same(FileFormats.Ekms, await FileFormats.OfFileAsync(path));
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Ekms.DescribeAsync(path));
        Assert.Equal(EnvelopeError.NotEnvelope, e.Error);
        Assert.Null(FileFormats.TryDetect(_dir.File("missing")));
    }

    [Theory]
    [InlineData("EKMS")]
    [InlineData("Legacy")]
    [InlineData("AlibabaSdk")]
    [InlineData("AlibabaSdkStream")]
    public async Task EachFormat_EncryptsDescribesVerifiesAndDecrypts_ThroughTheSameCalls(string name)
    {
        var format = FileFormats.FromName(name);
        var context = format.HasContext ? EncryptionContext.Create([new("app", "billing")]) : EncryptionContext.Empty;
        string source = _dir.File("a.bin"), sealedPath = _dir.File("a.bin.ekms"), opened = _dir.File("b.bin");
        byte[] content = Bytes.Random(70_000, 9);
        await File.WriteAllBytesAsync(source, content);
        using (var key = _provider.NewKey(Arns))
        {
            await format.EncryptAsync(new FileEncryption(source, sealedPath, key, context, false) { KeyArns = Arns });
            await format.VerifyAsync(sealedPath, key);
        }

        Assert.Same(format, await FileFormats.OfFileAsync(sealedPath));
        var description = await format.DescribeAsync(sealedPath);
        Assert.Same(format, description.Format);
        Assert.Equal(content.Length, description.PlaintextLength);
        Assert.Single(description.WrappedKeys);
        var verified = await format.VerifyAsync(sealedPath, _provider, context);
        Assert.NotNull(verified.UnwrappedFrom);
        var result = await format.DecryptAsync(new FileDecryption(sealedPath, opened, _provider, context, false));
        Assert.Equal(content.Length, result.PlaintextLength);
        Assert.Equal(content, await File.ReadAllBytesAsync(opened));
    }

    [Fact]
    public async Task VerifyingAHugeLegacyLookingFile_IsRefusedBeforeItIsRead()
    {
        // Test-EnvelopeFile once read such a file whole: the cap applies to every legacy operation alike.
        string source = _dir.File("huge.legacy");
        await using (var s = new FileStream(source, FileMode.CreateNew))
        {
            var line = Encoding.ASCII.GetBytes("QUJDREVGR0hJSktMTU5PUA==\n");
            for (int i = 0; i < 4; i++) s.Write(line);
            s.SetLength(1L << 30);
        }
        Assert.Same(FileFormats.Legacy, await FileFormats.OfFileAsync(source));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Legacy.VerifyAsync(source, _provider, EncryptionContext.Empty));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);
        Assert.Equal(EnvelopeError.LegacyInvalid, e.Error);
        Assert.Equal(0, _provider.DecryptCalls);
        Assert.Equal(EnvelopeError.LegacyInvalid, (await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Legacy.DescribeAsync(source))).Error);
    }

    [Fact]
    public async Task ALegacyFile_CannotMatchARequiredContext()
    {
        string source = _dir.File("a.bin"), sealedPath = _dir.File("a.txt");
        await File.WriteAllBytesAsync(source, Bytes.Random(100, 3));
        using (var key = _provider.NewKey()) await FileFormats.Legacy.EncryptAsync(new FileEncryption(source, sealedPath, key, EncryptionContext.Empty, false));
        var required = EncryptionContext.Create([new("app", "billing")]);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Legacy.VerifyAsync(sealedPath, _provider, required));
        Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        e = await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Legacy.DecryptAsync(new FileDecryption(sealedPath, _dir.File("out"), _provider, required, false)));
        Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        Assert.False(File.Exists(_dir.File("out")));
        Assert.Equal(0, _provider.DecryptCalls);
    }
}
