using System.Globalization;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>Signature V1 in every transport shape, V3, and each way authentication must fail.</summary>
public class AuthenticationTests
{
    private const string MismatchPrefix = "Specified signature is not matched with our calculation. server string to sign is:";

    public static TheoryData<SigningMode> AllModes => [.. Enum.GetValues<SigningMode>()];

    public static TheoryData<SigningMode> V1Modes => [SigningMode.V1Get, SigningMode.V1PostQuery, SigningMode.V1PostForm, SigningMode.V1Mixed];

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task Every_signing_mode_round_trips_a_data_key(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client(mode);
        var keyId = (await client.Ok("CreateKey")).Body.GetProperty("KeyMetadata").GetProperty("KeyId").GetString()!;
        // A context with characters that need encoding care: space, +, /, *, ~, non-ASCII.
        var context = "{\"file\":\"a b+c/d*e~f\",\"owner\":\"Zoë\"}";
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId, ["EncryptionContext"] = context });
        var decrypted = await client.Ok("Decrypt", new Dictionary<string, string>
        {
            ["CiphertextBlob"] = dataKey.Get("CiphertextBlob"),
            ["EncryptionContext"] = context,
        });
        Assert.Equal(dataKey.Get("Plaintext"), decrypted.Get("Plaintext"));
    }

    [Theory]
    [MemberData(nameof(V1Modes))]
    public async Task V1_bad_signature_returns_SignatureDoesNotMatch_with_the_server_string_to_sign(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client(mode).Call("ListKeys", tweaks: new Tweaks { SigningSecret = "not-the-secret" });
        Assert.Equal(400, response.Status);
        Assert.Equal("SignatureDoesNotMatch", response.Code);
        var method = mode == SigningMode.V1Get ? "GET" : "POST";
        Assert.StartsWith(MismatchPrefix + method + "&%2F&", response.Message);
        Assert.Contains("Action%3DListKeys", response.Message);
    }

    [Fact]
    public async Task V3_bad_signature_returns_SignatureDoesNotMatch_with_the_server_string_to_sign()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client().Call("ListKeys", tweaks: new Tweaks { SigningSecret = "not-the-secret" });
        Assert.Equal(400, response.Status);
        Assert.Equal("SignatureDoesNotMatch", response.Code);
        Assert.Matches("^" + MismatchPrefix + "ACS3-HMAC-SHA256\n[0-9a-f]{64}$", response.Message);
    }

    [Fact]
    public async Task V1_parameter_changed_after_signing_is_rejected()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client(SigningMode.V1Get);
        var request = client.Build("DescribeKey", new Dictionary<string, string> { ["KeyId"] = "alias/a" }, new Tweaks());
        request.RequestUri = new Uri(request.RequestUri!.ToString().Replace("alias%2Fa", "alias%2Fb", StringComparison.Ordinal));
        Assert.Equal("SignatureDoesNotMatch", (await client.Send(request)).Code);
    }

    [Fact]
    public async Task V3_body_that_does_not_match_the_content_hash_is_rejected()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client(SigningMode.V3Form);
        var response = await client.Call("ListKeys", new Dictionary<string, string> { ["PageSize"] = "5" }, new Tweaks
        {
            AfterSigning = request => request.Content = new StringContent("PageSize=6", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"),
        });
        Assert.Equal(400, response.Status);
        Assert.Equal("IncompleteSignature", response.Code);
    }

    [Fact]
    public async Task V3_without_a_signed_nonce_header_is_incomplete()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var response = await client.Call("ListKeys", tweaks: new Tweaks
        {
            AfterSigning = request =>
            {
                var authorization = request.Headers.GetValues("Authorization").Single().Replace("x-acs-signature-nonce;", "", StringComparison.Ordinal);
                request.Headers.Remove("Authorization");
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            },
        });
        Assert.Equal("IncompleteSignature", response.Code);
    }

    [Fact]
    public async Task V3_query_changed_after_signing_is_rejected()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var response = await client.Call("ListKeys", new Dictionary<string, string> { ["PageSize"] = "5" }, new Tweaks
        {
            AfterSigning = request => request.RequestUri = new Uri(request.RequestUri!.ToString().Replace("PageSize=5", "PageSize=6", StringComparison.Ordinal)),
        });
        Assert.Equal("SignatureDoesNotMatch", response.Code);
    }

    [Theory]
    [InlineData(SigningMode.V1Get, -16)]
    [InlineData(SigningMode.V1PostForm, 16)]
    [InlineData(SigningMode.V3, -16)]
    [InlineData(SigningMode.V3, 16)]
    public async Task Timestamps_more_than_15_minutes_off_are_expired(SigningMode mode, int minutes)
    {
        await using var server = await TestServer.StartAsync();
        var stamp = server.Clock.GetUtcNow().AddMinutes(minutes).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var response = await server.Client(mode).Call("ListKeys", tweaks: new Tweaks { Timestamp = stamp });
        Assert.Equal(400, response.Status);
        Assert.Equal("InvalidTimeStamp.Expired", response.Code);
        Assert.Equal("Specified time stamp or date value is expired.", response.Message);
    }

    [Fact]
    public async Task Timestamps_within_15_minutes_are_accepted()
    {
        await using var server = await TestServer.StartAsync();
        var stamp = server.Clock.GetUtcNow().AddMinutes(-14).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        Assert.Equal(200, (await server.Client(SigningMode.V1Get).Call("ListKeys", tweaks: new Tweaks { Timestamp = stamp })).Status);
    }

    [Theory]
    [InlineData(SigningMode.V1Get)]
    [InlineData(SigningMode.V3)]
    public async Task Malformed_timestamp_is_rejected(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client(mode).Call("ListKeys", tweaks: new Tweaks { Timestamp = "28/11/2026 10:00" });
        Assert.Equal("InvalidTimeStamp.Format", response.Code);
    }

    [Theory]
    [InlineData(SigningMode.V1Get)]
    [InlineData(SigningMode.V1PostForm)]
    [InlineData(SigningMode.V3)]
    public async Task Reused_nonce_is_rejected(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client(mode);
        var nonce = Guid.NewGuid().ToString("N");
        Assert.Equal(200, (await client.Call("ListKeys", tweaks: new Tweaks { Nonce = nonce })).Status);
        var replay = await client.Call("ListKeys", tweaks: new Tweaks { Nonce = nonce });
        Assert.Equal(400, replay.Status);
        Assert.Equal("SignatureNonceUsed", replay.Code);
        Assert.Equal("Specified signature nonce was used already.", replay.Message);
    }

    [Fact]
    public async Task A_nonce_is_not_burnt_by_a_request_with_a_bad_signature()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var nonce = Guid.NewGuid().ToString("N");
        Assert.Equal("SignatureDoesNotMatch", (await client.Call("ListKeys", tweaks: new Tweaks { Nonce = nonce, SigningSecret = "x" })).Code);
        Assert.Equal(200, (await client.Call("ListKeys", tweaks: new Tweaks { Nonce = nonce })).Status);
    }

    [Theory]
    [InlineData(SigningMode.V1Get)]
    [InlineData(SigningMode.V3)]
    public async Task Unknown_access_key_is_not_found(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client(mode, accessKeyId: "nobody").Call("ListKeys");
        Assert.Equal(404, response.Status);
        Assert.Equal("InvalidAccessKeyId.NotFound", response.Code);
        Assert.Equal("Specified access key is not found.", response.Message);
    }

    [Fact]
    public async Task Configured_access_keys_replace_the_development_pair()
    {
        await using var server = await TestServer.StartAsync(o => o.AccessKeys["ci-key"] = "ci-secret");
        Assert.Equal(200, (await server.Client(accessKeyId: "ci-key", secret: "ci-secret").Call("ListKeys")).Status);
        Assert.Equal("InvalidAccessKeyId.NotFound", (await server.Client().Call("ListKeys")).Code);
    }

    [Fact]
    public async Task Missing_signature_parameters_are_reported()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client(SigningMode.V1Get);
        var response = await client.Send(new HttpRequestMessage(HttpMethod.Get, new Uri(server.Endpoint, "/?Action=ListKeys&Version=2016-01-20&AccessKeyId=testid")));
        Assert.Equal(400, response.Status);
        Assert.Equal("MissingParameter", response.Code);
        Assert.Equal("The parameter \"Signature\" is needed but not provided.", response.Message);
    }

    [Fact]
    public async Task Unknown_action_and_version_are_rejected_before_authentication()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var unknownAction = await client.Call("MakeCoffee");
        Assert.Equal(404, unknownAction.Status);
        Assert.Equal("InvalidAction.NotFound", unknownAction.Code);
        Assert.Equal("InvalidVersion", (await client.Call("ListKeys", version: "2099-01-01")).Code);
    }

    [Fact]
    public async Task Unsupported_http_method_is_rejected()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client().Send(new HttpRequestMessage(HttpMethod.Put, server.Endpoint));
        Assert.Equal(403, response.Status);
        Assert.Equal("UnsupportedHTTPMethod", response.Code);
    }

    [Fact]
    public async Task Error_bodies_have_the_gateway_shape_and_request_id_header()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client().Call("DescribeKey", new Dictionary<string, string> { ["KeyId"] = Guid.NewGuid().ToString() });
        Assert.Equal(404, response.Status);
        var requestId = response.Get("RequestId");
        Assert.Matches("^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$", requestId);
        Assert.Equal(requestId, response.RequestIdHeader);
        Assert.Equal(server.Endpoint.Authority, response.Get("HostId"));
        Assert.Equal("Forbidden.KeyNotFound", response.Code);
        Assert.Equal("The specified Key is not found.", response.Message);
        Assert.Equal($"https://api.aliyun.com/troubleshoot?q=Forbidden.KeyNotFound&product=Kms&requestId={requestId}", response.Get("Recommend"));
    }
}
