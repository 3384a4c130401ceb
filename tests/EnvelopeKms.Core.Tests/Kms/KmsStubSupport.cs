using System.Security.Cryptography;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.Cloud.Signing;

namespace EnvelopeKms.Tests.Kms;

/// <summary>Server-side signature checks for the stand-in servers, written independently of the client's transport.</summary>
internal static class StubSignatures
{
    public static bool VerifyV3(StubRequest r, string secret)
    {
        var auth = r.Header("authorization");
        if (auth is null || !auth.StartsWith("ACS3-HMAC-SHA256 ", StringComparison.Ordinal)) return false;
        var fields = auth["ACS3-HMAC-SHA256 ".Length..].Split(',').Select(f => f.Split('=', 2)).ToDictionary(f => f[0], f => f[1]);
        var signedNames = fields["SignedHeaders"].Split(';');
        var headers = signedNames.Select(n => new KeyValuePair<string, string>(n, r.Header(n) ?? "")).ToList();
        var bodyHash = Convert.ToHexString(SHA256.HashData(r.Body)).ToLowerInvariant();
        if (r.Header("x-acs-content-sha256") != bodyHash) return false;
        var canonical = AcsSignatureV3.BuildCanonicalRequest(r.Method, r.Query, headers, bodyHash, out _);
        var expected = AcsSignatureV3.ComputeSignature(AcsSignatureV3.BuildStringToSign(canonical), secret);
        return fields["Signature"] == expected;
    }

    public static bool VerifyV1(StubRequest r, string secret)
    {
        var all = r.AllParameters;
        if (!all.TryGetValue("Signature", out var signature)) return false;
        all.Remove("Signature");
        return RpcSignatureV1.ComputeSignature(r.Method, all, secret) == signature;
    }
}

/// <summary>Static credentials that count how often they were asked for and invalidated.</summary>
internal sealed class CountingCredentialsProvider : ICredentialsProvider
{
    private AlibabaCloudCredentials _current;
    private readonly Func<int, AlibabaCloudCredentials>? _next;

    public CountingCredentialsProvider(string id = "testid", string secret = "testsecret", string? token = null,
        Func<int, AlibabaCloudCredentials>? afterInvalidate = null)
    {
        _current = new AlibabaCloudCredentials(id, secret, token);
        _next = afterInvalidate;
    }

    public int Invalidations { get; private set; }
    public string SourceName => "test";

    public ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_current);

    public void Invalidate()
    {
        Invalidations++;
        if (_next is not null) _current = _next(Invalidations);
    }
}

internal static class TestClients
{
    public static KmsClient For(LocalHttpServer server, ICredentialsProvider? credentials = null, KmsSignatureVersion version = KmsSignatureVersion.V3,
        KmsV1Transport v1 = KmsV1Transport.FormPost, int maxAttempts = 3, TimeSpan? attemptTimeout = null)
        => new(new KmsClientOptions
        {
            Endpoint = KmsEndpoint.FromUrl(server.BaseUrl, regionId: "cn-test"),
            Credentials = credentials ?? new CountingCredentialsProvider(),
            SignatureVersion = version,
            V1Transport = v1,
            Retry = new KmsRetryOptions { MaxAttempts = maxAttempts, BaseDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) },
            AttemptTimeout = attemptTimeout ?? TimeSpan.FromSeconds(10),
        });
}
