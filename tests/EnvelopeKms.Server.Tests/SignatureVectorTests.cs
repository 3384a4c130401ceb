using EnvelopeKms.Server.Auth;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>
/// The official and KMS-specific vectors of the reference (§1.3, §1.4), checked against both the
/// server's signing code and the independent test signer, so either drifting is caught.
/// </summary>
public class SignatureVectorTests
{
    private static readonly Dictionary<string, string> KmsVectorParams = new()
    {
        ["AccessKeyId"] = "testid",
        ["Action"] = "GenerateDataKey",
        ["EncryptionContext"] = "{\"purpose\":\"test file\"}",
        ["Format"] = "JSON",
        ["KeyId"] = "alias/test-key",
        ["KeySpec"] = "AES_256",
        ["SignatureMethod"] = "HMAC-SHA1",
        ["SignatureNonce"] = "15215528852396",
        ["SignatureVersion"] = "1.0",
        ["Timestamp"] = "2024-01-01T00:00:00Z",
        ["Version"] = "2016-01-20",
    };

    [Theory]
    [InlineData("GET", null, "Gxxqv4aQVFVEijj2SzUpb3E+iWM=")]
    [InlineData("POST", null, "GpxXdYmAdhgMqN9a6W5MqkSnIVk=")]
    [InlineData("POST", "sts-token-example", "RTCuvUsXNdWWtilZVP2XucVooXg=")]
    public void V1_kms_vectors(string method, string? securityToken, string expected)
    {
        var parameters = new Dictionary<string, string>(KmsVectorParams);
        if (securityToken is not null)
        {
            parameters["SecurityToken"] = securityToken;
        }
        Assert.Equal(expected, SignatureV1.Sign("testsecret", SignatureV1.StringToSign(method, parameters)));
        Assert.Equal(expected, TestSigner.V1Signature("testsecret", TestSigner.V1StringToSign(method, parameters)));
    }

    [Fact]
    public void V1_official_rpc_doc_vector()
    {
        var parameters = new Dictionary<string, string>
        {
            ["AccessKeyId"] = "testid",
            ["Action"] = "DescribeDedicatedHosts",
            ["Format"] = "JSON",
            ["RegionId"] = "cn-beijing",
            ["SignatureMethod"] = "HMAC-SHA1",
            ["SignatureNonce"] = "edb2b34af0af9a6d14deaf7c1a5315eb",
            ["SignatureVersion"] = "1.0",
            ["Timestamp"] = "2023-03-13T08:34:30Z",
            ["Version"] = "2014-05-26",
        };
        Assert.Equal("9NaGiOspFP5UPcwX8Iwt2YJXXuk=", SignatureV1.Sign("testsecret", SignatureV1.StringToSign("GET", parameters)));
    }

    [Fact]
    public void V1_kms_doc_create_key_vector_and_string_to_sign()
    {
        var parameters = new Dictionary<string, string>
        {
            ["Action"] = "CreateKey",
            ["AccessKeyId"] = "testid",
            ["Format"] = "json",
            ["SignatureMethod"] = "HMAC-SHA1",
            ["SignatureVersion"] = "1.0",
            ["Timestamp"] = "2016-03-28T03:13:08Z",
            ["Version"] = "2016-01-20",
        };
        var stringToSign = SignatureV1.StringToSign("GET", parameters);
        Assert.Equal(
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DCreateKey%26Format%3Djson%26SignatureMethod%3DHMAC-SHA1%26SignatureVersion%3D1.0%26Timestamp%3D2016-03-28T03%253A13%253A08Z%26Version%3D2016-01-20",
            stringToSign);
        Assert.Equal("41wk2SSX1GJh7fwnc5eqOfiJPFg=", SignatureV1.Sign("testsecret", stringToSign));
        Assert.Equal("Fi0klWyYLE4Wy22gxatiAP51JFE=", SignatureV1.Sign("testsecret", SignatureV1.StringToSign("POST", parameters)));
    }

    [Fact]
    public void Percent_encoding_follows_the_reference_rules()
    {
        Assert.Equal("a%20b%2A~%2B%2F%21%27%28%29-_.", Protocol.PercentEncoding.Encode("a b*~+/!'()-_."));
        Assert.Equal("%E4%BD%A0", Protocol.PercentEncoding.Encode("你"));
        Assert.Equal(TestSigner.Encode("a b*~+/!'()-_.你"), Protocol.PercentEncoding.Encode("a b*~+/!'()-_.你"));
        // The server decodes leniently: '+' is a space, raw '*' and '~' pass through.
        Assert.Equal("a b*~+", Protocol.PercentEncoding.DecodeComponent("a+b*~%2B"));
    }

    [Fact]
    public void V3_official_doc_vector()
    {
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["host"] = "ecs.cn-shanghai.aliyuncs.com",
            ["x-acs-action"] = "RunInstances",
            ["x-acs-content-sha256"] = SignatureV3.EmptyPayloadHash,
            ["x-acs-date"] = "2023-10-26T10:22:32Z",
            ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d",
            ["x-acs-version"] = "2014-05-26",
        };
        var query = new Dictionary<string, string>
        {
            ["ImageId"] = "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ["RegionId"] = "cn-shanghai",
        };
        AssertV3(query, headers, "YourAccessKeySecret",
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259",
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
    }

    [Fact]
    public void V3_kms_vector()
    {
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["host"] = "kms.cn-hangzhou.aliyuncs.com",
            ["x-acs-action"] = "GenerateDataKey",
            ["x-acs-content-sha256"] = SignatureV3.EmptyPayloadHash,
            ["x-acs-date"] = "2024-01-01T00:00:00Z",
            ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d",
            ["x-acs-version"] = "2016-01-20",
        };
        var query = new Dictionary<string, string>
        {
            ["EncryptionContext"] = "{\"purpose\":\"test file\"}",
            ["KeyId"] = "alias/test-key",
            ["KeySpec"] = "AES_256",
        };
        AssertV3(query, headers, "testsecret",
            "7615bed04752f479bb7dcfc0f853d3f4200284052ee5e47bdf09ae19baaa23ee",
            "b33ed74427e06f925bf90f6c677fa0d7c265a2940766dfceb456f27ba7d78446");
    }

    private static void AssertV3(Dictionary<string, string> query, SortedDictionary<string, string> headers, string secret, string hashedCanonical, string signature)
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", SignatureV3.EmptyPayloadHash);
        var canonical = SignatureV3.CanonicalRequest("POST", query, [.. headers.Keys], name => [headers[name]], SignatureV3.EmptyPayloadHash);
        var stringToSign = SignatureV3.StringToSign(canonical);
        Assert.Equal("ACS3-HMAC-SHA256\n" + hashedCanonical, stringToSign);
        Assert.Equal(signature, SignatureV3.Sign(secret, stringToSign));

        var testCanonical = TestSigner.V3CanonicalRequest("POST", query, headers, SignatureV3.EmptyPayloadHash);
        Assert.Equal(canonical, testCanonical);
        Assert.Equal(signature, TestSigner.V3Signature(secret, TestSigner.V3StringToSign(testCanonical)));
    }
}
