using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// Every <see cref="KmsClient"/> operation against the real server over loopback HTTP, with each signature and
/// transport the client supports, with long-term and with STS temporary credentials.
/// </summary>
public class ClientOperationsRoundTripTests
{
    public static TheoryData<ClientMode, bool> Modes() => new()
    {
        { ClientMode.V3, false },
        { ClientMode.V1FormPost, false },
        { ClientMode.V1QueryGet, false },
        { ClientMode.V3, true },
        { ClientMode.V1FormPost, true },
        { ClientMode.V1QueryGet, true },
    };

    private static readonly Dictionary<string, string> Context = new()
    {
        ["purpose"] = "round trip",
        ["file name"] = "a+b/c~*.txt", // characters the percent-encoders disagree on
        ["ünïcode"] = "✓",
    };

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Every_operation_round_trips(ClientMode mode, bool useSts)
    {
        await using var rt = await RoundTrip.StartAsync();
        StsAssumeRoleCredentialsProvider? sts = useSts ? rt.Sts() : null;
        var client = rt.Client(mode, sts);

        // ---- keys
        var created = await client.CreateKeyAsync(new CreateKeyRequest { Description = "round trip & more", Tags = new Dictionary<string, string> { ["team"] = "core" } });
        Assert.Matches("^[0-9a-f-]{36}$", created.KeyId);
        Assert.Equal("Enabled", created.KeyState);
        Assert.Equal($"acs:kms:cn-hangzhou:1234567890123456:key/{created.KeyId}", created.Arn);
        var keyId = created.KeyId;

        var described = await client.DescribeKeyAsync(keyId);
        Assert.Equal(keyId, described.KeyId);
        Assert.Equal("round trip & more", described.Description);
        Assert.Equal("Aliyun_AES_256", described.KeySpec);
        Assert.NotNull(described.CreationDate);
        Assert.Equal(described.KeyId, (await client.DescribeKeyAsync(described.Arn!)).KeyId);

        await client.DisableKeyAsync(keyId);
        Assert.Equal("Disabled", (await client.DescribeKeyAsync(keyId)).KeyState);
        await client.EnableKeyAsync(keyId);
        Assert.Equal("Enabled", (await client.DescribeKeyAsync(keyId)).KeyState);

        var doomed = (await client.CreateKeyAsync()).KeyId;
        await client.ScheduleKeyDeletionAsync(doomed, 7);
        var pending = await client.DescribeKeyAsync(doomed);
        Assert.Equal("PendingDeletion", pending.KeyState);
        Assert.NotNull(pending.DeleteDate);
        Assert.InRange(pending.DeleteDate!.Value - rt.Clock.GetUtcNow(), TimeSpan.FromDays(7) - TimeSpan.FromMinutes(1), TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));
        await client.CancelKeyDeletionAsync(doomed);
        var cancelled = await client.DescribeKeyAsync(doomed);
        Assert.Equal("Enabled", cancelled.KeyState);
        Assert.Null(cancelled.DeleteDate);

        // ListKeys across pages: 7 keys in pages of 3.
        var more = new List<string> { keyId, doomed };
        for (int i = 0; i < 5; i++)
        {
            more.Add((await client.CreateKeyAsync()).KeyId);
        }
        var first = await client.ListKeysAsync(1, 3);
        Assert.Equal(7, first.TotalCount);
        Assert.Equal(3, first.Items.Count);
        Assert.Equal(1, first.PageNumber);
        Assert.Equal(3, first.PageSize);
        Assert.False(string.IsNullOrEmpty(first.RequestId));
        var third = await client.ListKeysAsync(3, 3);
        Assert.Single(third.Items);
        Assert.Empty((await client.ListKeysAsync(4, 3)).Items);
        var all = await KmsPaging.FetchAllAsync(client.ListAllKeysAsync(pageSize: 3));
        Assert.Equal(more.Order(), all.Select(k => k.KeyId).Order());
        Assert.All(all, k => Assert.Equal($"acs:kms:cn-hangzhou:1234567890123456:key/{k.KeyId}", k.KeyArn));
        var enabledOnly = await KmsPaging.FetchAllAsync(client.ListAllKeysAsync(pageSize: 2, filters: "[{\"Key\":\"KeyState\",\"Values\":[\"Enabled\"]}]"));
        Assert.Equal(7, enabledOnly.Count);

        // ---- aliases
        await client.CreateAliasAsync("alias/rt/main", keyId);
        await client.CreateAliasAsync("alias/rt/second", keyId);
        await client.CreateAliasAsync("alias/rt/other", doomed);
        Assert.Equal(keyId, (await client.DescribeKeyAsync("alias/rt/main")).KeyId);
        await client.UpdateAliasAsync("alias/rt/other", keyId);
        Assert.Equal(keyId, (await client.DescribeKeyAsync("alias/rt/other")).KeyId);
        var aliasPage = await client.ListAliasesAsync(1, 2);
        Assert.Equal(3, aliasPage.TotalCount);
        Assert.Equal(2, aliasPage.Items.Count);
        var aliases = await KmsPaging.FetchAllAsync(client.ListAllAliasesAsync(pageSize: 2));
        Assert.Equal(new[] { "alias/rt/main", "alias/rt/other", "alias/rt/second" }, aliases.Select(a => a.AliasName).Order());
        Assert.All(aliases, a => Assert.Equal(keyId, a.KeyId));
        Assert.All(aliases, a => Assert.Equal($"acs:kms:cn-hangzhou:1234567890123456:{a.AliasName}", a.AliasArn));
        var byKey = await KmsPaging.FetchAllAsync(client.ListAllAliasesByKeyIdAsync(keyId, pageSize: 1));
        Assert.Equal(3, byKey.Count);
        var byKeyPage = await client.ListAliasesByKeyIdAsync("alias/rt/main", 2, 2);
        Assert.Equal(3, byKeyPage.TotalCount);
        Assert.Single(byKeyPage.Items);
        Assert.Empty((await client.ListAliasesByKeyIdAsync(doomed)).Items);
        await client.DeleteAliasAsync("alias/rt/second");
        Assert.Equal(2, (await client.ListAliasesAsync()).TotalCount);

