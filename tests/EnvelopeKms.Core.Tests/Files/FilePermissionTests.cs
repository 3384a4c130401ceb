#pragma warning disable CA1416 // every test returns early on Windows
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// Outputs are never looser than their source (the source's read/write bits, plus owner read/write, never execute,
/// within the umask),
/// and the temp file that becomes the output is owner-only (0600) for its whole life: observed during a large write.
/// </summary>
public class FilePermissionTests : IDisposable
{
    private const UnixFileMode Rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("600", "600")]
    [InlineData("640", "640")]
    [InlineData("644", "644")]
    [InlineData("400", "600")]
    [InlineData("755", "644")] // execute bits are not carried over
    [InlineData("660", "660")]
    public async Task OutputsTakeTheSourcesModeAndNoMore(string sourceMode, string expected)
    {
        if (OperatingSystem.IsWindows()) return;
        var mode = (UnixFileMode)Convert.ToInt32(sourceMode, 8);
        // A new output also obeys the umask (FileIdentityTests.OutputsObeyTheProcessUmask).
        var want = (UnixFileMode)Convert.ToInt32(expected, 8) & ~OutputPermissions.ReadUmask();
        string source = _dir.File("s-" + sourceMode);
        await File.WriteAllBytesAsync(source, Bytes.Random(5000, 1));
        File.SetUnixFileMode(source, mode);
        using var key = _provider.NewKey();
        var encrypted = await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
        Assert.Equal(want, File.GetUnixFileMode(encrypted.Destination));
        var decrypted = await EnvelopeFileOperations.DecryptFileAsync(encrypted.Destination, source + ".out", _provider);
        Assert.Equal(want, File.GetUnixFileMode(decrypted.Destination));
    }

    [Fact]
    public async Task OverwritingALooserFile_GivesTheSourcesMode()
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("secret");
        await File.WriteAllBytesAsync(source, [1, 2, 3]);
        File.SetUnixFileMode(source, Rw);
        string destination = source + ".ekms";
        File.WriteAllText(destination, "old, world-readable");
        File.SetUnixFileMode(destination, Rw | UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        using var key = _provider.NewKey();
        await EnvelopeFileOperations.EncryptFileAsync(source, destination, key, EncryptionContext.Empty, overwrite: true);
        Assert.Equal(Rw, File.GetUnixFileMode(destination));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TheTempFileIsOwnerOnly_WhileItIsBeingWritten(bool decrypt)
    {
        if (OperatingSystem.IsWindows()) return;
        const int size = 48 << 20;
        string source = _dir.File("big");
        await File.WriteAllBytesAsync(source, Bytes.Random(size, 2));
        File.SetUnixFileMode(source, Rw | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        using var key = _provider.NewKey();
        if (decrypt)
        {
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
            File.Delete(source);
        }
        var seen = new HashSet<UnixFileMode>();
        int observations = 0;
        EnvelopeFileResult? result = null;
        // The watcher is a dedicated thread, so a busy thread pool cannot starve it; on a loaded machine the write may
        // still finish between two looks, so try a few times.
        for (int attempt = 0; attempt < 5 && observations == 0; attempt++)
        {
            using var running = new ManualResetEventSlim();
            bool done = false;
            var watcher = new Thread(() =>
            {
                running.Set();
                while (!Volatile.Read(ref done))
                {
                    foreach (var temp in Directory.GetFiles(_dir.Path, "*" + EnvelopeFileOperations.TempSuffix))
                    {
                        try
                        {
                            seen.Add(File.GetUnixFileMode(temp));
                            observations++;
                        }
                        catch (IOException) { } // renamed away between listing and stat
                    }
                }
            }) { IsBackground = true };
            watcher.Start();
            running.Wait();
            string output = decrypt ? source + "." + attempt : source + $".{attempt}.ekms";
            result = decrypt
                ? await EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", output, _provider, options: new EnvelopeDecryptOptions { Parallelism = 1 })
                : await EnvelopeFileOperations.EncryptFileAsync(source, output, key, EncryptionContext.Empty, options: new EnvelopeEncryptOptions { Parallelism = 1 });
            Volatile.Write(ref done, true);
            watcher.Join();
        }
        Assert.True(observations > 0, "the temp file was never observed");
        Assert.Equal([Rw], seen);
        Assert.Equal((Rw | UnixFileMode.GroupRead | UnixFileMode.OtherRead) & ~OutputPermissions.ReadUmask(), File.GetUnixFileMode(result!.Destination));
    }
}
