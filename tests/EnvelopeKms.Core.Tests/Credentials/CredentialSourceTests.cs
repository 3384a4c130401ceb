using System.Globalization;
using EnvelopeKms.Credentials;
using EnvelopeKms.Tests.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Credentials;

public class CredentialSourceTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string CredentialJson(string id, DateTimeOffset expiration, string secret = "tmp-secret", string token = "tmp-token")
        => $"{{\"Code\":\"Success\",\"AccessKeyId\":\"{id}\",\"AccessKeySecret\":\"{secret}\",\"SecurityToken\":\"{token}\",\"Expiration\":\"{Iso(expiration)}\",\"LastUpdated\":\"{Iso(T0)}\"}}";

    // ---- environment ------------------------------------------------------------------------------------------

    [Fact]
    public async Task Environment_ReadsTheStandardNames()
    {
        var env = new Dictionary<string, string>
        {
            ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "env-id",
            ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "env-secret",
            ["ALIBABA_CLOUD_SECURITY_TOKEN"] = "env-token",
            ["ALICLOUD_ACCESS_KEY"] = "legacy-id",
            ["ALICLOUD_SECRET_KEY"] = "legacy-secret",
        };
        var provider = new EnvironmentCredentialsProvider(n => env.GetValueOrDefault(n));
        var c = await provider.GetCredentialsAsync(default);
        Assert.Equal(("env-id", "env-secret", "env-token"), (c.AccessKeyId, c.AccessKeySecret, c.SecurityToken));
        Assert.Equal("environment (ALIBABA_CLOUD_ACCESS_KEY_ID)", provider.SourceName);
    }

    [Theory]
    [InlineData("ALIBABACLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_SECRET")]
    [InlineData("ALICLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_SECRET")]
    [InlineData("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY")]
    public async Task Environment_FallsBackToLegacyNames(string idName, string secretName)
    {
        var env = new Dictionary<string, string> { [idName] = "id", [secretName] = "secret" };
        var c = await new EnvironmentCredentialsProvider(n => env.GetValueOrDefault(n)).GetCredentialsAsync(default);
        Assert.Equal(("id", "secret"), (c.AccessKeyId, c.AccessKeySecret));
    }

    [Fact]
    public async Task Environment_NotSetIsNotFound_AndAHalfSetKeyIsAnError()
    {
        await Assert.ThrowsAsync<CredentialsNotFoundException>(async () => await new EnvironmentCredentialsProvider(_ => null).GetCredentialsAsync(default));
        var e = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new EnvironmentCredentialsProvider(n => n == "ALIBABA_CLOUD_ACCESS_KEY_ID" ? "id" : null).GetCredentialsAsync(default));
        Assert.IsNotType<CredentialsNotFoundException>(e);
        Assert.Contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET", e.Message);
    }

    // ---- ECS metadata -----------------------------------------------------------------------------------------

    private static LocalHttpServer FakeMetadata(ManualTimeProvider clock, bool supportTokens = true, List<string>? log = null)
    {
        int issued = 0;
        return new LocalHttpServer(r =>
        {
            log?.Add($"{r.Method} {r.Path} token={r.Header("x-aliyun-ecs-metadata-token") ?? "-"}");
            if (r.Method == "PUT" && r.Path == "/latest/api/token")
            {
                if (!supportTokens) return new StubResponse(404, "not found", "text/plain");
                Assert.Equal("21600", r.Header("x-aliyun-ecs-metadata-token-ttl-seconds"));
                return new StubResponse(200, "tok-1", "text/plain");
            }
            if (supportTokens && r.Header("x-aliyun-ecs-metadata-token") != "tok-1") return new StubResponse(401, "token required", "text/plain");
            if (r.Path == "/latest/meta-data/ram/security-credentials/") return new StubResponse(200, "MyRole\n", "text/plain");
            if (r.Path == "/latest/meta-data/ram/security-credentials/MyRole")
                return StubResponse.Json(CredentialJson($"ecs-id-{Interlocked.Increment(ref issued)}", clock.GetUtcNow().AddHours(1)));
            return new StubResponse(404, "no", "text/plain");
        });
    }

    [Fact]
    public async Task EcsRole_UsesASessionTokenAndDiscoversTheRole()
    {
        var clock = new ManualTimeProvider(T0);
        var log = new List<string>();
        await using var metadata = FakeMetadata(clock, log: log);
        using var home = new TempHome();
        var provider = new EcsRamRoleCredentialsProvider(null, home.Options(time: clock, metadata: new Uri(metadata.BaseUrl)));

        var c = await provider.GetCredentialsAsync(default);

        Assert.Equal(("ecs-id-1", "tmp-secret", "tmp-token"), (c.AccessKeyId, c.AccessKeySecret, c.SecurityToken));
        Assert.Equal(T0.AddHours(1), c.Expiration);
        Assert.Equal(new[]
        {
            "PUT /latest/api/token token=-",
            "GET /latest/meta-data/ram/security-credentials/ token=tok-1",
            "GET /latest/meta-data/ram/security-credentials/MyRole token=tok-1",
        }, log);
        Assert.Equal("ECS RAM role (MyRole)", provider.SourceName);
    }

    [Fact]
    public async Task EcsRole_FallsBackToTokenlessRequests_UnlessImdsV1IsDisabled()
    {
        var clock = new ManualTimeProvider(T0);
        await using var metadata = FakeMetadata(clock, supportTokens: false);
        using var home = new TempHome();
        var c = await new EcsRamRoleCredentialsProvider("MyRole", home.Options(time: clock, metadata: new Uri(metadata.BaseUrl))).GetCredentialsAsync(default);
        Assert.Equal("ecs-id-1", c.AccessKeyId);

        var disabled = home.Options(new Dictionary<string, string> { ["ALIBABA_CLOUD_IMDSV1_DISABLED"] = "true" }, clock, new Uri(metadata.BaseUrl));
        var e = await Assert.ThrowsAsync<CredentialsException>(async () => await new EcsRamRoleCredentialsProvider("MyRole", disabled).GetCredentialsAsync(default));
        Assert.Contains("IMDSv1 is disabled", e.Message);
    }

    [Fact]
    public async Task EcsRole_RefreshesBeforeExpiry()
    {
        var clock = new ManualTimeProvider(T0);
        await using var metadata = FakeMetadata(clock);
        using var home = new TempHome();
        var provider = new EcsRamRoleCredentialsProvider("MyRole", home.Options(time: clock, metadata: new Uri(metadata.BaseUrl)));

        Assert.Equal("ecs-id-1", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        clock.Advance(TimeSpan.FromMinutes(40)); // 20 minutes left, more than the 15-minute margin
        Assert.Equal("ecs-id-1", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        clock.Advance(TimeSpan.FromMinutes(6)); // 14 minutes left: inside the margin
        Assert.Equal("ecs-id-2", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Equal(2, provider.FetchCount);

        provider.Invalidate();
        Assert.Equal("ecs-id-3", (await provider.GetCredentialsAsync(default)).AccessKeyId);
    }

    [Fact]
    public async Task EcsRole_UnreachableMetadataMeansNotOnEcs()
    {
        using var home = new TempHome();
        await Assert.ThrowsAsync<CredentialsNotFoundException>(async () =>
            await new EcsRamRoleCredentialsProvider(null, home.Options()).GetCredentialsAsync(default));
    }

    // ---- credentials URI --------------------------------------------------------------------------------------

    [Fact]
    public async Task CredentialsUri_FetchesAndRefreshes_AndKeepsValidCredentialsWhenARefreshFails()
    {
        var clock = new ManualTimeProvider(T0);
        int calls = 0;
        await using var server = new LocalHttpServer(r =>
        {
            int n = Interlocked.Increment(ref calls);
            return n == 3 ? StubResponse.Error(500, "Oops") : StubResponse.Json(CredentialJson($"uri-id-{n}", clock.GetUtcNow().AddMinutes(20)));
        });
        using var home = new TempHome();
        var provider = new CredentialsUriProvider(new Uri(server.BaseUrl + "/creds?x=1"), home.Options(time: clock));

        Assert.Equal("uri-id-1", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        clock.Advance(TimeSpan.FromMinutes(11)); // 20-minute lifetime: margin capped at half (10 min)
        Assert.Equal("uri-id-2", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        clock.Advance(TimeSpan.FromMinutes(11)); // refresh fails, but uri-id-2 is valid for 9 more minutes
        Assert.Equal("uri-id-2", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        clock.Advance(TimeSpan.FromMinutes(10)); // expired now: the next refresh succeeds
        Assert.Equal("uri-id-4", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Equal("credentials URI (" + server.BaseUrl + "/creds)", provider.SourceName);
    }

    [Fact]
    public async Task CredentialsUri_ErrorsNameTheStatusButNotTheBody()
    {
        await using var server = new LocalHttpServer(_ => new StubResponse(403, "{\"Code\":\"Denied\",\"Message\":\"no\",\"AccessKeySecret\":\"leak\"}"));
        using var home = new TempHome();
        var e = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new CredentialsUriProvider(new Uri(server.BaseUrl), home.Options()).GetCredentialsAsync(default));
        Assert.Contains("HTTP 403, Denied", e.Message);
        Assert.DoesNotContain("leak", e.Message);
    }

    // ---- STS AssumeRole ---------------------------------------------------------------------------------------

    internal static LocalHttpServer FakeSts(ManualTimeProvider clock, string expectedSecret = "base-secret")
    {
        int issued = 0;
        return new LocalHttpServer(r =>
        {
            if (!StubSignatures.VerifyV1(r, expectedSecret))
                return StubResponse.Error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId...");
            var q = r.Query;
            var f = r.Form;
            if (r.Method != "POST" || q["Action"] != "AssumeRole" || q["Version"] != "2015-04-01" || q["Format"] != "JSON"
                || !f.ContainsKey("RoleArn") || f.ContainsKey("AccessKeyId") || q.ContainsKey("RoleArn"))
                return StubResponse.Error(400, "InvalidParameter");
            int n = Interlocked.Increment(ref issued);
            return StubResponse.Json($"{{\"RequestId\":\"r\",\"AssumedRoleUser\":{{\"Arn\":\"{f["RoleArn"]}/{f["RoleSessionName"]}\"}},\"Credentials\":" +
                CredentialJson($"STS.role-{n}", clock.GetUtcNow().AddSeconds(int.Parse(f["DurationSeconds"])), "role-secret", $"role-token-{n}") + "}");
        });
    }

    [Fact]
    public async Task Sts_AssumesTheRoleWithAV1SignedRequest_AndCaches()
    {
        var clock = new ManualTimeProvider(T0);
        await using var sts = FakeSts(clock);
        using var home = new TempHome();
        var source = new StaticCredentialsProvider("base-id", "base-secret");
        var provider = new StsAssumeRoleCredentialsProvider(source, "acs:ram::123:role/kms-user", "session-1", 3600,
            stsEndpoint: new Uri(sts.BaseUrl), options: home.Options(time: clock));

        var c = await provider.GetCredentialsAsync(default);
        var again = await provider.GetCredentialsAsync(default);

        Assert.Equal(("STS.role-1", "role-secret", "role-token-1"), (c.AccessKeyId, c.AccessKeySecret, c.SecurityToken));
        Assert.Same(c, again);
        var request = Assert.Single(sts.Requests);
        Assert.Equal("acs:ram::123:role/kms-user", request.Form["RoleArn"]);
        Assert.Equal("session-1", request.Form["RoleSessionName"]);
        Assert.Equal("3600", request.Form["DurationSeconds"]);
        Assert.Equal("base-id", request.Query["AccessKeyId"]);
        clock.Advance(TimeSpan.FromMinutes(50));
        Assert.Equal("STS.role-2", (await provider.GetCredentialsAsync(default)).AccessKeyId);
    }

    [Fact]
    public async Task Sts_RefusalIsReported_WithoutTheSecretOrTheEchoedStringToSign()
    {
        await using var sts = FakeSts(new ManualTimeProvider(T0), expectedSecret: "other");
        using var home = new TempHome();
        var provider = new StsAssumeRoleCredentialsProvider(new StaticCredentialsProvider("base-id", "base-secret"), "acs:ram::123:role/r",
            stsEndpoint: new Uri(sts.BaseUrl), options: home.Options());
        var e = await Assert.ThrowsAsync<CredentialsException>(async () => await provider.GetCredentialsAsync(default));
        Assert.Contains("SignatureDoesNotMatch", e.Message);
        Assert.DoesNotContain("base-secret", e.ToString());
        Assert.DoesNotContain("AccessKeyId...", e.Message);
    }

    [Fact]
    public void Sts_RefusesPlainHttpToANonLoopbackHost()
        => Assert.Throws<CredentialsException>(() => new StsAssumeRoleCredentialsProvider(new StaticCredentialsProvider("a", "b"),
            "acs:ram::1:role/r", stsEndpoint: new Uri("http://sts.example.com/")));

    // ---- redaction --------------------------------------------------------------------------------------------

    [Fact]
    public void Credentials_ToStringNeverShowsTheSecretOrToken()
    {
        var c = new AlibabaCloudCredentials("LTAIexample", "super-secret-value", "token-value", T0);
        var text = c.ToString() + new StaticCredentialsProvider(c).ToString();
        Assert.Contains("LTAIexample", text);
        Assert.DoesNotContain("super-secret-value", text);
        Assert.DoesNotContain("token-value", text);
    }
}
