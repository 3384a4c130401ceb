using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.Server.Tests.Infrastructure;

/// <summary>
/// A small, independent implementation of both Alibaba Cloud signatures for the tests, written
/// from the reference rather than sharing the server's code, so a bug in one shows up as a
/// mismatch instead of cancelling out. Checked against the official vectors in SignatureVectorTests.
/// </summary>
internal static class TestSigner
{
    /// <summary>RFC 3986 encoding; .NET's EscapeDataString already escapes !'()* and keeps ~.</summary>
    public static string Encode(string value) => Uri.EscapeDataString(value);

    public static string V1StringToSign(string method, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var sorted = parameters.Where(p => p.Key != "Signature").OrderBy(p => p.Key, StringComparer.Ordinal);
        var canonical = string.Join("&", sorted.Select(p => $"{Encode(p.Key)}={Encode(p.Value)}"));
        return $"{method}&{Encode("/")}&{Encode(canonical)}";
    }

    public static string V1Signature(string secret, string stringToSign)
    {
        using var hmac = new HMACSHA1(Encoding.UTF8.GetBytes(secret + "&"));
        return Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes(stringToSign)));
    }

    public static string V3CanonicalRequest(string method, IEnumerable<KeyValuePair<string, string>> query, SortedDictionary<string, string> signedHeaders, string payloadHash)
    {
        var builder = new StringBuilder();
        builder.Append(method).Append('\n').Append("/\n");
        builder.Append(string.Join("&", query.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{Encode(p.Key)}={Encode(p.Value)}"))).Append('\n');
        foreach (var (name, value) in signedHeaders)
        {
            builder.Append(name).Append(':').Append(value.Trim()).Append('\n');
        }
        builder.Append('\n').Append(string.Join(";", signedHeaders.Keys)).Append('\n').Append(payloadHash);
        return builder.ToString();
    }

    public static string V3StringToSign(string canonicalRequest) => "ACS3-HMAC-SHA256\n" + Sha256Hex(Encoding.UTF8.GetBytes(canonicalRequest));

    public static string V3Signature(string secret, string stringToSign)
    {
        using var hmac = new HMACSHA256(Encoding.UTF8.GetBytes(secret));
        return Convert.ToHexString(hmac.ComputeHash(Encoding.UTF8.GetBytes(stringToSign))).ToLowerInvariant();
    }

    public static string Sha256Hex(byte[] data) => Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();
}
