#pragma warning disable CA1416 // every test returns early on Windows
using EnvelopeKms.Files;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// Issue 18, file system: a destination that reaches the source by another path (a symlinked directory, a hard link)
/// is the source and is refused before anything is written; -RemoveSource refuses a source whose name is not its only
/// link (a symbolic link, a file with other hard links); a new output obeys the umask as well as the source's mode.
/// </summary>
public class FileIdentityTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A directory link to the temp dir: another path to every file in it.</summary>
    private string Via()
    {
        string via = _dir.File("via");
        if (!Directory.Exists(via)) Directory.CreateSymbolicLink(via, _dir.Path);
        return via;
    }

    private static void Link(string existing, string name)
    {
        using var ln = System.Diagnostics.Process.Start("ln", [existing, name]);
        ln.WaitForExit();
        Assert.Equal(0, ln.ExitCode);
    }

    [Fact]
    public void IdentityTellsFilesApart_AndSeesThroughLinks()
    {
        if (OperatingSystem.IsWindows()) return;
        string a = _dir.File("a"), b = _dir.File("b");
        File.WriteAllText(a, "a");
        File.WriteAllText(b, "b");
        Assert.True(FileIdentity.TryGet(a, false, out var ia));
        Assert.True(FileIdentity.TryGet(b, false, out var ib));
        Assert.False(ia.SameFileAs(ib));
        Assert.Equal(1, ia.LinkCount);
        Assert.True(FileIdentity.TryGet(Path.Combine(Via(), "a"), false, out var viaA));
        Assert.True(viaA.SameFileAs(ia));
        Link(a, _dir.File("a2"));
        Assert.True(FileIdentity.TryGet(a, false, out ia));
        Assert.Equal(2, ia.LinkCount);
        File.CreateSymbolicLink(_dir.File("s"), a);
        Assert.True(FileIdentity.TryGet(_dir.File("s"), followLinks: true, out var target));
        Assert.True(target.SameFileAs(ia));
        Assert.True(FileIdentity.TryGet(_dir.File("s"), followLinks: false, out var link));
        Assert.False(link.SameFileAs(ia));
        Assert.False(FileIdentity.TryGet(_dir.File("missing"), false, out _));
    }

    [Fact]
    public async Task ADestinationReachingTheSourceThroughASymlinkedDirectory_IsRefused_AndNothingIsLost()
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("a.txt");
        await File.WriteAllTextAsync(source, "plaintext");
        using var key = _provider.NewKey();
        string sameFile = Path.Combine(Via(), "a.txt");
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => EnvelopeFileOperations.EncryptFileAsync(source, sameFile, key, EncryptionContext.Empty, overwrite: true));
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => FileFormats.Legacy.EncryptAsync(new FileEncryption(source, sameFile, key, EncryptionContext.Empty, true)));
        Assert.Throws<DestinationIsSourceException>(() => PendingOutput.Create(source, sameFile, overwrite: true).Dispose());
        Assert.Equal("plaintext", await File.ReadAllTextAsync(source));

        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
        var ciphertext = await File.ReadAllBytesAsync(encrypted.Destination);
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => EnvelopeFileOperations.DecryptFileAsync(encrypted.Destination, sameFile + ".ekms", _provider, overwrite: true));
        Assert.Equal(ciphertext, await File.ReadAllBytesAsync(encrypted.Destination));
        Assert.Empty(Directory.GetFiles(_dir.Path, "*" + EnvelopeFileOperations.TempSuffix));
    }

    [Fact]
    public async Task ADestinationThatIsAHardLinkOfTheSource_IsRefused()
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("a.txt");
        await File.WriteAllTextAsync(source, "plaintext");
        Link(source, _dir.File("b.txt"));
        using var key = _provider.NewKey();
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => EnvelopeFileOperations.EncryptFileAsync(source, _dir.File("b.txt"), key, EncryptionContext.Empty, overwrite: true));
        Assert.Equal("plaintext", await File.ReadAllTextAsync(_dir.File("b.txt")));
    }

    [Fact]
    public async Task ASymlinkAtTheDestinationToTheSource_IsReplacedByForce_NotFollowed()
    {
        // The documented rule for links at the destination still holds: the link itself is replaced, its target untouched.
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("a.txt");
        await File.WriteAllTextAsync(source, "plaintext");
        File.CreateSymbolicLink(_dir.File("a.txt.ekms"), source);
        using var key = _provider.NewKey();
        await EnvelopeFileOperations.EncryptFileAsync(source, _dir.File("a.txt.ekms"), key, EncryptionContext.Empty, overwrite: true);
        Assert.Equal("plaintext", await File.ReadAllTextAsync(source));
        Assert.Null(new FileInfo(_dir.File("a.txt.ekms")).LinkTarget);
    }

    [Fact]
    public async Task ConvertingIntoTheSourceByAnotherPath_IsRefusedBeforeAnyKmsCall()
    {
        if (OperatingSystem.IsWindows()) return;
        string plain = _dir.File("c.txt");
        await File.WriteAllTextAsync(plain, "plaintext");
        using var key = _provider.NewKey();
        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(plain, plain + ".ekms", key, EncryptionContext.Empty);
        var before = await File.ReadAllBytesAsync(encrypted.Destination);
        int calls = _provider.DecryptCalls;
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => EnvelopeConverter.ConvertFileAsync(encrypted.Destination, EnvelopeFileFormat.Ekms,
            Path.Combine(Via(), "c.txt.ekms"), EnvelopeFileFormat.Legacy, _provider, EncryptionContext.Empty,
            (_, _, _) => throw new InvalidOperationException("no key should be asked for"), null, null, overwrite: true));
        Assert.Equal(calls, _provider.DecryptCalls);
        Assert.Equal(before, await File.ReadAllBytesAsync(encrypted.Destination));
    }

    [Fact]
    public void RemovingASymlinkedSource_IsRefused_AndNothingIsRemoved()
    {
        if (OperatingSystem.IsWindows()) return;
        string target = _dir.File("target.txt");
        File.WriteAllText(target, "plaintext");
        string link = _dir.File("link.txt");
        File.CreateSymbolicLink(link, target);
        var e = Assert.Throws<SourceNotRemovableException>(() => SourceRemoval.CheckRemovable(link));
        Assert.Contains("symbolic link", e.Message);
        e = Assert.Throws<SourceNotRemovableException>(() => SourceRemoval.Remove(link, link + ".ekms"));
        Assert.Contains("was not removed", e.Message);
        Assert.NotNull(new FileInfo(link).LinkTarget);
        Assert.Equal("plaintext", File.ReadAllText(target));
    }

    [Fact]
    public void RemovingASourceWithAnotherHardLink_IsRefused_AndAnOnlyLinkIsRemoved()
    {
        if (OperatingSystem.IsWindows()) return;
        string a = _dir.File("a.txt");
        File.WriteAllText(a, "plaintext");
        Link(a, _dir.File("b.txt"));
        var e = Assert.Throws<SourceNotRemovableException>(() => SourceRemoval.Remove(a, a + ".ekms"));
        Assert.Contains("1 other hard link", e.Message);
        Assert.True(File.Exists(a));
        File.Delete(_dir.File("b.txt"));
        SourceRemoval.Remove(a, a + ".ekms");
        Assert.False(File.Exists(a));
    }

    [Theory]
    [InlineData("644", "077", "600")] // the review's case: a 0644 source under umask 077 gave a 0644 plaintext
    [InlineData("666", "022", "644")] // and a 0666 source under umask 022 gave 0666
    [InlineData("640", "022", "640")]
    [InlineData("775", "002", "664")] // execute never; group write kept, which this umask allows
    [InlineData("600", "277", "400")] // a umask that takes the owner's write bit too
    public void ANewOutputsModeIsTheSourcesWithinTheUmask(string source, string umask, string expected)
    {
        var mode = OutputPermissions.For((UnixFileMode)Convert.ToInt32(source, 8), OutputPermissions.ParseOctal(umask));
        Assert.Equal(Convert.ToInt32(expected, 8), (int)mode);
    }

    [Fact]
    public async Task OutputsObeyTheProcessUmask()
    {
        if (!OperatingSystem.IsLinux()) return;
        var umask = OutputPermissions.ReadUmask();
        var status = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("Umask:", StringComparison.Ordinal));
        Assert.Equal(Convert.ToInt32(status[6..].Trim(), 8), (int)umask);
        string source = _dir.File("loose");
        await File.WriteAllTextAsync(source, "plaintext");
        var loose = (UnixFileMode)Convert.ToInt32("666", 8);
        File.SetUnixFileMode(source, loose);
        using var key = _provider.NewKey();
        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
        Assert.Equal(loose & ~umask, File.GetUnixFileMode(encrypted.Destination));
        File.SetUnixFileMode(encrypted.Destination, loose);
        var decrypted = await EnvelopeFileOperations.DecryptFileAsync(encrypted.Destination, source + ".out", _provider);
        Assert.Equal(loose & ~umask, File.GetUnixFileMode(decrypted.Destination));
    }
}
