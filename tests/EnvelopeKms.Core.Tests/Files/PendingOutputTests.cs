using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// An output created ahead of its data key: nothing reaches the destination's name before the commit, and an output
/// that is not committed leaves nothing behind.
/// </summary>
public class PendingOutputTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    private string[] TempFiles() => Directory.GetFiles(_dir.Path, "*" + EnvelopeFileOperations.TempSuffix);

    [Fact]
    public void CommitRenamesTheFlushedTempFileIntoPlace_WithTheSourcesPermissions()
    {
        string source = _dir.File("a.txt"), destination = _dir.File("a.txt.ekms");
        File.WriteAllText(source, "source");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(source, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        using var output = PendingOutput.Create(source, destination, overwrite: false);
        Assert.Equal(Path.GetFullPath(source), output.Source);
        Assert.Equal(Path.GetFullPath(destination), output.Destination);
        Assert.True(EnvelopeFileOperations.IsTempFileName(Path.GetFileName(output.TempPath)));
        Assert.Equal(Path.GetDirectoryName(output.Destination), Path.GetDirectoryName(output.TempPath));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output.TempPath));
        Assert.False(File.Exists(destination));

        output.Stream.Write("output"u8);
        Assert.Equal(6, output.Commit());
        Assert.Equal("output", File.ReadAllText(destination));
        Assert.Empty(TempFiles());
        if (!OperatingSystem.IsWindows()) Assert.Equal(File.GetUnixFileMode(source), File.GetUnixFileMode(destination));
        Assert.Throws<InvalidOperationException>(() => output.Commit());
        output.Dispose();
        Assert.Equal("output", File.ReadAllText(destination)); // disposing a committed output keeps it
    }

    [Fact]
    public void DisposeWithoutCommitDeletesTheTempFile_AndLeavesTheDestinationAsItWas()
    {
        string source = _dir.File("b.txt"), destination = _dir.File("b.txt.ekms");
        File.WriteAllText(source, "source");
        File.WriteAllText(destination, "the user's file");
        var output = PendingOutput.Create(source, destination, overwrite: true);
        output.Stream.Write("half written"u8);
        Assert.Single(TempFiles());
        output.Dispose();
        Assert.Empty(TempFiles());
        Assert.Equal("the user's file", File.ReadAllText(destination));
        Assert.Throws<ObjectDisposedException>(() => output.Commit());
        output.Dispose(); // twice is harmless
    }

    [Fact]
    public void ACancellationBeforeTheCommitLeavesTheDestinationAsItWas()
    {
        string source = _dir.File("k.txt"), destination = _dir.File("k.txt.ekms");
        File.WriteAllText(source, "source");
        File.WriteAllText(destination, "the user's file");
        using (var output = PendingOutput.Create(source, destination, overwrite: true))
        {
            output.Stream.Write("complete, but cancelled"u8);
            Assert.Throws<OperationCanceledException>(() => output.Commit(cancellationToken: new CancellationToken(canceled: true)));
        }
        Assert.Equal("the user's file", File.ReadAllText(destination));
        Assert.Empty(TempFiles());
    }

    [Fact]
    public void CreateChecksThePathsFirst_AndThenCreatesNothing()
    {
        string source = _dir.File("c.txt"), taken = _dir.File("taken.ekms"), folder = _dir.File("folder");
        File.WriteAllText(source, "source");
        File.WriteAllText(taken, "someone else's file");
        Directory.CreateDirectory(folder);
        Assert.Throws<DestinationExistsException>(() => PendingOutput.Create(source, taken, overwrite: false));
        Assert.Throws<IOException>(() => PendingOutput.Create(source, folder, overwrite: true));
        Assert.Throws<DestinationIsSourceException>(() => PendingOutput.Create(source, source, overwrite: true));
        Assert.Empty(TempFiles());
        Assert.Equal("someone else's file", File.ReadAllText(taken));
    }

    /// <summary>The destination was free when the output was created and taken before the commit: the newcomer stays.</summary>
    [Fact]
    public void ADestinationTakenAfterCreateIsNotOverwrittenByTheCommit()
    {
        string source = _dir.File("d.txt"), destination = _dir.File("d.txt.ekms");
        File.WriteAllText(source, "source");
        using (var output = PendingOutput.Create(source, destination, overwrite: false))
        {
            output.Stream.Write("ours"u8);
            File.WriteAllText(destination, "another process's file");
            Assert.Throws<DestinationExistsException>(() => output.Commit());
        }
        Assert.Equal("another process's file", File.ReadAllText(destination));
        Assert.Empty(TempFiles());
    }

    [Fact]
    public void APreparedFileWhoseOutputCannotBeCreatedHasNone_AndLeavesNothing()
    {
        string source = _dir.File("e.txt"), taken = _dir.File("e.txt.ekms");
        File.WriteAllText(source, "source");
        File.WriteAllText(taken, "someone else's file");
        using (var prepared = PreparedFile.TryRead(source)!)
        {
            prepared.TryCreateOutput(taken, overwrite: false);
            Assert.Null(prepared.Output);
            prepared.TryCreateOutput(_dir.File("missing folder/e.txt.ekms"), overwrite: false);
            Assert.Null(prepared.Output);
        }
        Assert.Empty(TempFiles());
        Assert.Null(PreparedFile.TryRead(_dir.File("missing.txt")));
    }

    [Fact]
    public void DisposingAPreparedFileDeletesItsUncommittedOutput_AndWipesItsContent()
    {
        string source = _dir.File("f.txt");
        File.WriteAllBytes(source, Enumerable.Repeat((byte)0x5A, 100).ToArray());
        var prepared = PreparedFile.TryRead(source)!;
        prepared.TryCreateOutput(_dir.File("f.txt.ekms"), overwrite: false);
        Assert.NotNull(prepared.Output);
        Assert.Throws<InvalidOperationException>(() => prepared.TryCreateOutput(_dir.File("other.ekms"), overwrite: false));
        var buffer = prepared.Input.Buffer;
        prepared.Dispose();
        Assert.Empty(TempFiles());
        Assert.False(File.Exists(_dir.File("f.txt.ekms")));
        Assert.All(buffer.Take(101), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task EncryptsAndDecryptsIntoOutputsCreatedAhead()
    {
        string source = _dir.File("g.txt"), sealedFile = _dir.File("g.txt.ekms"), opened = _dir.File("g.out");
        var content = Bytes.Random(7000, 3);
        File.WriteAllBytes(source, content);
        var context = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "apollo" });
        using var key = _provider.NewKey();
        using (var prepared = PreparedFile.TryRead(source)!)
        {
            prepared.TryCreateOutput(sealedFile, overwrite: false);
            var encrypted = await EnvelopeFileOperations.EncryptFileAsync(prepared.Input, prepared.Output!, key, context);
            Assert.Equal(Path.GetFullPath(sealedFile), encrypted.Destination);
            Assert.Equal(new FileInfo(sealedFile).Length, encrypted.OutputLength);
        }
        Assert.True(File.Exists(sealedFile)); // disposing after the commit keeps the output
        using (var prepared = PreparedFile.TryRead(sealedFile)!)
        {
            prepared.TryCreateOutput(opened, overwrite: false);
            var decrypted = await EnvelopeFileOperations.DecryptFileAsync(prepared.Input, prepared.Output!, _provider,
                new EnvelopeDecryptOptions { RequiredContext = context });
            Assert.Equal(content.Length, decrypted.PlaintextLength);
        }
        Assert.Equal(content, File.ReadAllBytes(opened));
        Assert.Empty(TempFiles());
    }

    [Fact]
    public async Task AFileThatFailsToDecryptLeavesNoOutput_EvenWithItsOutputCreatedAhead()
    {
        string source = _dir.File("h.txt"), sealedFile = _dir.File("h.txt.ekms"), opened = _dir.File("h.out");
        File.WriteAllBytes(source, Bytes.Random(3000, 4));
        using var key = _provider.NewKey();
        await EnvelopeFileOperations.EncryptFileAsync(source, sealedFile, key, EncryptionContext.Empty);
        var bytes = File.ReadAllBytes(sealedFile);
        bytes[^20] ^= 1;
        File.WriteAllBytes(sealedFile, bytes);
        using (var prepared = PreparedFile.TryRead(sealedFile)!)
        {
            prepared.TryCreateOutput(opened, overwrite: false);
            var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(prepared.Input, prepared.Output!, _provider));
            Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        }
        Assert.False(File.Exists(opened));
        Assert.Empty(TempFiles());
    }

    [Fact]
    public async Task AnOutputCreatedForAnotherSourceIsRefused()
    {
        string a = _dir.File("i.txt"), b = _dir.File("j.txt");
        File.WriteAllText(a, "a");
        File.WriteAllText(b, "b");
        using var key = _provider.NewKey();
        using var prepared = PreparedFile.TryRead(a)!;
        using var other = PendingOutput.Create(b, _dir.File("j.txt.ekms"), overwrite: false);
        await Assert.ThrowsAsync<ArgumentException>(() => EnvelopeFileOperations.EncryptFileAsync(prepared.Input, other, key, EncryptionContext.Empty));
        await Assert.ThrowsAsync<ArgumentException>(() => EnvelopeFileOperations.DecryptFileAsync(prepared.Input, other, _provider));
    }
}
