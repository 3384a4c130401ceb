using System.Management.Automation;
using System.Security;
using EnvelopeKms.PowerShell.Infrastructure;
using Xunit;

namespace EnvelopeKms.PowerShell.Tests.Infrastructure;

/// <summary>How a cmdlet's own parameters and the Connect-Kms defaults combine into the settings a KMS client is made from.</summary>
public sealed class KmsConnectionResolverTests
{
    private static PSCredential Credential(string id, string secret)
    {
        var password = new SecureString();
        foreach (char c in secret) password.AppendChar(c);
        return new PSCredential(id, password);
    }

    private static readonly KmsConnectionDefaults Connected = new()
    {
        Region = "cn-hangzhou",
        Endpoint = "https://kms.internal.example:8443",
        ProfileName = "ops",
        Credential = Credential("connect-id", "connect-secret"),
        CaCertificatePath = "/etc/ca.pem",
        AllowInsecureHttp = true,
        RegionEndpoints = new Dictionary<string, string> { ["cn-shanghai"] = "https://kms.sh.example" },
        MaxAttempts = 2,
    };

    [Fact]
    public void WithNothingBound_TheConnectKmsDefaultsApply_WithTheirCaAndHttpOptIn()
    {
        var s = KmsConnectionResolver.Resolve(null, null, null, null, Connected);
        Assert.Equal(("cn-hangzhou", "https://kms.internal.example:8443", "ops"), (s.Region, s.Endpoint, s.ProfileName));
        Assert.Equal(("connect-id", "connect-secret"), (s.AccessKeyId, s.AccessKeySecret));
        Assert.Equal("/etc/ca.pem", s.CaCertificatePath);
        Assert.True(s.AllowInsecureHttp);
        Assert.Equal(2, s.Retry.MaxAttempts);
    }

    [Fact]
    public void ACmdletsOwnEndpoint_DoesNotInheritTheDefaultEndpointsCaOrHttpOptIn()
    {
        var s = KmsConnectionResolver.Resolve("cn-beijing", "https://other.example", null, null, Connected);
        Assert.Equal(("cn-beijing", "https://other.example"), (s.Region, s.Endpoint));
        Assert.Null(s.CaCertificatePath);
        Assert.False(s.AllowInsecureHttp);
        // The region endpoints belong to the session: they keep Connect-Kms's CA and opt-in whatever the cmdlet was given.
        Assert.Equal("https://kms.sh.example", s.RegionEndpoints!["cn-shanghai"]);
        Assert.Equal("/etc/ca.pem", s.RegionEndpointCaCertificatePath);
        Assert.True(s.RegionEndpointAllowInsecureHttp);
    }

    [Fact]
    public void AProfileNamedOnTheCommandLine_BeatsCredentialsSetByConnectKms()
    {
        var s = KmsConnectionResolver.Resolve(null, null, "dev", null, Connected);
        Assert.Equal("dev", s.ProfileName);
        Assert.Null(s.AccessKeyId);
        Assert.Null(s.AccessKeySecret);
    }

    [Fact]
    public void ACredentialOnTheCommandLine_BeatsBothProfileAndDefaults()
    {
        var s = KmsConnectionResolver.Resolve(null, null, "dev", Credential("cmd-id", "cmd-secret"), Connected);
        Assert.Equal(("cmd-id", "cmd-secret"), (s.AccessKeyId, s.AccessKeySecret));
        Assert.Equal("dev", s.ProfileName);
    }

    [Fact]
    public void WithoutConnectKms_OnlyTheBoundParametersAreSet_AndTheRestIsLeftToTheCredentialChain()
    {
        var s = KmsConnectionResolver.Resolve("cn-hangzhou", null, null, null, null);
        Assert.Equal("cn-hangzhou", s.Region);
        Assert.Null(s.Endpoint);
        Assert.Null(s.ProfileName);
        Assert.Null(s.AccessKeyId);
        Assert.Null(s.RegionEndpoints);
        Assert.Null(s.RegionEndpointCaCertificatePath);
        Assert.False(s.RegionEndpointAllowInsecureHttp);
        Assert.Equal(new Kms.KmsRetryOptions().MaxAttempts, s.Retry.MaxAttempts);
    }
}
