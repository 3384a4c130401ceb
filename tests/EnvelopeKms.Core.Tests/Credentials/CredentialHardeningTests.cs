using EnvelopeKms.Credentials;
using EnvelopeKms.Tests.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Credentials;

/// <summary>
/// Issue 18, credential chain: where signed AssumeRole requests may go, what a credentials URI may be and answer,
/// and what of it may appear in an error.
/// </summary>
public class CredentialHardeningTests
{
    [Theory]
    [InlineData("attacker.example/x#")] // became https://sts.attacker.example/x#.aliyuncs.com/: the host sts.attacker.example
    [InlineData("cn-hangzhou.evil.com")]
    [InlineData("cn-hangzhou/x")] // (surrounding white space is trimmed from settings, as before: "cn-hangzhou\n" is cn-hangzhou)
    [InlineData("cn-hangzhou:8443")]
    public void AnStsRegionThatIsNotARegionId_IsRefused_FromTheProfileAndFromTheEnvironment(string region)
    {
        using var home = new TempHome();
        var fromProfile = Assert.Throws<CredentialsException>(() => home.Options().StsEndpointFor(region, vpc: false));
        Assert.Contains("sts_region", fromProfile.Message);
        var fromEnvironment = Assert.Throws<CredentialsException>(() =>
            home.Options(new() { ["ALIBABA_CLOUD_STS_REGION"] = region }).StsEndpointFor(null, vpc: false));
        Assert.Contains("ALIBABA_CLOUD_STS_REGION", fromEnvironment.Message);
    }

    [Fact]
    public void ARegionIdGivesTheStandardStsHost()
    {
        using var home = new TempHome();
        Assert.Equal(new Uri("https://sts.cn-shanghai.aliyuncs.com/"), home.Options().StsEndpointFor("cn-shanghai", vpc: false));
        Assert.Equal(new Uri("https://sts-vpc.cn-beijing.aliyuncs.com/"), home.Options(new() { ["ALIBABA_CLOUD_STS_REGION"] = "cn-beijing" }).StsEndpointFor(null, vpc: true));
    }

    [Theory]
    [InlineData("http://creds.example.com/")]
    [InlineData("http://10.0.0.5:8080/creds")]
    [InlineData("http://localhost.example.com/")]
    public void ACredentialsUriOverPlainHttpToAnotherHost_IsRefused(string uri)
    {
        var e = Assert.Throws<CredentialsException>(() => new CredentialsUriProvider(new Uri(uri)));
        Assert.Contains("plain http", e.Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080/creds")]
    [InlineData("http://[::1]:8080/creds")]
    [InlineData("http://localhost:8080/creds")]
    [InlineData("https://creds.example.com/")]
    public void ACredentialsUriOverHttpsOrToLoopback_IsAccepted(string uri)
        => Assert.NotNull(new CredentialsUriProvider(new Uri(uri)));

    [Fact]
    public async Task AHugeCredentialsAnswer_IsRefusedWithoutBeingParsed()
    {
        var huge = "{\"AccessKeyId\":\"id\",\"AccessKeySecret\":\"s\",\"Padding\":\"" + new string('x', 8 << 20) + "\"}";
        await using var server = new LocalHttpServer(_ => StubResponse.Json(huge));
        using var home = new TempHome();
        var e = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new CredentialsUriProvider(new Uri(server.BaseUrl + "/creds"), home.Options()).GetCredentialsAsync(default));
        Assert.Contains("64 KiB", e.Message);
    }

    [Fact]
    public async Task UserInfoInTheCredentialsUri_NeverAppearsInErrorsOrTheSourceName()
    {
        using var home = new TempHome();
        var uri = new Uri($"http://sidecar-user:pa55-word-value@127.0.0.1:{ClosedPort.Uri.Port}/creds");
        var provider = new CredentialsUriProvider(uri, home.Options());
        Assert.DoesNotContain("pa55-word-value", provider.SourceName);
        Assert.DoesNotContain("sidecar-user", provider.SourceName);
        var e = await Assert.ThrowsAsync<CredentialsException>(async () => await provider.GetCredentialsAsync(default));
        Assert.DoesNotContain("pa55-word-value", e.ToString());
        Assert.Contains("/creds", e.Message);
    }

    [Fact]
    public async Task TheCredentialsServersMessage_IsNotEchoed_ItsCodeIsOnlyIfItLooksLikeACode()
    {
        await using var server = new LocalHttpServer(r => r.Path.Contains("one")
            ? StubResponse.Error(403, "Denied", "token=SECRET-TOKEN-VALUE expired")
            : StubResponse.Error(403, "SECRET-IN-CODE token=abc def", "x"));
        using var home = new TempHome();
        var e = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new CredentialsUriProvider(new Uri(server.BaseUrl + "/one"), home.Options()).GetCredentialsAsync(default));
        Assert.Contains("HTTP 403, Denied", e.Message);
        Assert.DoesNotContain("SECRET-TOKEN-VALUE", e.ToString());
        var other = await Assert.ThrowsAsync<CredentialsException>(async () =>
            await new CredentialsUriProvider(new Uri(server.BaseUrl + "/two"), home.Options()).GetCredentialsAsync(default));
        Assert.Contains("HTTP 403", other.Message);
        Assert.DoesNotContain("SECRET-IN-CODE", other.ToString());
    }
}
