using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Tests.Kms;
using Xunit;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>The KMS side of Encryption SDK messages, against a stand-in KMS over HTTP: 16-byte data keys and key ARNs.</summary>
public class AlibabaSdkKmsTests
{
    private static readonly byte[] Key16 = Enumerable.Range(1, 16).Select(i => (byte)(i * 3)).ToArray();
    private static readonly byte[] Key32 = Enumerable.Range(1, 32).Select(i => (byte)(i * 5)).ToArray();

    private static LocalHttpServer FakeKms(int decryptBytes = 16) => new(r =>
    {
        var p = r.AllParameters;
        switch (r.Header("x-acs-action"))
        {
            case "GenerateDataKey":
                var n = int.Parse(p["NumberOfBytes"]);
                return StubResponse.Json($"{{\"KeyId\":\"{p["KeyId"]}\",\"KeyVersionId\":\"v\",\"CiphertextBlob\":\"YmxvYg==\",\"Plaintext\":\"{Convert.ToBase64String(Key32[..n])}\",\"RequestId\":\"r\"}}");
            case "Decrypt":
                var key = decryptBytes == 16 ? Key16 : Key32;
                return StubResponse.Json($"{{\"KeyId\":\"k1\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(key)}\",\"RequestId\":\"r\"}}");
            case "DescribeKey":
                return p["KeyId"] switch
                {
                    "alias/main" or "k1" => StubResponse.Json("{\"KeyMetadata\":{\"KeyId\":\"k1\",\"Arn\":\"acs:kms:cn-test:1234:key/k1\"},\"RequestId\":\"r\"}"),
                    "no-arn" => StubResponse.Json("{\"KeyMetadata\":{\"KeyId\":\"no-arn\"},\"RequestId\":\"r\"}"),
                    _ => StubResponse.Error(404, "Forbidden.KeyNotFound"),
                };
            default:
                return StubResponse.Error(404, "InvalidAction.NotFound");
        }
    });

    [Fact]
    public async Task SixteenByteDataKeysAreGeneratedAndUnwrappedOnRequestOnly()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        var provider = new KmsDataKeyProvider(client);
        using (var generated = await provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, 16, default))
            Assert.Equal(Key32[..16], generated.Plaintext.ToArray());
        Assert.Equal("16", kms.Requests.Last().AllParameters["NumberOfBytes"]);

        var entry = new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "acs:kms:cn-test:1234:key/k1", "", "cn-test", "YmxvYg==");
        using (var unwrapped = await provider.DecryptDataKeyAsync([entry], EncryptionContext.Empty, 16, default))
            Assert.Equal(Key16, unwrapped.Plaintext.ToArray());
        // The default length is 32: a 16-byte answer is refused there, and a 32-byte answer where 16 were needed.
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => provider.DecryptDataKeyAsync([entry], EncryptionContext.Empty, default));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        await using var kms32 = FakeKms(decryptBytes: 32);
        using var client32 = TestClients.For(kms32);
        e = await Assert.ThrowsAsync<KeyProviderException>(() => new KmsDataKeyProvider(client32).DecryptDataKeyAsync([entry], EncryptionContext.Empty, 16, default));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, 24, default));
    }

    [Fact]
    public async Task KeyArnsAreResolvedWithDescribeKeyUnlessGiven()
    {
        await using var kms = FakeKms();
        using var client = TestClients.For(kms);
        Assert.Equal("acs:kms:cn-hangzhou:99:key/given", await KmsKeyArnResolver.ResolveAsync(client, " acs:kms:cn-hangzhou:99:key/given "));
        Assert.Empty(kms.Requests);
        Assert.Equal(["acs:kms:cn-test:1234:key/k1", "acs:kms:cn-test:1234:key/k1"], await KmsKeyArnResolver.ResolveAsync(client, ["alias/main", "k1"]));
        var missing = await Assert.ThrowsAsync<KmsException>(() => KmsKeyArnResolver.ResolveAsync(client, "nope"));
        Assert.Equal("Forbidden.KeyNotFound", missing.Code);
        var noArn = await Assert.ThrowsAsync<KmsException>(() => KmsKeyArnResolver.ResolveAsync(client, "no-arn"));
        Assert.Equal(KmsErrorKind.InvalidResponse, noArn.Kind);

        Assert.True(KmsKeyArn.IsKeyArn("acs:kms:cn-test:1234:key/k1"));
        Assert.Equal("cn-test", KmsKeyArn.RegionOf("acs:kms:cn-test:1234:key/k1"));
        Assert.Equal("k1", KmsKeyArn.KeyIdOf("acs:kms:cn-test:1234:key/k1"));
        foreach (var bad in new[] { "k1", "alias/x", "acs:kms:cn-test:1234:alias/x", "acs:kms:cn-test::key/k1", "acs:kms:cn-test:1234:key/", "acs:ecs:cn-test:1234:key/k1", "acs:kms:cn-test:1234:key/a:b" })
            Assert.False(KmsKeyArn.IsKeyArn(bad), bad);
    }

    [Fact]
    public void EntriesNameTheArnAndItsRegion()
    {
        var key = new AlibabaSdkEncryptedDataKey("acs:kms:cn-shanghai:1234:key/k9", [1, 2, 3]);
        Assert.Equal(new WrappedDataKey("aliyun-kms", "acs:kms:cn-shanghai:1234:key/k9", "", "cn-shanghai", "AQID"), key.ToWrappedDataKey());
        Assert.Equal("", new AlibabaSdkEncryptedDataKey("not-an-arn", [1]).ToWrappedDataKey().Region);
    }
}
