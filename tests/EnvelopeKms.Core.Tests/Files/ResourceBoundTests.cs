using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>Run alone: these tests count every byte the process allocates while they run.</summary>
[CollectionDefinition(nameof(AllocationCounting), DisableParallelization = true)]
public sealed class AllocationCounting;

/// <summary>
/// Issue 18, resource exhaustion before any check: memory spent on a file before it is validated is bounded by what
/// the format itself can check, not by the file's length. Sparse files make each case cheap in disk and time; the
/// bytes allocated are counted over the whole process (GC.GetTotalAllocatedBytes) with no other test running.
/// </summary>
[Collection(nameof(AllocationCounting))]
public class ResourceBoundTests : IDisposable
{
    private const long Budget = 16 << 20;
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A sparse file of <paramref name="length"/> bytes that starts with <paramref name="prefix"/>.</summary>
    private string Sparse(string name, byte[] prefix, long length)
    {
        string path = _dir.File(name);
        using var file = new FileStream(path, FileMode.CreateNew);
        file.Write(prefix);
        file.SetLength(length);
        return path;
    }

    private static async Task<(Exception? Error, long Allocated)> Measure(Func<Task> action)
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var error = await Record.ExceptionAsync(action);
        return (error, GC.GetTotalAllocatedBytes(precise: true) - before);
    }

    private static readonly byte[] LegacyLooking = Encoding.ASCII.GetBytes("QUFBQUFBQUFBQUFBQUFBQUFBQUFB\n");

    [Fact]
    public async Task ASparseLegacyLookingFile_IsRefusedAtItsFirstBadByte_NotReadWhole()
    {
        // The review: 256 MiB that start like a legacy file were read whole and decoded as text, peaking at 1.4 GB.
        string source = Sparse("sparse.enc", LegacyLooking, LegacyEnvelope.MaxFileSize - 1);
        var (error, allocated) = await Measure(() => FileFormats.Legacy.DecryptAsync(new FileDecryption(source, _dir.File("out"), _provider, EncryptionContext.Empty, false)));
        Assert.True(error is EnvelopeException { Error: EnvelopeError.LegacyInvalid }, error?.ToString());
        Assert.Contains("second line", error!.Message);
        Assert.True(allocated < Budget, $"allocated {allocated:N0} bytes");
        Assert.Equal(0, _provider.DecryptCalls);
        Assert.False(File.Exists(_dir.File("out")));
    }

    [Fact]
    public async Task FourSparseLegacyLookingFilesAtOnce_CostNoMoreThanOne()
    {
        var sources = Enumerable.Range(0, 4).Select(i => Sparse($"sparse{i}.enc", LegacyLooking, LegacyEnvelope.MaxFileSize - 1)).ToList();
        var (error, allocated) = await Measure(() => Task.WhenAll(sources.Select(s => Task.Run(async () =>
        {
            var e = await Record.ExceptionAsync(() => FileFormats.Legacy.DecryptAsync(new FileDecryption(s, s + ".out", _provider, EncryptionContext.Empty, false)));
            Assert.True(e is EnvelopeException { Error: EnvelopeError.LegacyInvalid }, e?.ToString());
        }))));
        Assert.Null(error);
        Assert.True(allocated < Budget, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public async Task VerifyingA1GiBLegacyLookingFile_IsRefusedBeforeItIsRead()
    {
        string source = Sparse("huge.enc", LegacyLooking, 1L << 30);
        var (error, allocated) = await Measure(() => FileFormats.Legacy.VerifyAsync(source, _provider, EncryptionContext.Empty));
        Assert.True(error is EnvelopeException { Error: EnvelopeError.LegacyInvalid }, error?.ToString());
        Assert.Contains("larger than 256 MiB", error!.Message);
        Assert.True(allocated < 1 << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public async Task ReadingAGenuineLegacyFile_CostsAboutItsCiphertext_NotItsTextSeveralTimes()
    {
        // 8 MiB of plaintext is a 10.7 MiB text file; reading it whole, as a string, split into lines and decoded cost
        // about 8x the ciphertext. Now the buffer grows with the decoded ciphertext (doubling: under 2x, plus a chunk).
        const int size = 8 << 20;
        string plain = _dir.File("plain");
        await File.WriteAllBytesAsync(plain, Bytes.Random(size, 7));
        using var key = _provider.NewKey();
        await FileFormats.Legacy.EncryptAsync(new FileEncryption(plain, plain + ".enc", key, EncryptionContext.Empty, false));
        LegacyEnvelope? envelope = null;
        var (error, allocated) = await Measure(async () => envelope = await LegacyFileFormat.ReadAsync(plain + ".enc"));
        Assert.Null(error);
        Assert.Equal(size, envelope!.Ciphertext.Length);
        Assert.True(allocated < 3L * size, $"allocated {allocated:N0} bytes for {size:N0} bytes of ciphertext");
        var decrypted = envelope.Decrypt(key);
        Assert.Equal(await File.ReadAllBytesAsync(plain), decrypted);
    }

    [Theory]
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\n", true)]
    [InlineData("YWJj\r\nQUFBQUFBQUFBQUFBQUFBQQ== \r\nYWJj\t\r\nQUFBQUFBQUFBQUFBQUFBQQ==", true)] // CRLF, trailing blanks, no final LF
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\n\nQUFBQUFBQUFBQUFBQUFBQQ==\n\n\n", true)] // empty ciphertext, empty lines at the end
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYW Jj\nQUFBQUFBQUFBQUFBQUFBQQ==\n", false)] // a blank inside a line
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nx\n", false)] // a fifth line
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYW=j\nQUFBQUFBQUFBQUFBQUFBQQ==\n", false)] // padding inside
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYWJ\nQUFBQUFBQUFBQUFBQUFBQQ==\n", false)] // not a multiple of four
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQUFB\nYWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\n", false)] // an 18-byte nonce
    [InlineData("YWJj\nQUFBQUFBQUFBQUFBQUFBQQ==\nYWJj\n", false)] // three lines
    public void TheLegacyReader_TakesTheSampleShapeAndNothingElse(string text, bool valid)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var whole = Record.Exception(() => LegacyEnvelope.Parse(bytes));
        Assert.Equal(valid, whole is null);
        if (whole is not null) Assert.Equal(EnvelopeError.LegacyInvalid, Assert.IsType<EnvelopeException>(whole).Error);
        // Byte by byte, the same answer: lines are checked as they arrive, whatever the chunking.
        var trickled = Record.Exception(() => LegacyEnvelope.ReadAsync(new TrickleStream(bytes)).GetAwaiter().GetResult());
        Assert.Equal(valid, trickled is null);
    }

    [Fact]
    public async Task ALegacyCiphertextLongerThanOneDecodeChunk_RoundTrips()
    {
        var plaintext = Bytes.Random(200_001, 9); // about 267,000 base64 characters: several 64 Ki chunks and an uneven end
        using var key = _provider.NewKey();
        var text = LegacyEnvelope.Encrypt(key, plaintext);
        var envelope = await LegacyEnvelope.ReadAsync(new MemoryStream(text));
        var decrypted = envelope.Decrypt(key);
        Assert.Equal(plaintext, decrypted);
        CryptographicOperations.ZeroMemory(decrypted);
    }

    [Fact]
    public async Task ConvertingA1GiBFileThatHoldsOnlyTheMagic_AllocatesNothingForItsLength()
    {
        // The review: Convert-EnvelopeFile allocated min(file length, 1 GiB) before parsing anything (3.9 s, 1.15 GB).
        string source = Sparse("magic.ekms", EnvelopeFormat.Magic.ToArray(), EnvelopeConverter.MaxPlaintextLength);
        var (error, allocated) = await Measure(() => EnvelopeConverter.ConvertFileAsync(source, EnvelopeFileFormat.Ekms, source + ".out", EnvelopeFileFormat.Legacy,
            _provider, EncryptionContext.Empty, (_, _, _) => throw new InvalidOperationException("no key should be asked for"), null, null, overwrite: false));
        Assert.True(error is EnvelopeException, error?.ToString());
        Assert.True(allocated < Budget, $"allocated {allocated:N0} bytes");
        Assert.Equal(0, _provider.DecryptCalls);
    }

    [Fact]
    public async Task ConvertingAGenuineHeaderWithASparseBody_GrowsOnlyWithFramesThatAuthenticate()
    {
        // A real EKMS file whose body is followed by a sparse tail: the first frame after the genuine ones fails, and
        // memory has grown only with the plaintext of the frames that authenticated.
        string plain = _dir.File("p");
        await File.WriteAllBytesAsync(plain, Bytes.Random(100_000, 11));
        using var key = _provider.NewKey();
        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(plain, plain + ".ekms", key, EncryptionContext.Empty);
        await using (var file = new FileStream(encrypted.Destination, FileMode.Open)) file.SetLength(512L << 20);
        var (error, allocated) = await Measure(() => EnvelopeConverter.ConvertFileAsync(encrypted.Destination, EnvelopeFileFormat.Ekms, plain + ".out",
            EnvelopeFileFormat.Legacy, _provider, EncryptionContext.Empty, (_, _, _) => throw new InvalidOperationException("no key should be asked for"), null, null, overwrite: false));
        Assert.True(error is EnvelopeException, error?.ToString());
        Assert.True(allocated < 64 << 20, $"allocated {allocated:N0} bytes");
        Assert.False(File.Exists(plain + ".out"));
    }
}
