using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// <see cref="KmsDataKeyProvider"/> with the envelope format and the file operations, end to end against the
/// server: multi-key files, allow-lists (checked against what the server was actually asked), and a Decrypt answer
/// for a key outside the allow-list.
/// </summary>
public class DataKeyProviderRoundTripTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("ekms-rt-files-").FullName;

    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string>
    {
        ["project"] = "round trip",
        ["file"] = "report.csv",
    });

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string WriteSource(int length)
    {
        var data = new byte[length];
        Random.Shared.NextBytes(data);
        var path = Path.Combine(dir, "plain.bin");
        File.WriteAllBytes(path, data);
        return path;
    }

    [Theory]
    [InlineData(ClientMode.V3)]
    [InlineData(ClientMode.V1FormPost)]
    public async Task A_multi_key_file_decrypts_through_the_allowed_second_key_only(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(mode);
        var first = (await client.CreateKeyAsync(new CreateKeyRequest { Description = "first" })).KeyId;
        var second = await client.CreateKeyAsync(new CreateKeyRequest { Description = "second" });
        await client.CreateAliasAsync("alias/second", second.KeyId);

        var source = WriteSource(300_000);
        var encrypted = Path.Combine(dir, "plain.bin.ekms");
        await rt.ResetStatsAsync();
        using (var dataKey = await new KmsDataKeyProvider(client).GenerateDataKeyAsync([first, "alias/second"], Context, CancellationToken.None))
        {
            Assert.Equal(first, dataKey.KeyId);
            Assert.Equal(new[] { first, second.KeyId }, dataKey.WrappedKeys.Select(w => w.KeyId));
            Assert.All(dataKey.WrappedKeys, w => Assert.Equal(("aliyun-kms", "cn-hangzhou"), (w.ProviderId, w.Region)));
            await EnvelopeFileOperations.EncryptFileAsync(source, encrypted, dataKey, Context,
                options: new EnvelopeEncryptOptions { FrameLength = 64 * 1024 });
        }
        var generated = await rt.StatsAsync();
        Assert.Equal((1L, 1L, 2L), (generated.For("GenerateDataKey").Success, generated.For("Encrypt").Success, generated.TotalCalls));

        var header = await EnvelopeFileOperations.ReadHeaderAsync(encrypted);
        Assert.Equal(new[] { first, second.KeyId }, header.WrappedKeys.Select(w => w.KeyId));

        // The first key is disabled: had the provider sent its entry to KMS, the server would count a
        // Rejected.Disabled Decrypt. The allow-list names the second key by alias, by ARN and by id.
        await client.DisableKeyAsync(first);
        foreach (var allowed in new[] { "alias/second", second.Arn!, second.KeyId })
        {
            await rt.ResetStatsAsync();
            var output = Path.Combine(dir, "decrypted.bin");
            var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = [allowed] });
            var result = await EnvelopeFileOperations.DecryptFileAsync(encrypted, output, provider, overwrite: true);

            Assert.Equal(second.KeyId, result.KeyId);
            Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));
            var stats = await rt.StatsAsync();
            var decrypt = stats.For("Decrypt");
            Assert.True(decrypt.Success == 1 && decrypt.Failure == 0 && decrypt.Dropped == 0, $"{allowed}: {stats}");
            Assert.Equal(allowed.StartsWith("alias/") ? 1 : 0, stats.For("DescribeKey").Success);
        }

        // For contrast, without an allow-list the first entry is tried (and refused) before the second.
        await rt.ResetStatsAsync();
        var open = await EnvelopeFileOperations.DecryptFileAsync(encrypted, Path.Combine(dir, "open.bin"), new KmsDataKeyProvider(client));
        Assert.Equal(second.KeyId, open.KeyId);
        var contrast = (await rt.StatsAsync()).For("Decrypt");
        Assert.Equal((1L, 1L), (contrast.Error("Rejected.Disabled"), contrast.Success));

        // An allow-list naming neither key makes no KMS call at all.
        await rt.ResetStatsAsync();
        var unrelated = (await client.CreateKeyAsync()).KeyId;
        await rt.ResetStatsAsync();
        var none = await Assert.ThrowsAsync<KeyProviderException>(() => EnvelopeFileOperations.DecryptFileAsync(encrypted, Path.Combine(dir, "none.bin"),
            new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = [unrelated] })));
        Assert.Equal(KeyProviderError.NoMatchingKey, none.Error);
        Assert.Equal(0, (await rt.StatsAsync()).TotalCalls);
        Assert.False(File.Exists(Path.Combine(dir, "none.bin")));
    }

    [Fact]
    public async Task Rewrapping_through_KMS_adds_a_key_by_alias_and_removes_one_with_one_Decrypt_and_one_Encrypt()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client();
        var original = (await client.CreateKeyAsync()).KeyId;
        var dr = await client.CreateKeyAsync(new CreateKeyRequest { Description = "dr" });
        await client.CreateAliasAsync("alias/dr", dr.KeyId);
        var source = WriteSource(200_000);
        var encrypted = Path.Combine(dir, "plain.bin.ekms");
        using (var dataKey = await new KmsDataKeyProvider(client).GenerateDataKeyAsync([original], Context, CancellationToken.None))
            await EnvelopeFileOperations.EncryptFileAsync(source, encrypted, dataKey, Context);

        await rt.ResetStatsAsync();
        var kms = new KmsDataKeyProvider(client);
        using (var cache = new CachingDataKeyProvider(kms))
        {
            var added = await new EnvelopeKeyUpdater(cache, kms, new EnvelopeKeyChange { Add = ["alias/dr"] }).UpdateFileAsync(encrypted);
            Assert.Equal(new[] { original, dr.KeyId }, added.NewKeys.Select(k => k.KeyId));
        }
        var stats = await rt.StatsAsync();
        Assert.Equal((1L, 1L, 1L), (stats.For("Decrypt").Success, stats.For("Encrypt").Success, stats.For("DescribeKey").Success));

        // The original key is disabled; the file decrypts through the DR key alone.
        await client.DisableKeyAsync(original);
        var viaDr = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = [dr.KeyId] });
        var result = await EnvelopeFileOperations.DecryptFileAsync(encrypted, Path.Combine(dir, "out.bin"), viaDr);
        Assert.Equal(dr.KeyId, result.KeyId);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(Path.Combine(dir, "out.bin")));

        // Removing the disabled key needs only the DR key (the entry to remove is matched by its ARN).
        var removed = await new EnvelopeKeyUpdater(viaDr, kms, new EnvelopeKeyChange { Remove = [$"acs:kms:cn-hangzhou:{dr.Arn!.Split(':')[3]}:key/{original}"] })
            .UpdateFileAsync(encrypted);
        Assert.Equal(new[] { dr.KeyId }, removed.NewKeys.Select(k => k.KeyId));
        Assert.Equal(3u, removed.Generation);
    }

    [Fact]
    public async Task A_Decrypt_answer_for_a_key_outside_the_allow_list_is_rejected()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client();
        var allowed = (await client.CreateKeyAsync()).KeyId;
        var other = (await client.CreateKeyAsync()).KeyId;
        using var foreign = await client.GenerateDataKeyAsync(other, encryptionContext: Context);

        // A tampered entry: it claims the allowed key but carries a blob of the other key.
        var entries = new[] { new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, allowed, "", "cn-hangzhou", foreign.CiphertextBlob) };
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = [allowed] });
        await rt.ResetStatsAsync();

        var error = await Assert.ThrowsAsync<KeyProviderException>(() => provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None));

        Assert.Equal(KeyProviderError.InvalidDataKey, error.Error);
        Assert.Contains(other, error.Message);
        Assert.Contains("not in the allowed keys", error.Message);
        // The server did unwrap it (KMS trusts the blob, not the entry's label); the provider refused the answer.
        Assert.Equal(1, (await rt.StatsAsync()).For("Decrypt").Success);
    }

    [Fact]
    public async Task Stream_envelopes_round_trip_and_map_KMS_refusals()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client();
        var keyId = (await client.CreateKeyAsync()).KeyId;
        var provider = new KmsDataKeyProvider(client);
        var plaintext = new byte[100_000];
        Random.Shared.NextBytes(plaintext);

        using var sealedStream = new MemoryStream();
        using (var dataKey = await provider.GenerateDataKeyAsync([keyId], Context, CancellationToken.None))
        {
            await Envelope.EncryptAsync(new MemoryStream(plaintext), sealedStream, dataKey, Context);
        }

        using var opened = new MemoryStream();
        var result = await Envelope.DecryptAsync(new MemoryStream(sealedStream.ToArray()), opened, provider,
            new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(new Dictionary<string, string> { ["file"] = "report.csv" }) });
        Assert.Equal(keyId, result.KeyId);
        Assert.Equal(plaintext, opened.ToArray());

        // The key is disabled: the refusal reaches the caller as a KeyProviderException wrapping the KmsException.
        await client.DisableKeyAsync(keyId);
        var refused = await Assert.ThrowsAsync<KeyProviderException>(() => Envelope.DecryptAsync(new MemoryStream(sealedStream.ToArray()), Stream.Null, provider));
        Assert.Equal(KeyProviderError.Refused, refused.Error);
        Assert.Equal("Rejected.Disabled", Assert.IsType<KmsException>(refused.InnerException).Code);

        // Bad credentials stop at once.
        var badProvider = new KmsDataKeyProvider(rt.Client(credentials: new EnvelopeKms.Credentials.StaticCredentialsProvider("testid", "wrong")));
        var denied = await Assert.ThrowsAsync<KeyProviderException>(() => Envelope.DecryptAsync(new MemoryStream(sealedStream.ToArray()), Stream.Null, badProvider));
        Assert.Equal(KeyProviderError.Authentication, denied.Error);
    }
}