        // ---- cryptographic operations
        using (var dataKey = await client.GenerateDataKeyAsync("alias/rt/main", encryptionContext: Context))
        {
            Assert.Equal(keyId, dataKey.KeyId);
            Assert.Equal(32, dataKey.Plaintext.Length);
            Assert.Matches("^[0-9a-f-]{36}$", dataKey.KeyVersionId);
            Assert.False(string.IsNullOrEmpty(dataKey.RequestId));
            using var decrypted = await client.DecryptAsync(dataKey.CiphertextBlob, Context);
            Assert.Equal(keyId, decrypted.KeyId);
            Assert.Equal(dataKey.KeyVersionId, decrypted.KeyVersionId);
            Assert.True(dataKey.Plaintext.Span.SequenceEqual(decrypted.Plaintext.Span));

            // Encrypt the same bytes under another key (what the data key provider does for extra keys).
            var wrapped = await client.EncryptAsync(more[2], dataKey.Plaintext.Memory, Context);
            Assert.Equal(more[2], wrapped.KeyId);
            using var unwrapped = await client.DecryptAsync(wrapped.CiphertextBlob + "\n", Context);
            Assert.True(dataKey.Plaintext.Span.SequenceEqual(unwrapped.Plaintext.Span));

            // ReEncrypt to a third key with a new context.
            var destinationContext = new Dictionary<string, string> { ["stage"] = "re-encrypted" };
            var reEncrypted = await client.ReEncryptAsync(dataKey.CiphertextBlob, more[3], Context, destinationContext);
            Assert.Equal(more[3], reEncrypted.KeyId);
            using var reDecrypted = await client.DecryptAsync(reEncrypted.CiphertextBlob, destinationContext);
            Assert.Equal(more[3], reDecrypted.KeyId);
            Assert.True(dataKey.Plaintext.Span.SequenceEqual(reDecrypted.Plaintext.Span));
        }

        using (var sized = await client.GenerateDataKeyAsync(keyId, numberOfBytes: 64))
        {
            Assert.Equal(64, sized.Plaintext.Length);
        }
        using (var spec = await client.GenerateDataKeyAsync(keyId, keySpec: "AES_128"))
        {
            Assert.Equal(16, spec.Plaintext.Length);
        }

        var withoutPlaintext = await client.GenerateDataKeyWithoutPlaintextAsync(keyId, encryptionContext: Context);
        Assert.Equal(keyId, withoutPlaintext.KeyId);
        using (var fromWithout = await client.DecryptAsync(withoutPlaintext.CiphertextBlob, Context))
        {
            Assert.Equal(32, fromWithout.Plaintext.Length);
        }

        // Encrypt of arbitrary data up to the 6 KiB limit (a secret parameter: form body only, also with V1 GET).
        var big = new byte[KmsClient.MaxEncryptPlaintextBytes];
        Random.Shared.NextBytes(big);
        var bigCipher = await client.EncryptAsync(keyId, big);
        using (var bigPlain = await client.DecryptAsync(bigCipher.CiphertextBlob))
        {
            Assert.True(big.AsSpan().SequenceEqual(bigPlain.Plaintext.Span));
        }

        // ---- tags
        Assert.Equal(new[] { ("team", "core") }, (await client.ListResourceTagsAsync(keyId)).Select(t => (t.TagKey, t.TagValue)));
        await client.TagResourceAsync(keyId, new Dictionary<string, string> { ["env"] = "test", ["owner"] = "a b+c" });
        var tags = await client.ListResourceTagsAsync("alias/rt/main");
        Assert.Equal(new[] { ("env", "test"), ("owner", "a b+c"), ("team", "core") }, tags.Select(t => (t.TagKey, t.TagValue)).Order());
        Assert.All(tags, t => Assert.Equal(keyId, t.KeyId));
        await client.UntagResourceAsync(keyId, ["team", "owner"]);
        Assert.Equal(new[] { ("env", "test") }, (await client.ListResourceTagsAsync(keyId)).Select(t => (t.TagKey, t.TagValue)));

        // ---- what the server saw
        var stats = await rt.StatsAsync();
        foreach (var action in new[]
                 {
                     "CreateKey", "DescribeKey", "ListKeys", "EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion",
                     "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases", "ListAliasesByKeyId", "GenerateDataKey",
                     "GenerateDataKeyWithoutPlaintext", "Encrypt", "Decrypt", "ReEncrypt", "TagResource", "UntagResource", "ListResourceTags",
                 })
        {
            var counts = stats.For(action);
            Assert.True(counts.Success > 0 && counts.Failure == 0 && counts.Dropped == 0, $"{action}: {stats}");
        }
        Assert.Equal(0, client.RetryCount);
        if (sts is not null)
        {
            Assert.Equal(1, sts.FetchCount);
            Assert.Equal(1, stats.For("AssumeRole").Success);
            Assert.StartsWith("STS AssumeRole (" + RoundTrip.RoleArn, client.CredentialsSource);
        }
        else
        {
            Assert.Equal(0, stats.Calls("AssumeRole"));
        }
    }
}
