using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>AssumeRole on the same server, and KMS calls with the temporary credentials it issues.</summary>
public class StsTests
{
    private const string StsVersion = "2015-04-01";
    private const string RoleArn = "acs:ram::1234567890123456:role/envelope-test";

    private static async Task<(string Id, string Secret, string Token, string Expiration)> AssumeRole(TestServer server, Dictionary<string, string>? extra = null)
    {
        var parameters = new Dictionary<string, string> { ["RoleArn"] = RoleArn, ["RoleSessionName"] = "unit-test" };
        foreach (var (name, value) in extra ?? [])
        {
            parameters[name] = value;
        }
        // The credentials SDK sends AssumeRole as V1 with common params in the query and the rest in a form body.
        var response = await server.Client(SigningMode.V1Mixed).Call("AssumeRole", parameters, version: StsVersion);
        Assert.True(response.Status == 200, response.ToString());
        var credentials = response.Body.GetProperty("Credentials");
        return (credentials.GetProperty("AccessKeyId").GetString()!, credentials.GetProperty("AccessKeySecret").GetString()!,
            credentials.GetProperty("SecurityToken").GetString()!, credentials.GetProperty("Expiration").GetString()!);
    }

    [Fact]
    public async Task AssumeRole_returns_the_sts_response_shape()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client(SigningMode.V1Mixed).Call("AssumeRole", new Dictionary<string, string>
        {
            ["RoleArn"] = RoleArn,
            ["RoleSessionName"] = "shape-test",
            ["DurationSeconds"] = "900",
        }, version: StsVersion);
        Assert.Equal(200, response.Status);
        Assert.False(string.IsNullOrEmpty(response.Get("RequestId")));
        var credentials = response.Body.GetProperty("Credentials");
        Assert.StartsWith("STS.", credentials.GetProperty("AccessKeyId").GetString());
        Assert.False(string.IsNullOrEmpty(credentials.GetProperty("AccessKeySecret").GetString()));
        Assert.False(string.IsNullOrEmpty(credentials.GetProperty("SecurityToken").GetString()));
        var expiration = DateTimeOffset.Parse(credentials.GetProperty("Expiration").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(server.Clock.GetUtcNow().AddSeconds(900).ToUnixTimeSeconds(), expiration.ToUnixTimeSeconds(), 1.0);
        Assert.Matches("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$", credentials.GetProperty("Expiration").GetString());
        var user = response.Body.GetProperty("AssumedRoleUser");
        Assert.Equal("acs:ram::1234567890123456:assumed-role/envelope-test/shape-test", user.GetProperty("Arn").GetString());
        Assert.EndsWith(":shape-test", user.GetProperty("AssumedRoleId").GetString());
    }

    [Theory]
    [InlineData(SigningMode.V1Get)]
    [InlineData(SigningMode.V1PostForm)]
    [InlineData(SigningMode.V3)]
    public async Task Temporary_credentials_work_for_kms_calls(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync();
        var (id, secret, token, _) = await AssumeRole(server);
        var client = server.Client(mode, id, secret, token);
        var keyId = (await client.Ok("CreateKey")).Body.GetProperty("KeyMetadata").GetProperty("KeyId").GetString()!;
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        Assert.Equal(dataKey.Get("Plaintext"), (await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = dataKey.Get("CiphertextBlob") })).Get("Plaintext"));
    }

    [Theory]
    [InlineData(SigningMode.V1Get)]
    [InlineData(SigningMode.V3)]
    public async Task Expired_security_token_is_rejected(SigningMode mode)
    {
        await using var server = await TestServer.StartAsync(o => o.StsDuration = TimeSpan.FromMinutes(5));
        var (id, secret, token, _) = await AssumeRole(server);
        var client = server.Client(mode, id, secret, token);
        Assert.Equal(200, (await client.Call("ListKeys")).Status);
        server.Clock.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        var response = await client.Call("ListKeys");
        Assert.Equal(400, response.Status);
        Assert.Equal("InvalidSecurityToken.Expired", response.Code);
    }

    [Fact]
    public async Task Temporary_credentials_need_their_own_token()
    {
        await using var server = await TestServer.StartAsync();
        var (id, secret, token, _) = await AssumeRole(server);
        Assert.Equal("InvalidSecurityToken.Malformed", (await server.Client(SigningMode.V3, id, secret).Call("ListKeys")).Code);
        var (_, _, otherToken, _) = await AssumeRole(server);
        Assert.Equal("InvalidSecurityToken.MismatchWithAccessKey", (await server.Client(SigningMode.V3, id, secret, otherToken).Call("ListKeys")).Code);
        Assert.Equal("SignatureDoesNotMatch", (await server.Client(SigningMode.V1Get, id, "wrong", token).Call("ListKeys")).Code);
    }

    [Fact]
    public async Task Temporary_credentials_survive_a_restart()
    {
        await using var server = await TestServer.StartAsync();
        var (id, secret, token, _) = await AssumeRole(server);
        await server.RestartAsync();
        Assert.Equal(200, (await server.Client(SigningMode.V3, id, secret, token).Call("ListKeys")).Status);
    }

    [Theory]
    [InlineData("RoleArn", "arn:aws:iam::1:role/x")]
    [InlineData("RoleSessionName", "x")]
    [InlineData("DurationSeconds", "899")]
    [InlineData("DurationSeconds", "43201")]
    public async Task AssumeRole_validates_its_parameters(string name, string value)
    {
        await using var server = await TestServer.StartAsync();
        var parameters = new Dictionary<string, string> { ["RoleArn"] = RoleArn, ["RoleSessionName"] = "valid-name", [name] = value };
        var response = await server.Client(SigningMode.V1Mixed).Call("AssumeRole", parameters, version: StsVersion);
        Assert.Equal(400, response.Status);
        Assert.Equal("InvalidParameter", response.Code);
        Assert.Contains("product=Sts", response.Get("Recommend"));
    }

    [Fact]
    public async Task AssumeRole_requires_a_role_arn()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client(SigningMode.V1Mixed).Call("AssumeRole", new Dictionary<string, string> { ["RoleSessionName"] = "abc" }, version: StsVersion);
        Assert.Equal("MissingParameter", response.Code);
    }
}
