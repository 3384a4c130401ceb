using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;
using Xunit;

namespace EnvelopeKms.Tests.Legacy;

public class LegacyEnvelopeTests
{
    // Test vectors from Bellare, Rogaway, Wagner, "The EAX Mode of Operation" (FSE 2004), appendix: key, nonce,
    // header, message, ciphertext || tag.
    [Theory]
    [InlineData("233952DEE4D5ED5F9B9C6D6FF80FF478", "62EC67F9C3A4A407FCB2A8C49031A8B3", "6BFB914FD07EAE6B", "", "E037830E8389F27B025A2D6527E79D01")]
    [InlineData("91945D3F4DCBEE0BF45EF52255F095A4", "BECAF043B0A23D843194BA972C66DEBD", "FA3BFD4806EB53FA", "F7FB", "19DD5C4C9331049D0BDAB0277408F67967E5")]
    [InlineData("01F74AD64077F2E704C0F60ADA3DD523", "70C3DB4F0D26368400A10ED05D2BFF5E", "234A3463C1264AC6", "1A47CB4933", "D851D5BAE03A59F238A23E39199DC9266626C40F80")]
    [InlineData("D07CF6CBB7F313BDDE66B727AFD3C5E8", "8408DFFF3C1A2B1292DC199E46B7D617", "33CCE2EABFF5A79D", "481C9E39B1", "632A9D131AD4C168A4225D8E1FF755939974A7BEDE")]
    public void EaxMatchesThePaperVectors(string key, string nonce, string header, string message, string expected)
    {
        var plaintext = Convert.FromHexString(message);
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[16];
        using var eax = new AesEax(Convert.FromHexString(key));
        eax.Encrypt(Convert.FromHexString(nonce), Convert.FromHexString(header), plaintext, ciphertext, tag);
        Assert.Equal(expected, Convert.ToHexString([.. ciphertext, .. tag]));

        var back = new byte[plaintext.Length];
        Assert.True(eax.TryDecrypt(Convert.FromHexString(nonce), Convert.FromHexString(header), ciphertext, tag, back));
        Assert.Equal(plaintext, back);
        tag[0] ^= 1;
        Assert.False(eax.TryDecrypt(Convert.FromHexString(nonce), Convert.FromHexString(header), ciphertext, tag, back));
    }

    [Fact]
    public void EaxMatchesTheSeedSampleVector()
    {
        // shared/reference/alibaba-kms-api.md §7: AES-256 key 00..1f, nonce 00..0f, no header, "hello,world\n".
        // pycryptodome gives the same bytes (tests/pester/LegacyInterop.Tests.ps1 runs it; docs/format.md §11).
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var nonce = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
        var plaintext = Encoding.ASCII.GetBytes("hello,world\n");
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[16];
        using var eax = new AesEax(key);
        eax.Encrypt(nonce, [], plaintext, ciphertext, tag);
        Assert.Equal("HPf/cKZ9clUyHgYq", Convert.ToBase64String(ciphertext));
        Assert.Equal("h6kkS/kO91LhwxDuaPC+uA==", Convert.ToBase64String(tag));
    }

    [Fact]
    public void EaxHandlesLongMessagesAcrossCounterChunks()
    {
        var key = Bytes.Random(32, 1);
        var nonce = Bytes.Random(16, 2);
        var plaintext = Bytes.Random(10_000, 3);
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[16];
        using var eax = new AesEax(key);
        eax.Encrypt(nonce, [], plaintext, ciphertext, tag);
        var back = new byte[plaintext.Length];
        Assert.True(eax.TryDecrypt(nonce, [], ciphertext, tag, back));
        Assert.Equal(plaintext, back);
    }

    private static string SeedFile(out byte[] key)
    {
        key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        return "YmxvYi1mb3Itc2VlZA==\n" + Convert.ToBase64String(Enumerable.Range(0, 16).Select(i => (byte)i).ToArray()) + "\nHPf/cKZ9clUyHgYq\nh6kkS/kO91LhwxDuaPC+uA==\n";
    }

