using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

public class KmsEndpointTests
{
    [Fact]
    public void Region_GivesThePublicAndVpcHosts()
    {
        Assert.Equal("https://kms.cn-hangzhou.aliyuncs.com/", KmsEndpoint.ForRegion("cn-hangzhou").BaseUri.ToString());
        Assert.Equal("https://kms-vpc.cn-hangzhou.aliyuncs.com/", KmsEndpoint.ForRegion("cn-hangzhou", vpc: true).BaseUri.ToString());
        Assert.Equal("cn-hangzhou", KmsEndpoint.ForRegion("cn-hangzhou").RegionId);
        Assert.Throws<ArgumentException>(() => KmsEndpoint.ForRegion("cn-hangzhou.evil.com/"));
    }

    [Fact]
    public void ExplicitUrl_AcceptsABareHostAsHttps_AndRecoversTheRegionOfStandardHosts()
    {
        var e = KmsEndpoint.FromUrl("kst-abc.cryptoservice.kms.aliyuncs.com");
        Assert.Equal("https://kst-abc.cryptoservice.kms.aliyuncs.com/", e.BaseUri.ToString());
        Assert.Null(e.RegionId);
        Assert.Equal("eu-central-1", KmsEndpoint.FromUrl("https://kms-vpc.eu-central-1.aliyuncs.com").RegionId);
        Assert.Throws<ArgumentException>(() => KmsEndpoint.FromUrl("https://kms.example.com/path"));
        Assert.Throws<ArgumentException>(() => KmsEndpoint.FromUrl("ftp://kms.example.com"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080")]
    [InlineData("http://127.10.20.30")]
    [InlineData("http://[::1]:8080")]
    [InlineData("http://localhost:8080")]
    [InlineData("https://kms.example.com")]
    public void HttpToLoopback_AndHttps_AreAllowed(string url)
        => KmsEndpoint.FromUrl(url).EnsureTransportAllowed(allowInsecureHttp: false);

    [Theory]
    [InlineData("http://kms.example.com")]
    [InlineData("http://10.0.0.5:8080")]
    [InlineData("http://128.0.0.1")]
    [InlineData("http://localhost.example.com")]
    public void HttpToOtherHosts_IsRefusedUnlessExplicitlyAllowed(string url)
    {
        var endpoint = KmsEndpoint.FromUrl(url);
        var e = Assert.Throws<KmsConfigurationException>(() =>
            new KmsClient(new KmsClientOptions { Endpoint = endpoint, Credentials = new CountingCredentialsProvider() }));
        Assert.Contains("AllowInsecureHttp", e.Message);
        using var allowed = new KmsClient(new KmsClientOptions { Endpoint = endpoint, Credentials = new CountingCredentialsProvider(), AllowInsecureHttp = true });
    }

    [Fact]
    public void CustomCa_IsTrustedForAChainItSigned_AndNothingElse()
    {
        using var ca = CreateCa("CN=Instance CA");
        using var otherCa = CreateCa("CN=Other CA");
        using var leaf = CreateLeaf(ca, "kst-abc.cryptoservice.kms.aliyuncs.com");
        using var caPublic = X509CertificateLoader.LoadCertificate(ca.Export(X509ContentType.Cert));
        using var otherPublic = X509CertificateLoader.LoadCertificate(otherCa.Export(X509ContentType.Cert));

        Assert.True(EndpointCertificateTrust.Validate(caPublic, leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.False(EndpointCertificateTrust.Validate(otherPublic, leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
        // A name mismatch is never forgiven, whatever the CA.
        Assert.False(EndpointCertificateTrust.Validate(caPublic, leaf, null,
            SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.False(EndpointCertificateTrust.Validate(caPublic, null, null, SslPolicyErrors.RemoteCertificateNotAvailable));
    }

    [Fact]
    public void CustomCa_IsLoadedFromPem()
    {
        using var ca = CreateCa("CN=Instance CA");
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, ca.ExportCertificatePem());
            using var loaded = EndpointCertificateTrust.LoadCertificate(path);
            Assert.Equal(ca.Thumbprint, loaded.Thumbprint);
            var endpoint = KmsEndpoint.FromUrl("https://kst-abc.cryptoservice.kms.aliyuncs.com", caCertificatePath: path);
            Assert.Equal(path, endpoint.CaCertificatePath);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Throws<FileNotFoundException>(() => KmsEndpoint.FromUrl("https://h.example.com", caCertificatePath: path));
    }

    private static X509Certificate2 CreateCa(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 CreateLeaf(X509Certificate2 ca, string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new Oid("1.3.6.1.5.5.7.3.1") }, false));
        return request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(10), new byte[] { 1, 2, 3, 4 });
    }
}
