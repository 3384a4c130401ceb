using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

/// <summary>
/// Real TLS against a tiny HTTPS KMS stand-in (SslStream over TcpListener) with a CA and server certificates made
/// here: certificate validation is always on; a custom CA is trusted only by the client of the endpoint it was given
/// for, and only for a certificate whose name matches that endpoint; a TLS failure is reported once, clearly, and
/// not retried. Plain http is refused for non-loopback hosts unless explicitly allowed.
/// </summary>
public class KmsTlsTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    /// <summary>A server certificate for the given DNS names and IP addresses, signed by <paramref name="ca"/>, with its private key.</summary>
    private static X509Certificate2 CreateServerCertificate(X509Certificate2 ca, string[] dnsNames, IPAddress[] addresses)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={(dnsNames.Length > 0 ? dnsNames[0] : addresses[0].ToString())}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var d in dnsNames) san.AddDnsName(d);
        foreach (var a in addresses) san.AddIpAddress(a);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(7), serial);
        using var withKey = signed.CopyWithPrivateKey(key);
        // Round-trip through PKCS#12 so SslStream on every platform can use the private key.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12, "pw"), "pw");
    }

    /// <summary>An HTTPS server on 127.0.0.1 that answers every request with a DescribeKey result; counts handshakes.</summary>
    private sealed class HttpsStub : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly X509Certificate2 _certificate;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private int _handshakes, _failedHandshakes, _requests;

        public HttpsStub(X509Certificate2 certificate)
        {
            _certificate = certificate;
            _listener.Start();
            _loop = Task.Run(AcceptLoop);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
        public int Handshakes => Volatile.Read(ref _handshakes);
        public int FailedHandshakes => Volatile.Read(ref _failedHandshakes);
        public int Requests => Volatile.Read(ref _requests);

        private async Task AcceptLoop()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch { return; }
                _ = Task.Run(() => Serve(client));
            }
        }

        private async Task Serve(TcpClient client)
        {
            using (client)
            {
                Interlocked.Increment(ref _handshakes);
                await using var tls = new SslStream(client.GetStream());
                try
                {
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
                }
                catch
                {
                    Interlocked.Increment(ref _failedHandshakes);
                    return;
                }
                try
                {
                    var head = new StringBuilder();
                    var one = new byte[1];
                    while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
                    {
                        if (await tls.ReadAsync(one) == 0) return;
                        head.Append((char)one[0]);
                    }
                    var length = head.ToString().Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("content-length", StringComparison.OrdinalIgnoreCase))
                        .Select(p => int.Parse(p[1].Trim())).FirstOrDefault();
                    var body = new byte[length];
                    await tls.ReadExactlyAsync(body);
                    Interlocked.Increment(ref _requests);
                    var json = Encoding.UTF8.GetBytes("{\"KeyMetadata\":{\"KeyId\":\"k-tls\",\"KeyState\":\"Enabled\"},\"RequestId\":\"r\"}");
                    await tls.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\nConnection: close\r\n\r\n"));
                    await tls.WriteAsync(json);
                    await tls.FlushAsync();
                }
                catch (IOException) { }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            try { await _loop; } catch { }
            _certificate.Dispose();
        }
    }

    private string WritePem(X509Certificate2 ca, string name)
    {
        string path = _dir.File(name);
        File.WriteAllText(path, ca.ExportCertificatePem());
        return path;
    }

    private static KmsClient Client(string url, string? caPath, int maxAttempts = 5)
        => new(new KmsClientOptions
        {
            Endpoint = KmsEndpoint.FromUrl(url, "cn-test", caPath),
            Credentials = new CountingCredentialsProvider(),
            Retry = new KmsRetryOptions { MaxAttempts = maxAttempts, BaseDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) },
            AttemptTimeout = TimeSpan.FromSeconds(10),
        });

    [Fact]
    public async Task WithoutTheCa_TheHandshakeFailsOnce_WithAClearError()
    {
        using var ca = CreateCa("EnvelopeKms test CA");
        await using var server = new HttpsStub(CreateServerCertificate(ca, ["localhost"], [IPAddress.Loopback]));
        using var client = Client($"https://127.0.0.1:{server.Port}", caPath: null, maxAttempts: 5);

        var e = await Assert.ThrowsAsync<KmsException>(() => client.DescribeKeyAsync("k1"));

        Assert.Equal(KmsErrorKind.Connection, e.Kind);
        Assert.False(e.IsRetryable);
        Assert.Equal(1, e.Attempts);
        Assert.Equal(0, client.RetryCount);
        Assert.Equal(1, server.Handshakes);
        Assert.Equal(0, server.Requests); // nothing signed was sent to an unauthenticated server
        Assert.IsAssignableFrom<System.Security.Authentication.AuthenticationException>(e.InnerException);
        Assert.Contains("certificate", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task WithTheCaForThisEndpoint_ItWorks_ByIpAndByName()
    {
        using var ca = CreateCa("EnvelopeKms test CA");
        string caPath = WritePem(ca, "ca.pem");
        await using var server = new HttpsStub(CreateServerCertificate(ca, ["localhost"], [IPAddress.Loopback]));
        foreach (var host in new[] { "127.0.0.1", "localhost" })
        {
            using var client = Client($"https://{host}:{server.Port}", caPath);
            var key = await client.DescribeKeyAsync("k1");
            Assert.Equal("k-tls", key.KeyId);
        }
        Assert.Equal(2, server.Requests);
    }

    [Fact]
    public async Task TheSameCa_DoesNotVouchForACertificateOfAnotherHost()
    {
        using var ca = CreateCa("EnvelopeKms test CA");
        string caPath = WritePem(ca, "ca.pem");
        // The server presents a certificate the CA issued for another host: valid chain, wrong name.
        await using var server = new HttpsStub(CreateServerCertificate(ca, ["kms.other.example"], [IPAddress.Parse("10.9.8.7")]));
        using var client = Client($"https://127.0.0.1:{server.Port}", caPath, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.DescribeKeyAsync("k1"));
        Assert.Equal(KmsErrorKind.Connection, e.Kind);
        Assert.Equal(1, e.Attempts);
        Assert.Equal(0, server.Requests);
    }

    [Fact]
    public async Task ACaGivenForOneEndpoint_IsNotTrustedByTheClientOfAnother()
    {
        using var ca = CreateCa("EnvelopeKms test CA");
        string caPath = WritePem(ca, "ca.pem");
        await using var first = new HttpsStub(CreateServerCertificate(ca, ["localhost"], [IPAddress.Loopback]));
        await using var second = new HttpsStub(CreateServerCertificate(ca, ["localhost"], [IPAddress.Loopback]));
        using var trusting = Client($"https://127.0.0.1:{first.Port}", caPath);
        Assert.Equal("k-tls", (await trusting.DescribeKeyAsync("k1")).KeyId);
        // Another endpoint, configured without the CA, in the same process after the first client trusted it.
        using var other = Client($"https://localhost:{second.Port}", caPath: null);
        var e = await Assert.ThrowsAsync<KmsException>(() => other.DescribeKeyAsync("k1"));
        Assert.Equal(KmsErrorKind.Connection, e.Kind);
        Assert.Equal(0, second.Requests);
    }

    [Fact]
    public async Task ACertificateFromAnotherCa_IsRejected_EvenWithACaGiven()
    {
        using var ca = CreateCa("EnvelopeKms test CA");
        using var rogue = CreateCa("EnvelopeKms test CA"); // same name, different key
        string caPath = WritePem(ca, "ca.pem");
        await using var server = new HttpsStub(CreateServerCertificate(rogue, ["localhost"], [IPAddress.Loopback]));
        using var client = Client($"https://127.0.0.1:{server.Port}", caPath);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.DescribeKeyAsync("k1"));
        Assert.Equal(1, e.Attempts);
        Assert.Equal(0, server.Requests);
    }

    [Theory]
    [InlineData("http://10.0.0.1")]
    [InlineData("http://kms.cn-hangzhou.aliyuncs.com")]
    [InlineData("http://localhost.example.com")]
    [InlineData("http://127.0.0.1.nip.io")]
    [InlineData("http://[::ffff:10.0.0.1]")]
    public void PlainHttp_ToANonLoopbackHost_IsRefused_UnlessExplicitlyAllowed(string url)
    {
        var settings = new KmsConnectionSettings { Endpoint = url, Region = "cn-test", AccessKeyId = "id", AccessKeySecret = "secret" };
        var e = Assert.Throws<KmsConfigurationException>(() => KmsClientFactory.Create(settings));
        Assert.Contains("AllowInsecureHttp", e.Message);
        Assert.DoesNotContain("secret", e.Message);
        using var allowed = KmsClientFactory.Create(new KmsConnectionSettings
        {
            Endpoint = url, Region = "cn-test", AccessKeyId = "id", AccessKeySecret = "secret", AllowInsecureHttp = true,
        });
    }

    [Theory]
    [InlineData("http://127.0.0.1:1")]
    [InlineData("http://127.8.9.10:1")]
    [InlineData("http://localhost:1")]
    [InlineData("http://[::1]:1")]
    public void PlainHttp_ToLoopback_IsAllowed(string url)
    {
        using var client = KmsClientFactory.Create(new KmsConnectionSettings { Endpoint = url, Region = "cn-test", AccessKeyId = "id", AccessKeySecret = "secret" });
    }
}
