using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace EnvelopeKms.Kms;

/// <summary>
/// TLS trust for one KMS endpoint. Certificates are always validated; a CA file given with the endpoint (a KMS
/// instance's own CA) is added as an extra root for this endpoint's handler only, never to the machine store.
/// </summary>
internal static class EndpointCertificateTrust
{
    public static SocketsHttpHandler CreateHandler(KmsEndpoint endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseProxy = true,
            AllowAutoRedirect = false, // a redirect would resend signed credentials elsewhere
        };
        if (endpoint.CaCertificatePath is { } path)
        {
            var ca = LoadCertificate(path);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors)
                => Validate(ca, certificate, chain, errors);
        }
        return handler;
    }

    internal static X509Certificate2 LoadCertificate(string path)
    {
        try
        {
            var text = File.ReadAllText(path);
            return text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)
                ? X509Certificate2.CreateFromPem(text)
                : new X509Certificate2(File.ReadAllBytes(path));
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            throw new KmsConfigurationException($"The CA certificate '{path}' could not be read: {e.Message}", e);
        }
    }

    /// <summary>
    /// Accepts a certificate the system trusts; otherwise accepts it only if the host name matched and the chain
    /// builds to <paramref name="trustedCa"/> as the one custom root.
    /// </summary>
    internal static bool Validate(X509Certificate2 trustedCa, X509Certificate? certificate, X509Chain? presentedChain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None) return true;
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;

        using var leaf = new X509Certificate2(certificate);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trustedCa);
        // A private instance CA publishes no revocation list; checking would always fail offline.
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presentedChain is not null)
        {
            foreach (var element in presentedChain.ChainElements)
            {
                if (!element.Certificate.RawData.AsSpan().SequenceEqual(leaf.RawData)) chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        return chain.Build(leaf);
    }
}
