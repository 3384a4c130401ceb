using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

public class KmsDataKeyProviderTests
{
    private static readonly byte[] Key32 = Enumerable.Range(1, 32).Select(i => (byte)(i * 5)).ToArray();
    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["file"] = "a.txt" });

    /// <summary>
    /// A stand-in KMS: blobs are "blob-&lt;keyId&gt;"; Decrypt answers per key from <paramref name="decrypt"/>.
    /// </summary>
    private static LocalHttpServer FakeKms(Func<string, StubResponse>? decrypt = null, int generatedBytes = 32)
        => new(r =>
        {
            var p = r.AllParameters;
            switch (r.Header("x-acs-action"))
            {
                case "GenerateDataKey":
                    var plain = Convert.ToBase64String(Key32.Take(generatedBytes).ToArray());
                    return StubResponse.Json($"{{\"KeyId\":\"{Resolve(p["KeyId"])}\",\"KeyVersionId\":\"v-{Resolve(p["KeyId"])}\",\"CiphertextBlob\":\"blob-{Resolve(p["KeyId"])}\",\"Plaintext\":\"{plain}\",\"RequestId\":\"r\"}}");
                case "Encrypt":
                    Assert.Equal(Convert.ToBase64String(Key32), p["Plaintext"]);
                    return StubResponse.Json($"{{\"KeyId\":\"acs:kms:cn-test:1234:key/{Resolve(p["KeyId"])}\",\"KeyVersionId\":\"v2\",\"CiphertextBlob\":\"blob-{Resolve(p["KeyId"])}\",\"RequestId\":\"r\"}}");
                case "Decrypt":
                    var keyId = p["CiphertextBlob"]["blob-".Length..];
                    return decrypt?.Invoke(keyId)
                        ?? StubResponse.Json($"{{\"KeyId\":\"{keyId}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(Key32)}\",\"RequestId\":\"r\"}}");
                case "DescribeKey":
                    return p["KeyId"] == "alias/main"
                        ? StubResponse.Json("{\"KeyMetadata\":{\"KeyId\":\"k1\",\"Arn\":\"acs:kms:cn-test:1234:key/k1\"},\"RequestId\":\"r\"}")
                        : StubResponse.Error(404, "Forbidden.AliasNotFound");
                default:
                    return StubResponse.Error(404, "InvalidAction.NotFound");
            }
        });

    private static string Resolve(string keyId) => keyId == "alias/main" ? "k1" : keyId;

    private static WrappedDataKey Entry(string keyId) => new(WrappedDataKey.AlibabaKmsProvider, keyId, "v", "cn-test", "blob-" + keyId);

    private static int Decrypts(LocalHttpServer s) => s.Requests.Count(r => r.Header("x-acs-action") == "Decrypt");

    [Fact]
    public async Task Generate_WrapsOneDataKeyUnderEveryKey()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        var provider = new KmsDataKeyProvider(client);

        using var dataKey = await provider.GenerateDataKeyAsync(new[] { "alias/main", "k2" }, Context, CancellationToken.None);

        Assert.Equal(Key32, dataKey.Plaintext.ToArray());
        Assert.Equal("k1", dataKey.KeyId);
        Assert.Collection(dataKey.WrappedKeys,
            e => Assert.Equal(new WrappedDataKey("aliyun-kms", "k1", "v-k1", "cn-test", "blob-k1"), e),
            e => Assert.Equal(new WrappedDataKey("aliyun-kms", "acs:kms:cn-test:1234:key/k2", "v2", "cn-test", "blob-k2"), e));
        var generate = kms.Requests.First();
        Assert.Equal("32", generate.Query["NumberOfBytes"]);
        Assert.Equal("{\"file\":\"a.txt\"}", generate.Query["EncryptionContext"]);
        Assert.Equal("{\"file\":\"a.txt\"}", kms.Requests.Last().Query["EncryptionContext"]);
    }

    [Fact]
    public async Task Generate_RejectsADataKeyOfTheWrongLength()
    {
        await using var kms = FakeKms(generatedBytes: 16);
        using var client = TestClients.For(kms);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).GenerateDataKeyAsync(new[] { "k1" }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
    }

    [Fact]
    public async Task Decrypt_SkipsEntriesOutsideTheAllowList_WithoutCallingKms()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        // The allow-list names the key by ARN; the entry names it by id.
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "acs:kms:cn-test:1234:key/k2" } });

        using var dataKey = await provider.DecryptDataKeyAsync(new[] { Entry("k1"), Entry("k2") }, Context, CancellationToken.None);

        Assert.Equal(Key32, dataKey.Plaintext.ToArray());
        Assert.Equal("k2", dataKey.UnwrappedFrom!.KeyId);
        Assert.Equal(1, Decrypts(kms));
        Assert.Equal("blob-k2", kms.Requests.Single().AllParameters["CiphertextBlob"]);
    }

    [Fact]
    public async Task Decrypt_WithNoAllowedEntry_IsNoMatchingKey_AndMakesNoCall()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "k9" } });
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => provider.DecryptDataKeyAsync(new[] { Entry("k1") }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.NoMatchingKey, e.Error);
        Assert.Empty(kms.Requests);
    }

    [Fact]
    public async Task Decrypt_AllowListAliases_AreResolvedToTheirKey()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "alias/main", "alias/gone" } });

        using var dataKey = await provider.DecryptDataKeyAsync(
            new[] { Entry("k3"), Entry("acs:kms:cn-test:1234:key/k1") }, Context, CancellationToken.None);

        Assert.Equal("acs:kms:cn-test:1234:key/k1", dataKey.UnwrappedFrom!.KeyId);
        Assert.Equal(1, Decrypts(kms));
    }

    [Fact]
    public async Task Decrypt_RejectsAKeyThatKmsUsedButIsNotAllowed()
    {
        await using var kms = FakeKms(decrypt: _ => StubResponse.Json($"{{\"KeyId\":\"evil\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(Key32)}\"}}"));
        using var client = TestClients.For(kms);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "k1" } });
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => provider.DecryptDataKeyAsync(new[] { Entry("k1") }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        Assert.Contains("evil", e.Message);
    }

    [Fact]
    public async Task Decrypt_RejectsADataKeyOfTheWrongLength()
    {
        await using var kms = FakeKms(decrypt: k => StubResponse.Json($"{{\"KeyId\":\"{k}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(new byte[16])}\"}}"));
        using var client = TestClients.For(kms);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).DecryptDataKeyAsync(new[] { Entry("k1") }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
    }

    [Fact]
    public async Task Decrypt_FallsThroughToTheNextEntry_WhenOneIsRefused()
    {
        await using var kms = FakeKms(decrypt: k => k == "k1" ? StubResponse.Error(409, "Rejected.Disabled") : null!);
        using var client = TestClients.For(kms);
        using var dataKey = await new KmsDataKeyProvider(client).DecryptDataKeyAsync(new[] { Entry("k1"), Entry("k2") }, Context, CancellationToken.None);
        Assert.Equal("k2", dataKey.KeyId);
    }

    [Theory]
    [InlineData(409, "Rejected.Disabled", KeyProviderError.Refused, 2)]
    [InlineData(400, "InvalidParameter", KeyProviderError.Refused, 2)]
    [InlineData(403, "Forbidden.NoPermission", KeyProviderError.Refused, 2)]
    [InlineData(404, "Forbidden.KeyNotFound", KeyProviderError.NoMatchingKey, 2)]
    [InlineData(503, "ServiceUnavailableTemporary", KeyProviderError.Unavailable, 2 * 3)]
    [InlineData(404, "InvalidAccessKeyId.NotFound", KeyProviderError.Authentication, 1)]
    [InlineData(400, "InvalidTimeStamp.Expired", KeyProviderError.Authentication, 1)]
    public async Task Decrypt_MapsKmsErrors(int status, string code, KeyProviderError expected, int expectedCalls)
    {
        await using var kms = FakeKms(decrypt: _ => StubResponse.Error(status, code));
        using var client = TestClients.For(kms, maxAttempts: 3);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).DecryptDataKeyAsync(new[] { Entry("k1"), Entry("k2") }, Context, CancellationToken.None));
        Assert.Equal(expected, e.Error);
        Assert.Equal(code, Assert.IsType<KmsException>(e.InnerException).Code);
        Assert.Equal(expectedCalls, Decrypts(kms));
    }

    [Fact]
    public async Task Generate_MapsAMissingKeyToNoMatchingKey()
    {
        await using var kms = new LocalHttpServer(_ => StubResponse.Error(404, "Forbidden.AliasNotFound"));
        using var client = TestClients.For(kms);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).GenerateDataKeyAsync(new[] { "alias/none" }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.NoMatchingKey, e.Error);
    }

    [Fact]
    public async Task Decrypt_UsesTheRegionalClientForAnEntryOfAnotherRegion()
    {
        await using var home = FakeKms(decrypt: _ => StubResponse.Error(404, "Forbidden.KeyNotFound"));
        await using var away = FakeKms();
        using var homeClient = TestClients.For(home);
        using var awayClient = TestClients.For(away);
        var asked = new List<string>();
        var provider = new KmsDataKeyProvider(homeClient, new KmsDataKeyProviderOptions
        {
            ClientForRegion = region => { asked.Add(region); return region == "eu-central-1" ? awayClient : null; },
        });
        var entries = new[] { Entry("k1"), new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k2", "v", "eu-central-1", "blob-k2") };

        using var dataKey = await provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None);

        Assert.Equal("k2", dataKey.KeyId);
        Assert.Equal(new[] { "eu-central-1" }, asked); // the cn-test entry stays on the main client
        Assert.Equal(1, Decrypts(home));
        Assert.Equal(1, Decrypts(away));
    }

    [Theory]
    [InlineData("k1", "acs:kms:cn-hangzhou:123:key/k1", true)]
    [InlineData("acs:kms:cn-hangzhou:123:key/k1", "acs:kms:cn-hangzhou:123:key/k1", true)]
    [InlineData("acs:kms:cn-hangzhou:123:key/k1", "acs:kms:cn-beijing:123:key/k1", false)]
    [InlineData("acs:kms:cn-hangzhou:123:key/k1", "acs:kms:cn-hangzhou:999:key/k1", false)]
    [InlineData("k1", "k2", false)]
    [InlineData("alias/a", "acs:kms:cn-hangzhou:123:alias/a", true)]
    [InlineData("alias/a", "k1", false)]
    public void KeyReferences_MatchAcrossIdAndArnForms(string a, string b, bool expected)
    {
        Assert.Equal(expected, KmsKeyReference.Parse(a).Matches(KmsKeyReference.Parse(b)));
        Assert.Equal(expected, KmsKeyReference.Parse(b).Matches(KmsKeyReference.Parse(a)));
    }
}
