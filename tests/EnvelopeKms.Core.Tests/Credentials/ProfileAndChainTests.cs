using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.Tests.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Credentials;

public class ProfileAndChainTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private const string CliConfig = """
        {"current":"work","profiles":[
          {"name":"default","mode":"AK","access_key_id":"cli-default-id","access_key_secret":"cli-default-secret","region_id":"cn-hangzhou"},
          {"name":"work","mode":"StsToken","access_key_id":"cli-work-id","access_key_secret":"cli-work-secret","sts_token":"cli-token","region_id":"eu-central-1"},
          {"name":"role","mode":"RamRoleArn","access_key_id":"base-id","access_key_secret":"base-secret","ram_role_arn":"acs:ram::1:role/kms","ram_session_name":"cli-session","expired_seconds":900},
          {"name":"ecs","mode":"EcsRamRole","ram_role_name":"MyRole"},
          {"name":"sso","mode":"CloudSSO"},
          {"name":"broken","mode":"AK","access_key_id":"only-id"}
        ]}
        """;

    private const string Ini = """
        # comment
        [default]
        type = access_key            # access_key | ecs_ram_role | ram_role_arn
        access_key_id = ini-id
        access_key_secret = ini-secret
        region_id = ap-southeast-1

        [roles]
        type = ram_role_arn
        access_key_id = base-id
        access_key_secret = base-secret
        role_arn = acs:ram::1:role/ini
        role_session_name = ini-session
        """;

    [Fact]
    public async Task CliProfile_UsesTheCurrentProfile_InStsTokenMode()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var provider = new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options());
        var c = await provider.GetCredentialsAsync(default);
        Assert.Equal(("cli-work-id", "cli-work-secret", "cli-token"), (c.AccessKeyId, c.AccessKeySecret, c.SecurityToken));
        Assert.Contains("profile 'work'", provider.SourceName);
    }

    [Fact]
    public async Task CliProfile_SelectedByEnvironmentOrByName()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var byEnv = new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(new() { ["ALIBABA_CLOUD_PROFILE"] = "default" }));
        Assert.Equal("cli-default-id", (await byEnv.GetCredentialsAsync(default)).AccessKeyId);
        var byName = new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(), "default");
        Assert.Equal("cli-default-id", (await byName.GetCredentialsAsync(default)).AccessKeyId);
        await Assert.ThrowsAsync<CredentialsNotFoundException>(async () =>
            await new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(), "nope").GetCredentialsAsync(default));
    }

    [Fact]
    public async Task CliProfile_RamRoleArn_AssumesTheRoleThroughSts()
    {
        var clock = new ManualTimeProvider(T0);
        await using var sts = CredentialSourceTests.FakeSts(clock);
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var provider = new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(time: clock, sts: new Uri(sts.BaseUrl)), "role");

        var c = await provider.GetCredentialsAsync(default);

        Assert.Equal("STS.role-1", c.AccessKeyId);
        var request = Assert.Single(sts.Requests);
        Assert.Equal("acs:ram::1:role/kms", request.Form["RoleArn"]);
        Assert.Equal("cli-session", request.Form["RoleSessionName"]);
        Assert.Equal("900", request.Form["DurationSeconds"]);
        Assert.Contains("STS AssumeRole (acs:ram::1:role/kms)", provider.SourceName);
    }

    [Fact]
    public async Task CliProfile_EcsRamRole_UsesTheMetadataService()
    {
        await using var metadata = new LocalHttpServer(r => r.Method == "PUT"
            ? new StubResponse(200, "tok", "text/plain")
            : r.Path.EndsWith("/MyRole") && r.Header("x-aliyun-ecs-metadata-token") == "tok"
                ? StubResponse.Json("{\"Code\":\"Success\",\"AccessKeyId\":\"ecs-id\",\"AccessKeySecret\":\"s\",\"SecurityToken\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\"}")
                : new StubResponse(404, "", "text/plain"));
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var provider = new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(metadata: new Uri(metadata.BaseUrl)), "ecs");
        Assert.Equal("ecs-id", (await provider.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Contains("ECS RAM role (MyRole), from profile 'ecs'", provider.SourceName);
    }

    [Theory]
    [InlineData("sso", "CloudSSO")]
    [InlineData("broken", "access_key_secret")]
    public async Task CliProfile_UnsupportedOrIncompleteProfilesAreErrors(string profile, string expected)
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var e = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, home.Options(), profile).GetCredentialsAsync(default));
        Assert.IsNotType<CredentialsNotFoundException>(e);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task IniFile_ReadsSections_AndStripsInlineComments()
    {
        using var home = new TempHome();
        home.WriteIni(Ini);
        var c = await new ProfileCredentialsProvider(ProfileFileKind.CredentialsIni, home.Options()).GetCredentialsAsync(default);
        Assert.Equal(("ini-id", "ini-secret"), (c.AccessKeyId, c.AccessKeySecret));

        var clock = new ManualTimeProvider(T0);
        await using var sts = CredentialSourceTests.FakeSts(clock);
        var role = await new ProfileCredentialsProvider(ProfileFileKind.CredentialsIni, home.Options(time: clock, sts: new Uri(sts.BaseUrl)), "roles")
            .GetCredentialsAsync(default);
        Assert.Equal("STS.role-1", role.AccessKeyId);
        Assert.Equal("acs:ram::1:role/ini", sts.Requests.Single().Form["RoleArn"]);
    }

    [Fact]
    public async Task IniFile_PathComesFromTheEnvironmentVariable()
    {
        using var home = new TempHome();
        var path = Path.Combine(home.Path, "elsewhere.ini");
        File.WriteAllText(path, "[default]\naccess_key_id = moved-id\naccess_key_secret = moved-secret\n");
        var options = home.Options(new() { ["ALIBABA_CLOUD_CREDENTIALS_FILE"] = path });
        Assert.Equal("moved-id", (await new ProfileCredentialsProvider(ProfileFileKind.CredentialsIni, options).GetCredentialsAsync(default)).AccessKeyId);
    }

    // ---- chain ------------------------------------------------------------------------------------------------

    private static readonly Dictionary<string, string> EnvKeys = new()
    {
        ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "env-id",
        ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "env-secret",
    };

    [Fact]
    public async Task Chain_ExplicitBeatsEverything()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var chain = CredentialsChain.CreateDefault(home.Options(EnvKeys), new AlibabaCloudCredentials("explicit-id", "explicit-secret"));
        Assert.Equal("explicit-id", (await chain.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Equal("explicit", chain.SourceName);
    }

    [Fact]
    public async Task Chain_EnvironmentBeatsProfiles()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var chain = CredentialsChain.CreateDefault(home.Options(EnvKeys));
        Assert.Equal("env-id", (await chain.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Equal("environment (ALIBABA_CLOUD_ACCESS_KEY_ID)", chain.SourceName);
        Assert.DoesNotContain("env-secret", chain.SourceName);
    }

    [Fact]
    public async Task Chain_CliConfigBeatsTheIniFile_WhichIsUsedWhenTheCliIsDisabled()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        home.WriteIni(Ini);
        var chain = CredentialsChain.CreateDefault(home.Options());
        Assert.Equal("cli-work-id", (await chain.GetCredentialsAsync(default)).AccessKeyId);

        var noCli = CredentialsChain.CreateDefault(home.Options(new() { ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true" }));
        Assert.Equal("ini-id", (await noCli.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Contains("credentials", noCli.SourceName);
    }

    [Fact]
    public async Task Chain_CredentialsUriComesBeforeEcsMetadata()
    {
        await using var uri = new LocalHttpServer(_ => StubResponse.Json("{\"AccessKeyId\":\"uri-id\",\"AccessKeySecret\":\"s\",\"SecurityToken\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\"}"));
        int metadataCalls = 0;
        await using var metadata = new LocalHttpServer(_ => { Interlocked.Increment(ref metadataCalls); return new StubResponse(500, ""); });
        using var home = new TempHome();
        var chain = CredentialsChain.CreateDefault(home.Options(new() { ["ALIBABA_CLOUD_CREDENTIALS_URI"] = uri.BaseUrl }, metadata: new Uri(metadata.BaseUrl)));
        Assert.Equal("uri-id", (await chain.GetCredentialsAsync(default)).AccessKeyId);
        Assert.StartsWith("credentials URI", chain.SourceName);
        Assert.Equal(0, metadataCalls);
    }

    [Fact]
    public async Task Chain_FallsBackToEcsMetadata()
    {
        await using var metadata = new LocalHttpServer(r => r.Method == "PUT" ? new StubResponse(200, "tok", "text/plain")
            : r.Path.EndsWith("/") ? new StubResponse(200, "R", "text/plain")
            : StubResponse.Json("{\"Code\":\"Success\",\"AccessKeyId\":\"ecs-id\",\"AccessKeySecret\":\"s\",\"SecurityToken\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\"}"));
        using var home = new TempHome();
        var chain = CredentialsChain.CreateDefault(home.Options(metadata: new Uri(metadata.BaseUrl)));
        Assert.Equal("ecs-id", (await chain.GetCredentialsAsync(default)).AccessKeyId);
        Assert.Equal("ECS RAM role (R)", chain.SourceName);
    }

    [Fact]
    public async Task Chain_WithNothingConfigured_SaysWhatItTried()
    {
        using var home = new TempHome();
        var chain = CredentialsChain.CreateDefault(home.Options());
        var e = await Assert.ThrowsAsync<CredentialsNotFoundException>(async () => await chain.GetCredentialsAsync(default));
        Assert.Contains("ALIBABA_CLOUD_ACCESS_KEY_ID", e.Message);
        Assert.Contains("config.json does not exist", e.Message);
        Assert.Contains("not reachable", e.Message);
    }

    [Fact]
    public async Task Chain_AnExplicitProfileNameNeverFallsBackToOtherSources()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        var chain = CredentialsChain.CreateDefault(home.Options(EnvKeys, profile: "missing"));
        await Assert.ThrowsAsync<CredentialsNotFoundException>(async () => await chain.GetCredentialsAsync(default));

        var named = CredentialsChain.CreateDefault(home.Options(EnvKeys, profile: "default"));
        Assert.Equal("cli-default-id", (await named.GetCredentialsAsync(default)).AccessKeyId);
    }

    [Fact]
    public async Task Chain_ABrokenConfiguredSourceFailsInsteadOfFallingThrough()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig.Replace("\"current\":\"work\"", "\"current\":\"broken\""));
        home.WriteIni(Ini);
        var chain = CredentialsChain.CreateDefault(home.Options());
        var e = await Assert.ThrowsAsync<CredentialsException>(async () => await chain.GetCredentialsAsync(default));
        Assert.IsNotType<CredentialsNotFoundException>(e);
    }

    [Fact]
    public void Region_ComesFromTheParameter_ThenTheProfile_ThenTheEnvironment()
    {
        using var home = new TempHome();
        var env = new Dictionary<string, string> { ["ALIBABA_CLOUD_REGION_ID"] = "us-west-1" };
        Assert.Equal("us-west-1", AlibabaCloudRegion.Resolve(null, home.Options(env)));
        home.WriteIni(Ini);
        Assert.Equal("ap-southeast-1", AlibabaCloudRegion.Resolve(null, home.Options(env)));
        home.WriteCliConfig(CliConfig);
        Assert.Equal("eu-central-1", AlibabaCloudRegion.Resolve(null, home.Options(env)));
        Assert.Equal("cn-hangzhou", AlibabaCloudRegion.Resolve(null, home.Options(env, profile: "default")));
        Assert.Equal("cn-beijing", AlibabaCloudRegion.Resolve("cn-beijing", home.Options(env)));
        using var empty = new TempHome();
        Assert.Null(AlibabaCloudRegion.Resolve(null, empty.Options()));
    }

    // ---- factory ----------------------------------------------------------------------------------------------

    [Fact]
    public async Task Factory_BuildsARegionalClientFromTheProfile_AndAnExplicitEndpointClient()
    {
        using var home = new TempHome();
        home.WriteCliConfig(CliConfig);
        using (var regional = KmsClientFactory.Create(new KmsConnectionSettings { CredentialOptions = home.Options(), UseVpcEndpoint = true }))
        {
            Assert.Equal("https://kms-vpc.eu-central-1.aliyuncs.com/", regional.Endpoint.BaseUri.ToString());
            Assert.Equal("eu-central-1", regional.Endpoint.RegionId);
        }

        await using var server = new LocalHttpServer(r => StubSignatures.VerifyV3(r, "explicit-secret")
            ? StubResponse.Json("{\"RequestId\":\"r\"}") : StubResponse.Error(400, "SignatureDoesNotMatch"));
        using var local = KmsClientFactory.Create(new KmsConnectionSettings
        {
            Endpoint = server.BaseUrl, AccessKeyId = "explicit-id", AccessKeySecret = "explicit-secret", CredentialOptions = home.Options(),
        });
        await local.EnableKeyAsync("k");
        Assert.Equal("explicit", local.CredentialsSource);

        using var empty = new TempHome();
        var e = Assert.Throws<KmsConfigurationException>(() => KmsClientFactory.Create(new KmsConnectionSettings
        {
            AccessKeyId = "a", AccessKeySecret = "b", CredentialOptions = empty.Options(),
        }));
        Assert.Contains("No region", e.Message);
    }
}
