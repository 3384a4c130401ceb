using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using Xunit;
using EnvelopeKms.Cloud;

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
                    return p["KeyId"] is "alias/main" or "acs:kms:eu-central-1:1234:alias/main"
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
    public async Task A_RAM_refusal_of_every_entry_names_the_grant_each_would_need()
    {
        await using var kms = FakeKms(decrypt: _ => new StubResponse(403,
            "{\"RequestId\":\"r\",\"Code\":\"Forbidden.NoPermission\",\"Message\":\"This operation is forbidden by permission system.\",\"AccessDeniedDetail\":{\"AuthPrincipalOwnerId\":\"1234\"}}"));
        using var client = TestClients.For(kms);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).DecryptDataKeyAsync(new[] { Entry("k1"), Entry("k2") }, Context, CancellationToken.None));
        Assert.Equal(KeyProviderError.Refused, e.Error);
        Assert.Contains("entry 1 'k1' (region cn-test): Refused: Forbidden.NoPermission, needs kms:Decrypt on acs:kms:cn-test:1234:key/k1 at", e.Message);
        Assert.Contains("entry 2 'k2' (region cn-test): Refused: Forbidden.NoPermission, needs kms:Decrypt on acs:kms:cn-test:1234:key/k2 at", e.Message);
        Assert.Equal("kms:Decrypt", Assert.IsType<KmsException>(e.InnerException).RequiredPermission!.Action);
    }

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
        using var clients = new KmsRegionalClients(homeClient, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["eu-central-1"] = KmsEndpoint.FromUrl(away.BaseUrl, "eu-central-1") },
        });
        var provider = new KmsDataKeyProvider(clients);
        var entries = new[] { Entry("k1"), new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k2", "v", "eu-central-1", "blob-k2") };

        using var dataKey = await provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None);

        Assert.Equal("k2", dataKey.KeyId);
        Assert.Same(entries[1], dataKey.UnwrappedFrom);
        Assert.Equal(1, Decrypts(home)); // the cn-test entry stays on the home client
        Assert.Equal(1, Decrypts(away));
        Assert.Equal("blob-k2", away.Requests.Single().AllParameters["CiphertextBlob"]);
    }

    [Fact]
    public async Task SingleClientProvider_SendsEveryRegionToItsOneClient()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        var entries = new[] { new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k2", "v", "eu-central-1", "blob-k2") };
        using var dataKey = await new KmsDataKeyProvider(client).DecryptDataKeyAsync(entries, Context, CancellationToken.None);
        Assert.Equal(1, Decrypts(kms));
    }

    [Fact]
    public async Task Generate_WrapsAnArnOfAnotherRegionAtThatRegionsEndpoint_AndRecordsTheWrappingRegion()
    {
        await using var home = FakeKms();
        await using var away = FakeKms();
        using var homeClient = TestClients.For(home);
        var created = new List<KmsClient>();
        using var clients = new KmsRegionalClients(homeClient, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["eu-central-1"] = KmsEndpoint.FromUrl(away.BaseUrl, "eu-central-1") },
            ClientCreated = created.Add,
        });
        var trace = new List<string>();
        var provider = new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { Trace = trace.Add });

        using var dataKey = await provider.GenerateDataKeyAsync(new[] { "k1", "acs:kms:eu-central-1:1234:key/k2", "k3" }, Context, CancellationToken.None);

        Assert.Equal(new[] { "cn-test", "eu-central-1", "cn-test" }, dataKey.WrappedKeys.Select(w => w.Region));
        Assert.Equal(new[] { "GenerateDataKey", "Encrypt" }, home.Requests.Select(r => r.Header("x-acs-action")));
        Assert.Equal("k3", home.Requests.Last().Query["KeyId"]);
        var wrappedAway = Assert.Single(away.Requests);
        Assert.Equal("Encrypt", wrappedAway.Header("x-acs-action"));
        Assert.Equal("acs:kms:eu-central-1:1234:key/k2", wrappedAway.Query["KeyId"]); // the ARN is passed through
        Assert.Equal("{\"file\":\"a.txt\"}", wrappedAway.Query["EncryptionContext"]);
        // The regional client shares the home client's credentials source and retry policy.
        var regional = Assert.Single(created);
        Assert.Same(homeClient.Options.Credentials, regional.Options.Credentials);
        Assert.Same(homeClient.Options.Retry, regional.Options.Retry);
        Assert.True(StubSignatures.VerifyV3(wrappedAway, "testsecret"));
        Assert.Equal(3, trace.Count);
        Assert.Contains("region eu-central-1", trace[1]);
        Assert.DoesNotContain(Convert.ToBase64String(Key32), string.Join("\n", trace));
    }

    [Fact]
    public async Task Generate_FailsUpFront_ForAnArnOfARegionWithNoEndpoint()
    {
        await using var home = FakeKms();
        using var homeClient = TestClients.For(home);
        using var clients = new KmsRegionalClients(homeClient);
        await Assert.ThrowsAsync<KmsConfigurationException>(() =>
            new KmsDataKeyProvider(clients).GenerateDataKeyAsync(new[] { "k1", "acs:kms:Not_A_Region:1234:key/k2" }, Context, CancellationToken.None));
        Assert.Empty(home.Requests); // nothing was generated and then thrown away
    }

    [Fact]
    public async Task Decrypt_SkipsAnUnreachableRegion_ThenTriesItLast_UntilItAnswersAgain()
    {
        await using var home = FakeKms();
        bool awayDown = true;
        await using var away = FakeKms(decrypt: _ => awayDown ? new StubResponse(0, "") { Drop = true } : null!);
        using var homeClient = TestClients.For(home, maxAttempts: 2);
        using var clients = new KmsRegionalClients(homeClient, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["eu-central-1"] = KmsEndpoint.FromUrl(away.BaseUrl, "eu-central-1") },
        });
        var trace = new List<string>();
        var provider = new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { Trace = trace.Add });
        var entries = new[] { new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k2", "v", "eu-central-1", "blob-k2"), Entry("k1") };

        using (var first = await provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None))
            Assert.Same(entries[1], first.UnwrappedFrom);
        int awayCalls = Decrypts(away); // the handler may also resend a request on a dropped connection
        Assert.True(awayCalls >= 2, $"{awayCalls} calls reached the unreachable region");
        Assert.Equal(1, Decrypts(home));
        Assert.Contains(trace, t => t.Contains("entry 1 of 2") && t.Contains("Unavailable") && t.Contains("trying the next entry"));

        // The next file: the region that was unreachable goes last, so the batch does not wait for it again.
        using (var second = await provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None))
            Assert.Same(entries[1], second.UnwrappedFrom);
        Assert.Equal(awayCalls, Decrypts(away));

        // Where only that region can unwrap, it is still tried, and once it answers it is first again.
        awayDown = false;
        using (var third = await provider.DecryptDataKeyAsync(new[] { entries[0] }, Context, CancellationToken.None))
            Assert.Same(entries[0], third.UnwrappedFrom);
        using (var fourth = await provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None))
            Assert.Same(entries[0], fourth.UnwrappedFrom);
        Assert.Equal(2, Decrypts(home));
    }

    [Fact]
    public async Task Decrypt_WhenNoEntryWorks_TheErrorNamesEveryEntryAndWhy()
    {
        await using var home = FakeKms(decrypt: _ => StubResponse.Error(409, "Rejected.Disabled"));
        await using var away = FakeKms(decrypt: _ => new StubResponse(0, "") { Drop = true });
        using var homeClient = TestClients.For(home, maxAttempts: 1);
        using var clients = new KmsRegionalClients(homeClient, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["eu-central-1"] = KmsEndpoint.FromUrl(away.BaseUrl, "eu-central-1") },
        });
        var provider = new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "k1", "k2", "k4" } });
        var entries = new[]
        {
            Entry("k1"),
            new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k2", "v", "eu-central-1", "blob-k2"),
            Entry("k3"),
            new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k4", "v", "Not A Region", "blob-k4"),
        };

        var e = await Assert.ThrowsAsync<KeyProviderException>(() => provider.DecryptDataKeyAsync(entries, Context, CancellationToken.None));

        Assert.Equal(KeyProviderError.Refused, e.Error); // the most actionable failure
        Assert.Contains("entry 1 'k1' (region cn-test): Refused: Rejected.Disabled", e.Message);
        Assert.Contains("entry 2 'k2' (region eu-central-1): Unavailable: Client.ConnectionFailure", e.Message);
        Assert.Contains("entry 3 'k3' (region cn-test): skipped: not an allowed key", e.Message);
        Assert.Contains("entry 4 'k4' (region Not A Region): skipped: No KMS endpoint is known for the region 'Not A Region'", e.Message);
        Assert.Equal(1, Decrypts(home));
        Assert.True(Decrypts(away) >= 1);
    }

    [Fact]
    public async Task Decrypt_AnAliasArnInTheAllowList_IsResolvedInItsRegion()
    {
        await using var home = FakeKms();
        await using var away = FakeKms();
        using var homeClient = TestClients.For(home);
        using var clients = new KmsRegionalClients(homeClient, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["eu-central-1"] = KmsEndpoint.FromUrl(away.BaseUrl, "eu-central-1") },
        });
        var provider = new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { AllowedKeyIds = new[] { "acs:kms:eu-central-1:1234:alias/main" } });

        using var dataKey = await provider.DecryptDataKeyAsync(new[] { Entry("k2"), Entry("k1") }, Context, CancellationToken.None);

        Assert.Equal("k1", dataKey.UnwrappedFrom!.KeyId);
        Assert.Equal("acs:kms:eu-central-1:1234:alias/main", away.Requests.Single(r => r.Header("x-acs-action") == "DescribeKey").Query["KeyId"]);
        Assert.DoesNotContain(home.Requests, r => r.Header("x-acs-action") == "DescribeKey");
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
