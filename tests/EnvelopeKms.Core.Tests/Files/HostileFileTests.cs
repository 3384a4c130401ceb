using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// Hostile paths and files for the file API: long and odd names, directories named like files, symbolic links at the
/// source and at the destination, zero-length files, sources that change while they are read. docs/security.md
/// lists what each test proves.
/// </summary>
public class HostileFileTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();
    private readonly DataKey _key;

    public HostileFileTests() => _key = _provider.NewKey();

    public void Dispose()
    {
        _key.Dispose();
        _dir.Dispose();
    }

    private static int Utf8(string s) => Encoding.UTF8.GetByteCount(s);

    private async Task<byte[]> RoundTrip(string sourceName, byte[] plaintext)
    {
        string source = _dir.File(sourceName);
        await File.WriteAllBytesAsync(source, plaintext);
        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", _key, EncryptionContext.Empty);
        File.Delete(source);
        var decrypted = await EnvelopeFileOperations.DecryptFileAsync(encrypted.Destination, source, _provider);
        Assert.Equal(plaintext.Length, decrypted.PlaintextLength);
        AssertNoTempFiles();
        return await File.ReadAllBytesAsync(source);
    }

    private void AssertNoTempFiles()
        => Assert.Empty(Directory.GetFiles(_dir.Path, "*" + EnvelopeFileOperations.TempSuffix, SearchOption.AllDirectories));

    // ---- names -------------------------------------------------------------------------------------------------

    public static TheoryData<string> LongNames => new()
    {
        new string('a', 250),               // the output name is exactly 255 bytes
        new string('é', 125),               // 2-byte characters: 250 bytes, 125 chars
        new string('日', 83),               // 3-byte characters: 249 bytes, only 83 chars
        string.Concat(Enumerable.Repeat("😀", 62)), // 4-byte characters (surrogate pairs): 248 bytes
    };

    [Theory]
    [MemberData(nameof(LongNames))]
    public async Task NamesNearNameMax_RoundTrip_BecauseTheTempNameIsCutByBytes(string name)
    {
        Assert.InRange(Utf8(name + ".ekms"), 250, 255);
        var plaintext = Bytes.Random(1000, 3);
        Assert.Equal(plaintext, await RoundTrip(name, plaintext));
    }

    [Theory]
    [MemberData(nameof(LongNames))]
    public void TempNames_FitInNameMax_AndNeverSplitACharacter(string name)
    {
        string temp = Path.GetFileName(EnvelopeFileOperations.GetTempPath(_dir.File(name + ".ekms")));
        Assert.True(Utf8(temp) <= 255, $"temp name is {Utf8(temp)} bytes");
        Assert.StartsWith(".", temp);
        Assert.EndsWith(EnvelopeFileOperations.TempSuffix, temp);
        Assert.DoesNotContain('\uFFFD', Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(temp)));
        Assert.StartsWith("." + name[..Math.Min(name.Length, 20)], temp);
    }

    [Fact]
    public async Task AnOutputNameBeyondNameMax_IsAClearError_AndLeavesNothing()
    {
        string source = _dir.File(new string('b', 252)); // + ".ekms" = 257 bytes
        await File.WriteAllBytesAsync(source, [1, 2, 3]);
        var e = await Record.ExceptionAsync(() => EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", _key, EncryptionContext.Empty));
        Assert.IsAssignableFrom<IOException>(e);
        AssertNoTempFiles();
        Assert.Single(Directory.GetFileSystemEntries(_dir.Path));
    }

    [Theory]
    [InlineData("star*and?question.txt")]
    [InlineData("[brackets] {braces} (parens).txt")]
    [InlineData(" leading and trailing space .txt")]
    [InlineData("ünïcødé ✓ 文件.txt")]
    [InlineData("-dash 'quote' \"dq\" `tick` $dollar;semi.txt")]
    [InlineData("new\nline.txt")]
    public async Task WildcardUnicodeAndSpaceNames_AreLiteral(string name)
    {
        if (OperatingSystem.IsWindows() && name.IndexOfAny(['*', '?', '"', '\n']) >= 0) return;
        File.WriteAllText(_dir.File("other.txt"), "a file the wildcards would match");
        var plaintext = Bytes.Random(77, 4);
        Assert.Equal(plaintext, await RoundTrip(name, plaintext));
        Assert.Equal("a file the wildcards would match", File.ReadAllText(_dir.File("other.txt")));
        Assert.False(File.Exists(_dir.File("other.txt.ekms")));
    }

    // ---- zero length --------------------------------------------------------------------------------------------

    [Fact]
    public async Task AZeroLengthFile_RoundTrips_ToAZeroLengthFile()
    {
        Assert.Empty(await RoundTrip("empty", []));
    }

    [Fact]
    public async Task AZeroLengthFile_IsNotAnEnvelope_AndNoKmsIsCalled()
    {
        string source = _dir.File("empty.ekms");
        File.WriteAllBytes(source, []);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(source, _dir.File("out"), _provider));
        Assert.Equal(EnvelopeError.NotEnvelope, e.Error);
        Assert.Equal(0, _provider.DecryptCalls);
        Assert.False(File.Exists(_dir.File("out")));
    }

    // ---- directories named like files ---------------------------------------------------------------------------

    [Fact]
    public async Task ADirectoryNamedLikeAnEnvelope_AsInput_FailsWithoutOutput()
    {
        string source = _dir.File("x.ekms");
        Directory.CreateDirectory(source);
        var e = await Record.ExceptionAsync(() => EnvelopeFileOperations.DecryptFileAsync(source, _dir.File("x"), _provider));
        Assert.True(e is UnauthorizedAccessException or IOException, e?.ToString());
        Assert.False(File.Exists(_dir.File("x")));
        AssertNoTempFiles();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADirectoryNamedLikeTheOutput_IsRefused_EvenWithOverwrite(bool overwrite)
    {
        string source = _dir.File("x");
        File.WriteAllText(source, "data");
        string destination = _dir.File("x.ekms");
        Directory.CreateDirectory(destination);
        File.WriteAllText(Path.Combine(destination, "inside"), "keep");
        var e = await Assert.ThrowsAnyAsync<IOException>(() => EnvelopeFileOperations.EncryptFileAsync(source, destination, _key, EncryptionContext.Empty, overwrite));
        Assert.Contains("directory", e.Message);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(destination, "inside")));
        AssertNoTempFiles();
    }

    // ---- symbolic links -----------------------------------------------------------------------------------------

    [Fact]
    public async Task ASourceReachedThroughASymlink_IsRead()
    {
        if (OperatingSystem.IsWindows()) return;
        var plaintext = Bytes.Random(5000, 5);
        string real = _dir.File("real.bin");
        File.WriteAllBytes(real, plaintext);
        string link = _dir.File("link.bin");
        File.CreateSymbolicLink(link, real);
        var result = await EnvelopeFileOperations.EncryptFileAsync(link, link + ".ekms", _key, EncryptionContext.Empty);
        Assert.Null(new FileInfo(result.Destination).LinkTarget);
        await EnvelopeFileOperations.DecryptFileAsync(result.Destination, _dir.File("back.bin"), _provider);
        Assert.Equal(plaintext, File.ReadAllBytes(_dir.File("back.bin")));
        Assert.Equal(plaintext, File.ReadAllBytes(real));
    }

    /// <summary>
    /// A symlink named like the output, pointing at a file elsewhere (another user's, a system file): without
    /// overwrite it is an existing destination; with overwrite the link itself is replaced by the new file and its
    /// target is never opened for writing.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task ASymlinkAtTheDestination_IsNeverWrittenThrough(bool overwrite, bool decrypt)
    {
        if (OperatingSystem.IsWindows()) return;
        string victimDir = Directory.CreateDirectory(_dir.File("elsewhere")).FullName;
        string victim = Path.Combine(victimDir, "victim.conf");
        File.WriteAllText(victim, "precious");
        var plaintext = Bytes.Random(3000, 6);
        string source = _dir.File("data.bin");
        File.WriteAllBytes(source, plaintext);
        string destination;
        if (decrypt)
        {
            var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", _key, EncryptionContext.Empty);
            File.Delete(source);
            source = encrypted.Destination;
            destination = _dir.File("data.bin");
        }
        else
        {
            destination = source + ".ekms";
        }
        File.CreateSymbolicLink(destination, victim);

        var task = decrypt
            ? EnvelopeFileOperations.DecryptFileAsync(source, destination, _provider, overwrite)
            : EnvelopeFileOperations.EncryptFileAsync(source, destination, _key, EncryptionContext.Empty, overwrite);
        if (overwrite)
        {
            await task;
            Assert.Null(new FileInfo(destination).LinkTarget); // the link was replaced by a regular file
            if (decrypt) Assert.Equal(plaintext, File.ReadAllBytes(destination));
        }
        else
        {
            await Assert.ThrowsAsync<DestinationExistsException>(() => task);
            Assert.Equal(victim, new FileInfo(destination).LinkTarget);
        }
        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.Single(Directory.GetFileSystemEntries(victimDir));
        AssertNoTempFiles();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADanglingSymlinkAtTheDestination_DoesNotCreateItsTarget(bool overwrite)
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("d.bin");
        File.WriteAllBytes(source, Bytes.Random(100, 7));
        string target = _dir.File("created-through-the-link");
        string destination = source + ".ekms";
        File.CreateSymbolicLink(destination, target);
        var task = EnvelopeFileOperations.EncryptFileAsync(source, destination, _key, EncryptionContext.Empty, overwrite);
        if (overwrite) await task;
        else await Assert.ThrowsAsync<DestinationExistsException>(() => task);
        Assert.False(File.Exists(target));
        Assert.Equal(overwrite, new FileInfo(destination).LinkTarget is null);
    }

    [Fact]
    public async Task ASymlinkToADirectoryAtTheDestination_IsRefused()
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("s.bin");
        File.WriteAllBytes(source, [1]);
        string realDir = Directory.CreateDirectory(_dir.File("realdir")).FullName;
        File.CreateSymbolicLink(source + ".ekms", realDir);
        await Assert.ThrowsAnyAsync<IOException>(() => EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", _key, EncryptionContext.Empty, overwrite: true));
        Assert.Empty(Directory.GetFileSystemEntries(realDir));
        Assert.Equal(realDir, new FileInfo(source + ".ekms").LinkTarget);
    }

    // ---- sources that change while they are read ---------------------------------------------------------------

    private const int Big = 24 << 20;

    /// <summary>
    /// A source that grows while it is encrypted: the output is a valid, complete file of exactly the bytes that were
    /// read (the original plus some prefix of what was appended), and the reported length is that of the output.
    /// </summary>
    [Fact]
    public async Task ASourceThatGrowsWhileEncrypted_GivesAValidFileOfWhatWasRead()
    {
        string source = _dir.File("growing.bin");
        var original = Bytes.Random(Big, 8);
        File.WriteAllBytes(source, original);
        var appended = Bytes.Random(8 << 20, 9);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            await using var append = new FileStream(source, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            for (int i = 0; i < appended.Length && !stop.IsCancellationRequested; i += 64 << 10)
            {
                await append.WriteAsync(appended.AsMemory(i, Math.Min(64 << 10, appended.Length - i)));
                await append.FlushAsync();
            }
        });
        EnvelopeFileResult result;
        try
        {
            result = await EncryptSharingWrites(source);
        }
        finally
        {
            stop.Cancel();
            await writer;
        }
        var decrypted = await DecryptToBytes(result.Destination);
        Assert.Equal(decrypted.Length, result.PlaintextLength);
        Assert.InRange(decrypted.Length, original.Length, original.Length + appended.Length);
        Assert.Equal(original, decrypted[..original.Length]);
        Assert.Equal(appended[..(decrypted.Length - original.Length)], decrypted[original.Length..]);
    }

    [Fact]
    public async Task ASourceThatShrinksWhileEncrypted_GivesAValidFileOfWhatWasRead()
    {
        string source = _dir.File("shrinking.bin");
        var original = Bytes.Random(Big, 10);
        File.WriteAllBytes(source, original);
        const int cut = 1 << 20;
        var shrinker = Task.Run(async () =>
        {
            await Task.Delay(1);
            using var s = new FileStream(source, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            s.SetLength(cut);
        });
        EnvelopeFileResult result;
        try
        {
            result = await EncryptSharingWrites(source);
        }
        finally
        {
            await shrinker;
        }
        var decrypted = await DecryptToBytes(result.Destination);
        Assert.Equal(decrypted.Length, result.PlaintextLength);
        Assert.InRange(decrypted.Length, cut, original.Length);
        Assert.Equal(original[..decrypted.Length], decrypted);
    }

    /// <summary>The file API opens sources with FileShare.Read; a writer that already has the file open still writes (POSIX has no mandatory locks).</summary>
    private async Task<EnvelopeFileResult> EncryptSharingWrites(string source)
    {
        var result = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", _key, EncryptionContext.Empty,
            options: new EnvelopeEncryptOptions { FrameLength = 4096 });
        AssertNoTempFiles();
        return result;
    }

    private async Task<byte[]> DecryptToBytes(string path)
    {
        string output = path + ".out";
        await EnvelopeFileOperations.DecryptFileAsync(path, output, _provider);
        var bytes = await File.ReadAllBytesAsync(output);
        File.Delete(output);
        return bytes;
    }

    // ---- huge claims -------------------------------------------------------------------------------------------

    [Fact]
    public void BodyLengthsBeyondTheFrameLimit_HaveNoPlaintextLength_AndNeverOverflow()
    {
        foreach (int f in new[] { EnvelopeFormat.MinFrameLength, EnvelopeFormat.DefaultFrameLength, EnvelopeFormat.MaxFrameLength })
        {
            Assert.Null(FrameLayout.PlaintextLength(long.MaxValue, f));
            Assert.Null(FrameLayout.PlaintextLength((long)EnvelopeFormat.MaxFrameCount * (f + 16) + 16, f));
            Assert.NotNull(FrameLayout.PlaintextLength((long)(EnvelopeFormat.MaxFrameCount - 1) * (f + 16) + 16, f));
            Assert.Null(FrameLayout.PlaintextLength(15, f));
            Assert.Null(FrameLayout.PlaintextLength(-1, f));
        }
    }

    /// <summary>A sparse 1 GiB file that looks like the legacy format is refused by its size, before it is read into memory.</summary>
    [Fact]
    public async Task AHugeLegacyLookingFile_IsRefusedBeforeAllocating()
    {
        string source = _dir.File("huge.legacy");
        await using (var s = new FileStream(source, FileMode.CreateNew))
        {
            var line = Encoding.ASCII.GetBytes("QUJDREVGR0hJSktMTU5PUA==\n");
            for (int i = 0; i < 4; i++) s.Write(line);
            s.SetLength(1L << 30);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = await Record.ExceptionAsync(() => FileFormats.Legacy.DecryptAsync(new FileDecryption(source, _dir.File("out"), _provider, EncryptionContext.Empty, false)));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(e is EnvelopeException { Error: EnvelopeError.LegacyInvalid or EnvelopeError.NotEnvelope }, e?.ToString());
        Assert.True(allocated < 16 << 20, $"allocated {allocated} bytes");
        Assert.False(File.Exists(_dir.File("out")));
        Assert.Equal(0, _provider.DecryptCalls);
    }
}
