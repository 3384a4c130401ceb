using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// Signature V3 (ACS3-HMAC-SHA256), reference §1.4. The canonical request is
/// METHOD, URI, sorted query, the signed headers (<c>name:trimmed value</c>), their names, and
/// the hex SHA-256 of the body; the string to sign is the algorithm name plus its hex hash.
/// </summary>
internal static class SignatureV3
{
    public const string Algorithm = "ACS3-HMAC-SHA256";

    public static string EmptyPayloadHash { get; } = HexSha256([]);

    public static string CanonicalRequest(
        string httpMethod,
        IEnumerable<KeyValuePair<string, string>> query,
        IReadOnlyList<string> signedHeaderNames,
        Func<string, string[]> headerValues,
        string hashedPayload)
    {
        var canonicalQuery = string.Join('&', query
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => PercentEncoding.Encode(p.Key) + "=" + PercentEncoding.Encode(p.Value)));
        var canonicalHeaders = new StringBuilder();
        foreach (var name in signedHeaderNames)
        {
            // Several values of one header are trimmed, sorted and joined with a comma.
            var values = headerValues(name).Select(v => v.Trim()).OrderBy(v => v, StringComparer.Ordinal);
            canonicalHeaders.Append(name).Append(':').Append(string.Join(',', values)).Append('\n');
        }
        return string.Join('\n',
            httpMethod.ToUpperInvariant(),
            "/",
            canonicalQuery,
            canonicalHeaders.ToString(),
            string.Join(';', signedHeaderNames),
            hashedPayload);
    }

    public static string StringToSign(string canonicalRequest) =>
        Algorithm + "\n" + HexSha256(Encoding.UTF8.GetBytes(canonicalRequest));

    public static string Sign(string accessKeySecret, string stringToSign) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(accessKeySecret), Encoding.UTF8.GetBytes(stringToSign)));

    public static string HexSha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
