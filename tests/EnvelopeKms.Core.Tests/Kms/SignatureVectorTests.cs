using System.Text;
using EnvelopeKms.Cloud.Signing;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

/// <summary>Every official (and reproduced KMS) signature vector of docs/reference alibaba-kms-api.md §1.3–1.4.</summary>
public class SignatureVectorTests
{
    private static Dictionary<string, string> Common(string action, string version, string format, string? nonce, string timestamp)
    {
        var p = new Dictionary<string, string>
        {
            ["AccessKeyId"] = "testid",
            ["Action"] = action,
            ["Format"] = format,
            ["SignatureMethod"] = "HMAC-SHA1",
            ["SignatureVersion"] = "1.0",
            ["Timestamp"] = timestamp,
            ["Version"] = version,
        };
        if (nonce is not null) p["SignatureNonce"] = nonce;
        return p;
    }

    [Theory]
    [InlineData("GET", "9NaGiOspFP5UPcwX8Iwt2YJXXuk=")]
    public void V1a_RpcDoc_DescribeDedicatedHosts(string method, string expected)
    {
        var p = Common("DescribeDedicatedHosts", "2014-05-26", "JSON", "edb2b34af0af9a6d14deaf7c1a5315eb", "2023-03-13T08:34:30Z");
        p["RegionId"] = "cn-beijing";
        Assert.Equal(expected, RpcSignatureV1.ComputeSignature(method, p, "testsecret"));
    }

    [Theory]
    [InlineData("GET", "OLeaidS1JvxuMvnyHOwuJ+uX5qY=")]
    [InlineData("POST", "MxbnVAM4w6sft9xjVpe/GCKueuk=")]
    public void V1b_ClassicDoc_DescribeRegions(string method, string expected)
    {
        var p = Common("DescribeRegions", "2014-05-26", "XML", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "2016-02-23T12:46:24Z");
        Assert.Equal(expected, RpcSignatureV1.ComputeSignature(method, p, "testsecret"));
    }

    [Theory]
    [InlineData("GET", "41wk2SSX1GJh7fwnc5eqOfiJPFg=")]
    [InlineData("POST", "Fi0klWyYLE4Wy22gxatiAP51JFE=")]
    public void V1c_KmsDoc_CreateKey(string method, string expected)
    {
        var p = Common("CreateKey", "2016-01-20", "json", nonce: null, "2016-03-28T03:13:08Z");
        Assert.Equal(expected, RpcSignatureV1.ComputeSignature(method, p, "testsecret"));
    }

    [Fact]
    public void V1c_KmsDoc_CreateKey_StringToSign()
    {
        var p = Common("CreateKey", "2016-01-20", "json", nonce: null, "2016-03-28T03:13:08Z");
        Assert.Equal(
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DCreateKey%26Format%3Djson%26SignatureMethod%3DHMAC-SHA1%26SignatureVersion%3D1.0%26Timestamp%3D2016-03-28T03%253A13%253A08Z%26Version%3D2016-01-20",
            RpcSignatureV1.BuildStringToSign("GET", p));
    }

    private static Dictionary<string, string> KmsGenerateDataKeyParams()
    {
        var p = Common("GenerateDataKey", "2016-01-20", "JSON", "15215528852396", "2024-01-01T00:00:00Z");
        p["EncryptionContext"] = "{\"purpose\":\"test file\"}";
        p["KeyId"] = "alias/test-key";
        p["KeySpec"] = "AES_256";
        return p;
    }

    [Theory]
    [InlineData("GET", false, "Gxxqv4aQVFVEijj2SzUpb3E+iWM=")]
    [InlineData("POST", false, "GpxXdYmAdhgMqN9a6W5MqkSnIVk=")]
    [InlineData("POST", true, "RTCuvUsXNdWWtilZVP2XucVooXg=")]
    public void V1_Kms_GenerateDataKey(string method, bool withToken, string expected)
    {
        var p = KmsGenerateDataKeyParams();
        if (withToken) p["SecurityToken"] = "sts-token-example";
        Assert.Equal(expected, RpcSignatureV1.ComputeSignature(method, p, "testsecret"));
    }

    [Fact]
    public void V1_Kms_GenerateDataKey_CanonicalQuery()
    {
        const string canonical = "AccessKeyId=testid&Action=GenerateDataKey&EncryptionContext=%7B%22purpose%22%3A%22test%20file%22%7D&Format=JSON&KeyId=alias%2Ftest-key&KeySpec=AES_256&SignatureMethod=HMAC-SHA1&SignatureNonce=15215528852396&SignatureVersion=1.0&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2016-01-20";
        Assert.Equal("GET&%2F&" + AcsPercentEncoding.Encode(canonical), RpcSignatureV1.BuildStringToSign("GET", KmsGenerateDataKeyParams()));
    }