    [Fact]
    public async Task DecryptsTheSampleFileAndDetectsItByContent()
    {
        using var dir = new TempDir();
        var provider = new InMemoryKeyProvider();
        string text = SeedFile(out var key);
        provider.Add("YmxvYi1mb3Itc2VlZA==", key);
        string source = dir.File("sales.csv.encrypted");
        await File.WriteAllTextAsync(source, text);
        Assert.Equal(EnvelopeFileFormat.Legacy, (await FileFormats.DetectAsync(source))!.Id);
        await FileFormats.Legacy.DecryptAsync(new FileDecryption(source, dir.File("sales.csv"), provider, EncryptionContext.Empty, false));
        Assert.Equal("hello,world\n", await File.ReadAllTextAsync(dir.File("sales.csv")));
    }

    [Fact]
    public async Task WritesAFileTheSampleFormatReadsBack()
    {
        using var dir = new TempDir();
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey();
        string source = dir.File("a.bin");
        await File.WriteAllBytesAsync(source, Bytes.Random(1000, 5));
        await FileFormats.Legacy.EncryptAsync(new FileEncryption(source, dir.File("a.bin.txt"), key, EncryptionContext.Empty, false));
        var lines = (await File.ReadAllTextAsync(dir.File("a.bin.txt"))).Split('\n');
        Assert.Equal(5, lines.Length); // four lines, each ending in \n
        Assert.Equal(key.WrappedKeys[0].CiphertextBlob, lines[0]);
        Assert.Equal(16, Convert.FromBase64String(lines[1]).Length);
        await FileFormats.Legacy.DecryptAsync(new FileDecryption(dir.File("a.bin.txt"), dir.File("b.bin"), provider, EncryptionContext.Empty, false));
        Assert.Equal(Bytes.Random(1000, 5), await File.ReadAllBytesAsync(dir.File("b.bin")));
    }

    [Theory]
    [InlineData("only\nthree\nlines\n")]
    [InlineData("YQ==\nAAAA\nAAAA\nAAAA\n")]                                  // nonce too short
    [InlineData("YQ==\nAAECAwQFBgcICQoLDA0ODw==\n!!!\nAAECAwQFBgcICQoLDA0ODw==\n")] // ciphertext not base64
    public void MalformedLegacyFilesAreRejected(string text)
    {
        var e = Assert.Throws<EnvelopeException>(() => LegacyEnvelope.Parse(Encoding.ASCII.GetBytes(text)));
        Assert.Equal(EnvelopeError.LegacyInvalid, e.Error);
    }

    [Fact]
    public async Task ATamperedLegacyFileFailsAndWritesNothing()
    {
        using var dir = new TempDir();
        var provider = new InMemoryKeyProvider();
        string text = SeedFile(out var key).Replace("HPf/cKZ9clUyHgYq", "HPf/cKZ9clUyHgYr");
        provider.Add("YmxvYi1mb3Itc2VlZA==", key);
        await File.WriteAllTextAsync(dir.File("x.txt"), text);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => FileFormats.Legacy.DecryptAsync(new FileDecryption(dir.File("x.txt"), dir.File("y"), provider, EncryptionContext.Empty, false)));
        Assert.Equal(EnvelopeError.LegacyInvalid, e.Error);
        Assert.False(File.Exists(dir.File("y")));
    }

    [Fact]
    public void FormatDetectionTellsTheFormatsApart()
    {
        Assert.Equal(EnvelopeFileFormat.Ekms, (FileFormats.Detect(EnvelopeFormat.Magic)?.Id ?? EnvelopeFileFormat.Unknown));
        Assert.Equal(EnvelopeFileFormat.Legacy, (FileFormats.Detect("YmxvYg==\nAAAA"u8)?.Id ?? EnvelopeFileFormat.Unknown));
        Assert.Equal(EnvelopeFileFormat.Unknown, (FileFormats.Detect("hello, world"u8)?.Id ?? EnvelopeFileFormat.Unknown));
        Assert.Equal(EnvelopeFileFormat.Unknown, (FileFormats.Detect("iUVLTQ0KGgoB"u8)?.Id ?? EnvelopeFileFormat.Unknown));
        Assert.Equal(EnvelopeFileFormat.Unknown, (FileFormats.Detect([])?.Id ?? EnvelopeFileFormat.Unknown));
    }
}
