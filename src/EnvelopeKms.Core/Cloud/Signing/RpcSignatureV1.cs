using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.Cloud.Signing;

/// <summary>
/// Signature V1 of Alibaba Cloud RPC APIs (<c>HMAC-SHA1</c>, <c>SignatureVersion=1.0</c>). Pure functions: the
/// caller supplies method, parameters, secret, timestamp and nonce, so the official vectors are reproducible.
/// <code>
/// StringToSign = METHOD &amp; %2F &amp; enc( join("&amp;", enc(name)=enc(value)) sorted by name )
/// Signature    = base64( HMAC-SHA1( secret + "&amp;", StringToSign ) )
/// </code>
/// The string to sign is built as bytes because it contains every parameter, including a secret Plaintext.
/// </summary>
public static class RpcSignatureV1
{
    public const string SignatureMethod = "HMAC-SHA1";
    public const string SignatureVersion = "1.0";
    public const string SignatureParameter = "Signature";

    /// <summary>The V1 timestamp format: UTC, seconds precision, <c>Z</c> suffix.</summary>
    public static string FormatTimestamp(DateTimeOffset time)
        => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>The string to sign for non-secret parameters (for tests and diagnostics).</summary>
    public static string BuildStringToSign(string httpMethod, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var list = parameters.Select(p => AcsParameter.Text(p.Key, p.Value)).ToList();
        using var buffer = new SensitiveByteBuffer();
        WriteStringToSign(httpMethod, list, buffer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string ComputeSignature(string httpMethod, IEnumerable<KeyValuePair<string, string>> parameters, string accessKeySecret)
        => ComputeSignature(httpMethod, parameters.Select(p => AcsParameter.Text(p.Key, p.Value)).ToList(), accessKeySecret);

    /// <summary>Signs every parameter except <c>Signature</c>; secret parameters are read from their bytes.</summary>
    public static string ComputeSignature(string httpMethod, IReadOnlyList<AcsParameter> parameters, string accessKeySecret)
    {
        ArgumentNullException.ThrowIfNull(accessKeySecret);
        using var stringToSign = new SensitiveByteBuffer();
        WriteStringToSign(httpMethod, parameters, stringToSign);
        byte[] key = Encoding.UTF8.GetBytes(accessKeySecret + "&");
        try
        {
            return Convert.ToBase64String(HMACSHA1.HashData(key, stringToSign.WrittenSpan));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Returns the request's full parameter list: the business parameters, the common ones
    /// (Action, Version, Format, AccessKeyId, SignatureMethod/Version/Nonce, Timestamp, SecurityToken) and Signature.
    /// </summary>
    public static List<AcsParameter> SignRequest(
        string httpMethod, string action, string version, IEnumerable<AcsParameter> businessParameters,
        string accessKeyId, string accessKeySecret, string? securityToken, DateTimeOffset timestamp, string nonce)
    {
        var all = new List<AcsParameter>
        {
            AcsParameter.Text("Action", action),
            AcsParameter.Text("Version", version),
            AcsParameter.Text("Format", "JSON"),
            AcsParameter.Text("AccessKeyId", accessKeyId),
            AcsParameter.Text("SignatureMethod", SignatureMethod),
            AcsParameter.Text("SignatureVersion", SignatureVersion),
            AcsParameter.Text("SignatureNonce", nonce),
            AcsParameter.Text("Timestamp", FormatTimestamp(timestamp)),
        };
        if (!string.IsNullOrEmpty(securityToken)) all.Add(AcsParameter.Text("SecurityToken", securityToken));
        all.AddRange(businessParameters);
        all.Add(AcsParameter.Text(SignatureParameter, ComputeSignature(httpMethod, all, accessKeySecret)));
        return all;
    }

    internal static void WriteStringToSign(string httpMethod, IReadOnlyList<AcsParameter> parameters, SensitiveByteBuffer destination)
    {
        using var canonical = new SensitiveByteBuffer();
        WriteCanonicalQuery(parameters, canonical);
        destination.AppendUtf8(httpMethod.ToUpperInvariant());
        destination.AppendUtf8("&%2F&");
        AcsPercentEncoding.Encode(canonical.WrittenSpan, destination);
    }

    /// <summary><c>enc(name)=enc(value)</c> joined with <c>&amp;</c>, sorted by name, <c>Signature</c> excluded.</summary>
    internal static void WriteCanonicalQuery(IReadOnlyList<AcsParameter> parameters, SensitiveByteBuffer destination)
    {
        var sorted = parameters.Where(p => p.Name != SignatureParameter).ToArray();
        Array.Sort(sorted, AcsParameter.CompareByName);
        WriteEncodedPairs(sorted, destination);
    }

    /// <summary>Writes <c>enc(name)=enc(value)</c> pairs joined with <c>&amp;</c>: a query string or a form body.</summary>
    internal static void WriteEncodedPairs(IEnumerable<AcsParameter> parameters, SensitiveByteBuffer destination)
    {
        bool first = true;
        foreach (var p in parameters)
        {
            if (!first) destination.Append((byte)'&');
            first = false;
            AcsPercentEncoding.Encode(Encoding.UTF8.GetBytes(p.Name), destination);
            destination.Append((byte)'=');
            p.WriteEncodedValue(destination);
        }
    }
}
