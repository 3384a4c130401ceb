using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.Cloud.Signing;

/// <summary>
/// Signature V3 (<c>ACS3-HMAC-SHA256</c>), the default of the current Alibaba Cloud SDKs. Pure functions:
/// <code>
/// CanonicalRequest = METHOD \n / \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
/// StringToSign     = "ACS3-HMAC-SHA256\n" + hex(sha256(CanonicalRequest))
/// Signature        = hex( HMAC-SHA256( secret, StringToSign ) )
/// </code>
/// Only non-secret values reach the canonical request: secret parameters travel in the body and are covered by
/// the body hash.
/// </summary>
public static class AcsSignatureV3
{
    public const string Algorithm = "ACS3-HMAC-SHA256";

    /// <summary>SHA-256 of an empty body, lower-case hex.</summary>
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    public static string FormatDate(DateTimeOffset time)
        => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string HashPayload(ReadOnlySpan<byte> body) => Convert.ToHexString(SHA256.HashData(body)).ToLowerInvariant();

    /// <summary>Query parameters sorted by name, <c>enc(name)=enc(value)</c>, joined with <c>&amp;</c>.</summary>
    public static string BuildCanonicalQueryString(IEnumerable<KeyValuePair<string, string>> query)
        => string.Join("&", query
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => AcsPercentEncoding.Encode(p.Key) + "=" + AcsPercentEncoding.Encode(p.Value ?? string.Empty)));

    /// <summary>
    /// Builds the canonical request. Signed headers are <c>host</c>, <c>content-type</c> and every <c>x-acs-*</c>
    /// header, lower-cased and sorted, values trimmed.
    /// </summary>
    public static string BuildCanonicalRequest(
        string httpMethod, IEnumerable<KeyValuePair<string, string>> query, IEnumerable<KeyValuePair<string, string>> headers,
        string hashedPayload, out string signedHeaders)
    {
        var signed = headers
            .Select(h => new KeyValuePair<string, string>(h.Key.Trim().ToLowerInvariant(), h.Value.Trim()))
            .Where(h => h.Key == "host" || h.Key == "content-type" || h.Key.StartsWith("x-acs-", StringComparison.Ordinal))
            .OrderBy(h => h.Key, StringComparer.Ordinal)
            .ToList();
        signedHeaders = string.Join(";", signed.Select(h => h.Key));
        var sb = new StringBuilder();
        sb.Append(httpMethod.ToUpperInvariant()).Append('\n');
        sb.Append('/').Append('\n');
        sb.Append(BuildCanonicalQueryString(query)).Append('\n');
        foreach (var h in signed) sb.Append(h.Key).Append(':').Append(h.Value).Append('\n');
        sb.Append('\n');
        sb.Append(signedHeaders).Append('\n');
        sb.Append(hashedPayload);
        return sb.ToString();
    }

    public static string HashCanonicalRequest(string canonicalRequest)
        => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest))).ToLowerInvariant();

    public static string BuildStringToSign(string canonicalRequest) => Algorithm + "\n" + HashCanonicalRequest(canonicalRequest);

    public static string ComputeSignature(string stringToSign, string accessKeySecret)
    {
        byte[] key = Encoding.UTF8.GetBytes(accessKeySecret);
        try
        {
            return Convert.ToHexString(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign))).ToLowerInvariant();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public static string BuildAuthorization(string accessKeyId, string signedHeaders, string signature)
        => $"{Algorithm} Credential={accessKeyId},SignedHeaders={signedHeaders},Signature={signature}";

    /// <summary>
    /// Produces every header a V3 request needs (the <c>x-acs-*</c> set and <c>Authorization</c>) for the given
    /// inputs. <paramref name="host"/> is the Host header value (with the port when it is not the default).
    /// </summary>
    public static V3SignedRequest Sign(
        string httpMethod, string host, string action, string version, IEnumerable<KeyValuePair<string, string>> query,
        string payloadHash, string? contentType, string accessKeyId, string accessKeySecret, string? securityToken,
        DateTimeOffset timestamp, string nonce)
    {
        var headers = new List<KeyValuePair<string, string>>
        {
            new("host", host),
            new("x-acs-action", action),
            new("x-acs-version", version),
            new("x-acs-date", FormatDate(timestamp)),
            new("x-acs-signature-nonce", nonce),
            new("x-acs-content-sha256", payloadHash),
        };
        if (contentType is not null) headers.Add(new("content-type", contentType));
        if (!string.IsNullOrEmpty(securityToken))
        {
            headers.Add(new("x-acs-accesskey-id", accessKeyId));
            headers.Add(new("x-acs-security-token", securityToken));
        }
        var canonical = BuildCanonicalRequest(httpMethod, query, headers, payloadHash, out var signedHeaders);
        var stringToSign = BuildStringToSign(canonical);
        var signature = ComputeSignature(stringToSign, accessKeySecret);
        return new V3SignedRequest(headers, BuildAuthorization(accessKeyId, signedHeaders, signature), stringToSign);
    }
}

/// <summary>The outcome of V3 signing: headers to send (host and content-type included), Authorization, and the
/// string to sign (no secret in it) for diagnosing <c>SignatureDoesNotMatch</c>.</summary>
public sealed record V3SignedRequest(IReadOnlyList<KeyValuePair<string, string>> Headers, string Authorization, string StringToSign);
