using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

/// <summary>Which endpoint serves which region, and what a regional client shares with the connection's own.</summary>
public class KmsRegionalClientsTests
{
    private static KmsClient Home(string url = "https://kms.cn-hangzhou.aliyuncs.com", string? region = null, KmsSignatureVersion version = KmsSignatureVersion.V3)
        => new(new KmsClientOptions
        {
            Endpoint = KmsEndpoint.FromUrl(url, region),
            Credentials = new StaticCredentialsProvider("testid", "testsecret"),
            SignatureVersion = version,
            Retry = new KmsRetryOptions { MaxAttempts = 7 },
            AttemptTimeout = TimeSpan.FromSeconds(3),
        });

    [Fact]
    public void OtherRegions_UseTheStandardPublicEndpoint_AndTheHomeRegionTheHomeClient()
    {
        using var home = Home();
        using var clients = new KmsRegionalClients(home);
        Assert.Equal("cn-hangzhou", clients.HomeRegion);
        Assert.Same(home, clients.ForRegion("cn-hangzhou"));
        Assert.Same(home, clients.ForRegion("CN-HANGZHOU"));
        Assert.Same(home, clients.ForRegion(""));
        Assert.Same(home, clients.ForRegion(null));
        var shanghai = clients.ForRegion("cn-shanghai");
        Assert.Equal(new Uri("https://kms.cn-shanghai.aliyuncs.com/"), shanghai.Endpoint.BaseUri);
        Assert.Equal("cn-shanghai", shanghai.Endpoint.RegionId);
        Assert.Same(shanghai, clients.ForRegion("cn-shanghai")); // one client per region
        Assert.Equal(new[] { shanghai }, clients.RegionalClients);
    }

    [Fact]
    public void RegionalClients_ShareCredentialsSignatureRetriesAndTimeouts()
    {
        using var home = Home(version: KmsSignatureVersion.V1);
        using var clients = new KmsRegionalClients(home);
        var other = clients.ForRegion("eu-central-1");
        Assert.Same(home.Options.Credentials, other.Options.Credentials);
        Assert.Equal(KmsSignatureVersion.V1, other.Options.SignatureVersion);
        Assert.Same(home.Options.Retry, other.Options.Retry);
        Assert.Equal(TimeSpan.FromSeconds(3), other.Options.AttemptTimeout);
    }

    [Fact]
    public void VpcEndpoints_AreUsedForOtherRegions_WhenAsked()
    {
        using var home = Home();
        using var clients = new KmsRegionalClients(home, new KmsRegionalClientsOptions { UseVpcEndpoint = true });
        Assert.Equal(new Uri("https://kms-vpc.cn-beijing.aliyuncs.com/"), clients.EndpointFor("cn-beijing").BaseUri);
    }

