using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>Small files read ahead (while the data key is on its way) must give exactly what the path-based operations give.</summary>
public class SmallFileTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(SmallFile.MaxLength)]
    public void ReadsASmallFileWhole(int length)
    {
        string path = _dir.File($"s{length}.bin");
        var content = Bytes.Random(length, length);
        File.WriteAllBytes(path, content);
        using var small = SmallFile.TryRead(path);
        Assert.NotNull(small);
        Assert.Equal(content, small!.Content.ToArray());
        Assert.Equal(Path.GetFullPath(path), small.Path);
        if (!OperatingSystem.IsWindows()) Assert.Equal(File.GetUnixFileMode(path), small.Mode);
    }

    [Fact]
    public void LargerFilesMissingFilesAndFoldersAreNotReadAhead()
    {
        string large = _dir.File("large.bin");
        File.WriteAllBytes(large, new byte[SmallFile.MaxLength + 1]);
        Assert.Null(SmallFile.TryRead(large));
        Assert.Null(SmallFile.TryRead(_dir.File("missing.bin")));
        Assert.Null(SmallFile.TryRead(_dir.Path));
    }

    /// <summary>
    /// A file that turns out longer than its reported length (here a /proc file, which reports 0 bytes) is not read
    /// ahead, and its buffer goes back to the pool exactly once: a double return would hand one array to two callers.
    /// </summary>
    [Fact]
    public void AFileLongerThanItsReportedLengthIsNotReadAhead_AndItsBufferIsReturnedOnce()
    {
        if (!OperatingSystem.IsLinux()) return; // /proc
        Assert.True(new FileInfo("/proc/self/status").Length == 0);
        Assert.Null(SmallFile.TryRead("/proc/self/status"));
        var first = System.Buffers.ArrayPool<byte>.Shared.Rent(1);
        var second = System.Buffers.ArrayPool<byte>.Shared.Rent(1);
        Assert.NotSame(first, second);
        System.Buffers.ArrayPool<byte>.Shared.Return(first);
        System.Buffers.ArrayPool<byte>.Shared.Return(second);
    }

    [Fact]
    public void DisposeWipesTheBufferBeforeItGoesBackToThePool()
    {
        string path = _dir.File("secret.bin");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)0xA5, 3000).ToArray());
        var small = SmallFile.TryRead(path)!;
        var buffer = small.Buffer;
        small.Dispose();
        Assert.All(buffer.Take(3001), b => Assert.Equal(0, b));
        Assert.Throws<ObjectDisposedException>(() => small.Content.Length);
        small.Dispose(); // twice is harmless
    }

    [Fact]
    public async Task EncryptsAndDecryptsLikeThePathBasedOperations()
    {
        string source = _dir.File("plain.txt"), sealedFile = _dir.File("plain.txt.ekms"), opened = _dir.File("plain.out");
        var content = Bytes.Random(5000, 1);
        File.WriteAllBytes(source, content);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(source, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var context = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "apollo" });
        using var key = _provider.NewKey();
        EnvelopeFileResult encrypted;
        using (var small = SmallFile.TryRead(source)!)
            encrypted = await EnvelopeFileOperations.EncryptFileAsync(small, sealedFile, key, context);
        Assert.Equal(Path.GetFullPath(source), encrypted.Source);
        Assert.Equal(content.Length, encrypted.PlaintextLength);
        Assert.Equal(new FileInfo(sealedFile).Length, encrypted.OutputLength);
        if (!OperatingSystem.IsWindows()) Assert.Equal(File.GetUnixFileMode(source), File.GetUnixFileMode(sealedFile));

        // The path-based decryption reads what the read-ahead encryption wrote, and the other way round.
        await EnvelopeFileOperations.DecryptFileAsync(sealedFile, opened, _provider);
        Assert.Equal(content, File.ReadAllBytes(opened));
        File.Delete(opened);
        EnvelopeFileResult decrypted;
        using (var small = SmallFile.TryRead(sealedFile)!)
            decrypted = await EnvelopeFileOperations.DecryptFileAsync(small, opened, _provider, options: new EnvelopeDecryptOptions { RequiredContext = context });
        Assert.Equal(content, File.ReadAllBytes(opened));
        Assert.Equal(content.Length, decrypted.PlaintextLength);
        Assert.Equal("key-1", decrypted.KeyId);
    }

    [Fact]
    public async Task RefusesAnExistingDestinationWithoutOverwrite()
    {
        string source = _dir.File("a.txt"), destination = _dir.File("a.txt.ekms");
        File.WriteAllText(source, "hello");
        File.WriteAllText(destination, "someone else's file");
        using var key = _provider.NewKey();
        using var small = SmallFile.TryRead(source)!;
        await Assert.ThrowsAsync<DestinationExistsException>(() => EnvelopeFileOperations.EncryptFileAsync(small, destination, key, EncryptionContext.Empty));
        Assert.Equal("someone else's file", File.ReadAllText(destination));
    }

    [Fact]
    public async Task ATamperedOrMismatchedFileReadAheadLeavesNoOutput()
    {
        string source = _dir.File("b.txt"), sealedFile = _dir.File("b.txt.ekms"), opened = _dir.File("b.out");
        File.WriteAllBytes(source, Bytes.Random(3000, 2));
        using var key = _provider.NewKey();
        await EnvelopeFileOperations.EncryptFileAsync(source, sealedFile, key, EncryptionContext.Empty);
        var required = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "apollo" });
        using (var small = SmallFile.TryRead(sealedFile)!)
        {
            var e = await Assert.ThrowsAsync<EnvelopeException>(() =>
                EnvelopeFileOperations.DecryptFileAsync(small, opened, _provider, options: new EnvelopeDecryptOptions { RequiredContext = required }));
            Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        }
        var bytes = File.ReadAllBytes(sealedFile);
        bytes[^20] ^= 1;
        File.WriteAllBytes(sealedFile, bytes);
        using (var small = SmallFile.TryRead(sealedFile)!)
        {
            var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(small, opened, _provider));
            Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        }
        Assert.False(File.Exists(opened));
        Assert.Equal(2, Directory.GetFiles(_dir.Path).Length); // no temp file left
    }
}