    [Fact]
    public void V1_SignRequest_WithCommonParameters_ReproducesKmsVector()
    {
        var business = new[]
        {
            AcsParameter.Text("EncryptionContext", "{\"purpose\":\"test file\"}"),
            AcsParameter.Text("KeyId", "alias/test-key"),
            AcsParameter.Text("KeySpec", "AES_256"),
        };
        var all = RpcSignatureV1.SignRequest("GET", "GenerateDataKey", "2016-01-20", business, "testid", "testsecret",
            securityToken: null, new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), "15215528852396");
        Assert.Equal("Gxxqv4aQVFVEijj2SzUpb3E+iWM=", all.Single(p => p.Name == "Signature").TextValue);
    }

    [Fact]
    public void V1_SecretParameterBytes_SignLikeTheSameText()
    {
        var asText = KmsGenerateDataKeyParams();
        asText["Plaintext"] = "q+/w==";
        var expected = RpcSignatureV1.ComputeSignature("POST", asText, "testsecret");

        var withSecret = KmsGenerateDataKeyParams().Select(kv => AcsParameter.Text(kv.Key, kv.Value)).ToList();
        withSecret.Add(AcsParameter.Secret("Plaintext", Encoding.UTF8.GetBytes("q+/w==")));
        Assert.Equal(expected, RpcSignatureV1.ComputeSignature("POST", withSecret, "testsecret"));
    }

    [Fact]
    public void PercentEncoding_FollowsTheRfc3986UnreservedSet()
    {
        Assert.Equal("a%20b%2A~%2B%2F%21%27%28%29%3D%C3%A9-_.", AcsPercentEncoding.Encode("a b*~+/!'()=é-_."));
    }

    [Fact]
    public void V3_OfficialVector_RunInstances()
    {
        var query = new Dictionary<string, string>
        {
            ["ImageId"] = "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ["RegionId"] = "cn-shanghai",
        };
        var headers = new Dictionary<string, string>
        {
            ["host"] = "ecs.cn-shanghai.aliyuncs.com",
            ["x-acs-action"] = "RunInstances",
            ["x-acs-version"] = "2014-05-26",
            ["x-acs-date"] = "2023-10-26T10:22:32Z",
            ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d",
            ["x-acs-content-sha256"] = AcsSignatureV3.EmptyPayloadHash,
        };
        var canonical = AcsSignatureV3.BuildCanonicalRequest("POST", query, headers, AcsSignatureV3.EmptyPayloadHash, out _);
        Assert.Equal("7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259", AcsSignatureV3.HashCanonicalRequest(canonical));
        Assert.Equal("06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
            AcsSignatureV3.ComputeSignature(AcsSignatureV3.BuildStringToSign(canonical), "YourAccessKeySecret"));
    }

    [Fact]
    public void V3_KmsVector_GenerateDataKey_CanonicalRequestAndSignature()
    {
        var query = new Dictionary<string, string>
        {
            ["KeyId"] = "alias/test-key",
            ["KeySpec"] = "AES_256",
            ["EncryptionContext"] = "{\"purpose\":\"test file\"}",
        };
        var signed = AcsSignatureV3.Sign("POST", "kms.cn-hangzhou.aliyuncs.com", "GenerateDataKey", "2016-01-20", query,
            AcsSignatureV3.EmptyPayloadHash, contentType: null, "testid", "testsecret", securityToken: null,
            new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), "3156853299f313e23d1673dc12e1703d");

        const string expectedCanonical =
            "POST\n/\nEncryptionContext=%7B%22purpose%22%3A%22test%20file%22%7D&KeyId=alias%2Ftest-key&KeySpec=AES_256\n" +
            "host:kms.cn-hangzhou.aliyuncs.com\nx-acs-action:GenerateDataKey\n" +
            "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
            "x-acs-date:2024-01-01T00:00:00Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2016-01-20\n\n" +
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n" +
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        var canonical = AcsSignatureV3.BuildCanonicalRequest("POST", query, signed.Headers, AcsSignatureV3.EmptyPayloadHash, out var signedHeaders);
        Assert.Equal(expectedCanonical, canonical);
        Assert.Equal("7615bed04752f479bb7dcfc0f853d3f4200284052ee5e47bdf09ae19baaa23ee", AcsSignatureV3.HashCanonicalRequest(canonical));
        Assert.Equal(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=" + signedHeaders +
            ",Signature=b33ed74427e06f925bf90f6c677fa0d7c265a2940766dfceb456f27ba7d78446",
            signed.Authorization);
    }

    [Fact]
    public void V3_SecurityToken_IsSignedAlongWithTheAccessKeyIdHeader()
    {
        var signed = AcsSignatureV3.Sign("POST", "kms.cn-hangzhou.aliyuncs.com", "Decrypt", "2016-01-20",
            new Dictionary<string, string>(), AcsSignatureV3.EmptyPayloadHash, null, "testid", "testsecret", "tok",
            DateTimeOffset.UnixEpoch, "n");
        Assert.Contains("x-acs-accesskey-id;", signed.Authorization);
        Assert.Contains("x-acs-security-token;", signed.Authorization);
        Assert.DoesNotContain("testsecret", signed.StringToSign + signed.Authorization);
    }
}