    [Fact]
    public void MappedRegions_UseTheirEndpoint()
    {
        using var home = Home();
        var vpc = KmsEndpoint.FromUrl("https://kms-vpc.cn-shanghai.aliyuncs.com", "cn-shanghai");
        using var clients = new KmsRegionalClients(home, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["cn-shanghai"] = vpc },
        });
        Assert.Same(vpc, clients.ForRegion("cn-shanghai").Endpoint);
        Assert.Equal(new Uri("https://kms.cn-beijing.aliyuncs.com/"), clients.EndpointFor("cn-beijing").BaseUri);
    }

    [Fact]
    public void AHomeEndpointOfUnknownRegion_ServesEveryRegionNotMapped()
    {
        using var home = Home("http://127.0.0.1:1");
        Assert.Null(home.Endpoint.RegionId);
        var mapped = KmsEndpoint.FromUrl("http://127.0.0.1:2", "cn-shanghai");
        using var clients = new KmsRegionalClients(home, new KmsRegionalClientsOptions
        {
            RegionEndpoints = new Dictionary<string, KmsEndpoint> { ["cn-shanghai"] = mapped },
        });
        Assert.Same(home, clients.ForRegion("cn-beijing"));
        Assert.Same(mapped, clients.ForRegion("cn-shanghai").Endpoint);
    }

    [Fact]
    public void ASingleEndpointSet_NeverRoutes()
    {
        using var home = Home();
        using var clients = KmsRegionalClients.Single(home);
        Assert.Same(home, clients.ForRegion("cn-shanghai"));
        Assert.Same(home, clients.ForRegion("Not A Region"));
    }

    [Theory]
    [InlineData("Not A Region")]
    [InlineData("evil.example.com/x")]
    [InlineData("CN_SHANGHAI")]
    [InlineData("cn-hangzhou\n")] // '$' matched before a final newline; then new Uri threw UriFormatException (issue 18)
    [InlineData("cn-hangzhou\r\n")]
    public void ARegionOfNoStandardForm_HasNoEndpoint(string region)
    {
        // A file's entry cannot steer requests to a host of its choosing: only kms.<region-id>.aliyuncs.com.
        using var home = Home();
        using var clients = new KmsRegionalClients(home);
        var e = Assert.Throws<KmsConfigurationException>(() => clients.ForRegion(region));
        Assert.Contains("No KMS endpoint is known", e.Message);
        Assert.Empty(clients.RegionalClients);
    }

    [Fact]
    public void PlainHttpToAMappedRemoteHost_NeedsTheOptIn()
    {
        using var home = Home();
        var endpoints = new Dictionary<string, KmsEndpoint> { ["cn-shanghai"] = KmsEndpoint.FromUrl("http://kms.example.com", "cn-shanghai") };
        Assert.Throws<KmsConfigurationException>(() => new KmsRegionalClients(home, new KmsRegionalClientsOptions { RegionEndpoints = endpoints }));
        using var allowed = new KmsRegionalClients(home, new KmsRegionalClientsOptions { RegionEndpoints = endpoints, AllowInsecureHttp = true });
        Assert.True(allowed.ForRegion("cn-shanghai").Options.AllowInsecureHttp);
        // The opt-in is for the mapped endpoints only; the standard ones are https anyway.
        Assert.False(allowed.ForRegion("cn-beijing").Options.AllowInsecureHttp);
    }

    [Fact]
    public void RegionEndpoints_AreKeyedByRegionId()
    {
        using var home = Home();
        var endpoints = new Dictionary<string, KmsEndpoint> { ["Shanghai please"] = KmsEndpoint.FromUrl("https://kms.example.com") };
        Assert.Throws<KmsConfigurationException>(() => new KmsRegionalClients(home, new KmsRegionalClientsOptions { RegionEndpoints = endpoints }));
    }

    [Theory]
    [InlineData("acs:kms:cn-shanghai:123:key/k1", "cn-shanghai")]
    [InlineData("acs:kms:cn-shanghai:123:alias/a", "cn-shanghai")]
    [InlineData("k1", null)]
    [InlineData("alias/a", null)]
    [InlineData("acs:kms::123:key/k1", null)]
    public void TheRegionOfAKey_IsTheRegionOfItsArn(string keyId, string? region)
        => Assert.Equal(region, KmsRegionalClients.RegionOfKey(keyId));

    [Fact]
    public void TheFactory_BuildsRegionEndpointsWithTheirCaAndHttpRules_AndUsesAMappedHomeRegion()
    {
        var settings = new KmsConnectionSettings
        {
            Region = "cn-shanghai",
            AccessKeyId = "testid",
            AccessKeySecret = "testsecret",
            RegionEndpoints = new Dictionary<string, string>
            {
                ["cn-shanghai"] = "https://kms-vpc.cn-shanghai.aliyuncs.com",
                ["cn-beijing"] = "http://kms.internal.example:8080",
            },
            RegionEndpointAllowInsecureHttp = true,
        };
        using var home = KmsClientFactory.Create(settings);
        Assert.Equal(new Uri("https://kms-vpc.cn-shanghai.aliyuncs.com/"), home.Endpoint.BaseUri);
        Assert.Equal("cn-shanghai", home.Endpoint.RegionId);
        using var clients = KmsClientFactory.CreateRegionalClients(settings, home);
        Assert.Same(home, clients.ForRegion("cn-shanghai"));
        Assert.Equal(new Uri("http://kms.internal.example:8080/"), clients.ForRegion("cn-beijing").Endpoint.BaseUri);

        var refused = new KmsConnectionSettings { Region = "cn-hangzhou", AccessKeyId = "a", AccessKeySecret = "b", RegionEndpoints = settings.RegionEndpoints };
        using var home2 = KmsClientFactory.Create(refused);
        Assert.Throws<KmsConfigurationException>(() => KmsClientFactory.CreateRegionalClients(refused, home2));
        var badKey = new KmsConnectionSettings { Region = "cn-hangzhou", AccessKeyId = "a", AccessKeySecret = "b", RegionEndpoints = new Dictionary<string, string> { ["x y"] = "https://a" } };
        Assert.Throws<KmsConfigurationException>(() => KmsClientFactory.CreateRegionalClients(badKey, home2));
        var badUrl = new KmsConnectionSettings { Region = "cn-hangzhou", AccessKeyId = "a", AccessKeySecret = "b", RegionEndpoints = new Dictionary<string, string> { ["cn-x"] = "https://a/path" } };
        Assert.Throws<KmsConfigurationException>(() => KmsClientFactory.CreateRegionalClients(badUrl, home2));
    }
}
