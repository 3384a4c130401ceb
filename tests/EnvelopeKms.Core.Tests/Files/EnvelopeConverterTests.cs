using System.Security.Cryptography;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// EnvelopeConverter: every pair of formats converts with the plaintext unchanged, in place or to another path; the
/// context is carried over or the conversion refused; nothing is written, and the source is untouched, when the
/// source fails to authenticate, the new key cannot be confirmed, or the file is too large.
/// </summary>
public class EnvelopeConverterTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();
    private readonly DataKeyBatcher _batcher;
    private static readonly string[] Arns = ["acs:kms:cn-test:123456789012:key/key-1"];

    public EnvelopeConverterTests() => _batcher = new DataKeyBatcher(_provider, Arns, EncryptionContext.Empty, DataKeyReuseLimits.Default);

    public void Dispose()
    {
        _batcher.Dispose();
        _dir.Dispose();
    }

    private Task<DataKeyLease> Acquire(EncryptionContext context, long length, CancellationToken ct)
    {
        Assert.Empty(context); // every test below that acquires converts a source without a context, except where it says
        return _batcher.AcquireAsync(length, ct);
    }

    private async Task<string> Write(EnvelopeFileFormat format, byte[] plaintext, EncryptionContext? context = null)
    {
        string source = _dir.File("plain-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllBytesAsync(source, plaintext);
        string path = source + ".ekms";
        using var key = _provider.NewKey(Arns);
        switch (format)
        {
            case EnvelopeFileFormat.Ekms:
                await EnvelopeFileOperations.EncryptFileAsync(source, path, key, context ?? EncryptionContext.Empty);
                break;
            case EnvelopeFileFormat.Legacy:
                await FileFormats.Legacy.EncryptAsync(new FileEncryption(source, path, key, EncryptionContext.Empty, false));
                break;
            default:
                await AlibabaSdkFileOperations.EncryptFileAsync(source, path, key, Arns, context ?? EncryptionContext.Empty,
                    format == EnvelopeFileFormat.AlibabaSdk ? AlibabaSdkLayout.Asn1 : AlibabaSdkLayout.Stream);
                break;
        }
        File.Delete(source);
        return path;
    }

    private async Task<byte[]> Read(string path)
    {
        string output = path + ".out-" + Guid.NewGuid().ToString("N");
        var format = (await FileFormats.DetectAsync(path))!.Id;
        switch (format)
        {
            case EnvelopeFileFormat.Ekms: await EnvelopeFileOperations.DecryptFileAsync(path, output, _provider); break;
            case EnvelopeFileFormat.Legacy: await FileFormats.Legacy.DecryptAsync(new FileDecryption(path, output, _provider, EncryptionContext.Empty, false)); break;
            default: await AlibabaSdkFileOperations.DecryptFileAsync(path, output, _provider); break;
        }
        return await File.ReadAllBytesAsync(output);
    }

    private Task<EnvelopeConvertResult> Convert(string source, EnvelopeFileFormat from, string destination, EnvelopeFileFormat to,
        Func<DataKey, EncryptionContext, CancellationToken, Task>? confirm = null, bool overwrite = false, EncryptionContext? required = null)
        => EnvelopeConverter.ConvertFileAsync(source, from, destination, to, _provider, required ?? EncryptionContext.Empty, Acquire, Arns, confirm, overwrite);

    public static TheoryData<EnvelopeFileFormat, EnvelopeFileFormat> Pairs()
    {
        var formats = new[] { EnvelopeFileFormat.Ekms, EnvelopeFileFormat.Legacy, EnvelopeFileFormat.AlibabaSdk, EnvelopeFileFormat.AlibabaSdkStream };
        var data = new TheoryData<EnvelopeFileFormat, EnvelopeFileFormat>();
        foreach (var from in formats)
            foreach (var to in formats)
                if (from != to) data.Add(from, to);
        return data;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public async Task Every_pair_converts_to_another_path_with_the_plaintext_unchanged_and_the_source_kept(EnvelopeFileFormat from, EnvelopeFileFormat to)
    {
        foreach (int size in new[] { 0, 1, 65_535, 65_536, 200_001 })
        {
            byte[] plaintext = Bytes.Random(size, size + 7);
            string source = await Write(from, plaintext);
            byte[] before = await File.ReadAllBytesAsync(source);
            string destination = source + ".converted";
            var result = await Convert(source, from, destination, to);
            Assert.False(result.InPlace);
            Assert.Equal(size, result.PlaintextLength);
            Assert.Equal(to, (await FileFormats.DetectAsync(destination))!.Id);
            Assert.Equal(plaintext, await Read(destination));
            Assert.Equal(before, await File.ReadAllBytesAsync(source));
        }
    }

    [Fact]
    public async Task In_place_replaces_the_source_only_after_the_new_key_is_confirmed()
    {
        byte[] plaintext = Bytes.Random(100_000, 1);
        string path = await Write(EnvelopeFileFormat.Legacy, plaintext);
        int confirmations = 0;
        var result = await Convert(path, EnvelopeFileFormat.Legacy, path, EnvelopeFileFormat.Ekms, (key, context, ct) =>
        {
            confirmations++;
            return Task.CompletedTask;
        });
        Assert.True(result.InPlace);
        Assert.Equal(1, confirmations);
        Assert.Equal(EnvelopeFileFormat.Ekms, (await FileFormats.DetectAsync(path))!.Id);
        Assert.Equal(plaintext, await Read(path));
        Assert.Empty(EnvelopeFileOperations.FindTempFiles(_dir.Path));
    }

    [Fact]
    public async Task A_new_key_that_cannot_be_confirmed_leaves_the_source_as_it_was()
    {
        string path = await Write(EnvelopeFileFormat.AlibabaSdk, Bytes.Random(5000, 2));
        byte[] before = await File.ReadAllBytesAsync(path);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => Convert(path, EnvelopeFileFormat.AlibabaSdk, path, EnvelopeFileFormat.Ekms,
            (key, context, ct) => throw new KeyProviderException(KeyProviderError.Refused, "no kms:Decrypt on the new key")));
        Assert.Equal(KeyProviderError.Refused, e.Error);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
        Assert.Empty(EnvelopeFileOperations.FindTempFiles(_dir.Path));
    }

    [Fact]
    public async Task The_context_is_carried_over_to_an_Encryption_SDK_message()
    {
        var context = EncryptionContext.Create([new("app", "billing"), new("ключ", "значение")]);
        string path = await Write(EnvelopeFileFormat.Ekms, Bytes.Random(3000, 3), context);
        EncryptionContext? asked = null;
        using var batcher = new DataKeyBatcher(_provider, Arns, context, DataKeyReuseLimits.Default);
        await EnvelopeConverter.ConvertFileAsync(path, EnvelopeFileFormat.Ekms, path + ".sdk", EnvelopeFileFormat.AlibabaSdk, _provider,
            EncryptionContext.Create([new("app", "billing")]), (c, n, ct) => { asked = c; return batcher.AcquireAsync(n, ct); }, Arns, null, false);
        Assert.True(asked!.ContentEquals(context));
        var header = await AlibabaSdkFileOperations.ReadHeaderAsync(path + ".sdk");
        Assert.True(header.EncryptionContext.ContentEquals(context));
    }

    [Fact]
    public async Task A_context_the_legacy_format_cannot_hold_is_refused_before_any_key_is_generated()
    {
        string path = await Write(EnvelopeFileFormat.Ekms, Bytes.Random(3000, 4), EncryptionContext.Create([new("app", "billing")]));
        byte[] before = await File.ReadAllBytesAsync(path);
        int generated = _provider.GenerateCalls;
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => Convert(path, EnvelopeFileFormat.Ekms, path, EnvelopeFileFormat.Legacy));
        Assert.Equal(EnvelopeError.ConvertContextLost, e.Error);
        Assert.Equal(generated, _provider.GenerateCalls);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task A_required_context_the_source_lacks_is_refused()
    {
        string path = await Write(EnvelopeFileFormat.Ekms, Bytes.Random(300, 5));
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => Convert(path, EnvelopeFileFormat.Ekms, path + ".x", EnvelopeFileFormat.Legacy,
            required: EncryptionContext.Create([new("app", "billing")])));
        Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        Assert.False(File.Exists(path + ".x"));
    }

    [Theory]
    [InlineData(EnvelopeFileFormat.Ekms)]
    [InlineData(EnvelopeFileFormat.Legacy)]
    [InlineData(EnvelopeFileFormat.AlibabaSdk)]
    [InlineData(EnvelopeFileFormat.AlibabaSdkStream)]
    public async Task A_tampered_source_writes_nothing_and_stays_as_it_was(EnvelopeFileFormat from)
    {
        string path = await Write(from, Bytes.Random(20_000, 6));
        byte[] bytes = await File.ReadAllBytesAsync(path);
        int at = from == EnvelopeFileFormat.Legacy ? bytes.Length - 10 : bytes.Length - 1; // the tag's base64, or the last tag byte
        bytes[at] = from == EnvelopeFileFormat.Legacy ? (byte)(bytes[at] == (byte)'A' ? 'B' : 'A') : (byte)(bytes[at] ^ 1);
        await File.WriteAllBytesAsync(path, bytes);
        var to = from == EnvelopeFileFormat.Ekms ? EnvelopeFileFormat.Legacy : EnvelopeFileFormat.Ekms;
        await Assert.ThrowsAsync<EnvelopeException>(() => Convert(path, from, path, to));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path));
        Assert.Empty(EnvelopeFileOperations.FindTempFiles(_dir.Path));
    }

    [Fact]
    public async Task A_file_larger_than_the_limit_is_refused_before_any_KMS_call()
    {
        string path = _dir.File("huge.ekms");
        await using (var f = File.Create(path))
        {
            await f.WriteAsync(EnvelopeFormat.Magic.ToArray());
            f.SetLength(EnvelopeConverter.MaxPlaintextLength + (2 << 20)); // sparse: no gigabyte is written
        }
        int decrypts = _provider.DecryptCalls;
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => Convert(path, EnvelopeFileFormat.Ekms, path, EnvelopeFileFormat.Legacy));
        Assert.Equal(EnvelopeError.ConvertTooLarge, e.Error);
        Assert.Equal(decrypts, _provider.DecryptCalls);
    }

    [Fact]
    public async Task An_existing_destination_needs_overwrite_and_the_same_format_is_refused()
    {
        string path = await Write(EnvelopeFileFormat.Legacy, Bytes.Random(100, 8));
        string taken = _dir.File("taken");
        await File.WriteAllTextAsync(taken, "keep me");
        await Assert.ThrowsAsync<DestinationExistsException>(() => Convert(path, EnvelopeFileFormat.Legacy, taken, EnvelopeFileFormat.Ekms));
        Assert.Equal("keep me", await File.ReadAllTextAsync(taken));
        await Convert(path, EnvelopeFileFormat.Legacy, taken, EnvelopeFileFormat.Ekms, overwrite: true);
        Assert.Equal(EnvelopeFileFormat.Ekms, (await FileFormats.DetectAsync(taken))!.Id);
        await Assert.ThrowsAsync<ArgumentException>(() => Convert(path, EnvelopeFileFormat.Legacy, path, EnvelopeFileFormat.Legacy));
    }

    [Fact]
    public async Task One_data_key_serves_a_batch()
    {
        var paths = new List<string>();
        for (int i = 0; i < 10; i++) paths.Add(await Write(EnvelopeFileFormat.Legacy, Bytes.Random(100 * i, i)));
        int generated = _provider.GenerateCalls;
        await Task.WhenAll(paths.Select(p => Convert(p, EnvelopeFileFormat.Legacy, p, EnvelopeFileFormat.Ekms)));
        Assert.Equal(generated + 1, _provider.GenerateCalls);
    }
}
