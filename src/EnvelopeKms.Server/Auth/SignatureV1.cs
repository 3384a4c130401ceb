using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// Signature V1 (RPC, HMAC-SHA1), reference §1.2: sort every parameter but <c>Signature</c> by
/// name (ordinal), percent-encode names and values, join, then sign
/// <c>METHOD&amp;%2F&amp;percentEncode(canonical)</c> with <c>secret + "&amp;"</c>.
/// </summary>
internal static class SignatureV1
{
    public static string StringToSign(string httpMethod, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var canonical = string.Join('&', parameters
            .Where(p => p.Key != "Signature")
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => PercentEncoding.Encode(p.Key) + "=" + PercentEncoding.Encode(p.Value)));
        return httpMethod.ToUpperInvariant() + "&" + PercentEncoding.Encode("/") + "&" + PercentEncoding.Encode(canonical);
    }

    public static string Sign(string accessKeySecret, string stringToSign)
    {
        var mac = HMACSHA1.HashData(Encoding.UTF8.GetBytes(accessKeySecret + "&"), Encoding.UTF8.GetBytes(stringToSign));
        return Convert.ToBase64String(mac);
    }
}
