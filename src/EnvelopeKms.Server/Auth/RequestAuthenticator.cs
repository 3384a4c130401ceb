using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Auth;

/// <summary>Who signed a request, once the signature has been verified.</summary>
internal sealed record Caller(string AccessKeyId, bool IsTemporary);

/// <summary>
/// Verifies a request the way the POP gateway does: V3 when an <c>Authorization:
/// ACS3-HMAC-SHA256</c> header is present, V1 otherwise. Checks run cheapest first, and the
/// nonce is recorded only after the signature is proven, so unsigned junk cannot burn nonces.
/// </summary>
internal sealed class RequestAuthenticator(CredentialStore credentials, NonceCache nonces, TimeProvider time, TimeSpan timestampWindow)
{
    public Caller Authenticate(KmsRequest request)
    {
        var authorization = request.Header("authorization");
        return authorization is not null && authorization.StartsWith(SignatureV3.Algorithm, StringComparison.Ordinal)
            ? AuthenticateV3(request, authorization)
            : AuthenticateV1(request);
    }

    private Caller AuthenticateV1(KmsRequest request)
    {
        var accessKeyId = Required(request, "AccessKeyId");
        var signature = Required(request, "Signature");
        var timestamp = Required(request, "Timestamp");
        var nonce = Required(request, "SignatureNonce");
        if (request.Parameter("SignatureMethod") is { } method && method != "HMAC-SHA1")
        {
            throw KmsErrors.InvalidParameter("SignatureMethod");
        }
        if (request.Parameter("SignatureVersion") is { } version && version != "1.0")
        {
            throw KmsErrors.InvalidParameter("SignatureVersion");
        }
        CheckTimestamp(timestamp);
        var credential = FindCredential(accessKeyId, request.Parameter("SecurityToken"));

        var stringToSign = SignatureV1.StringToSign(request.Method, request.Parameters);
        var expected = SignatureV1.Sign(credential.AccessKeySecret, stringToSign);
        if (!FixedTimeEquals(expected, signature))
        {
            throw KmsErrors.SignatureDoesNotMatch(stringToSign);
        }
        UseNonce(accessKeyId, nonce);
        return new Caller(accessKeyId, credential.SecurityToken is not null);
    }

    private Caller AuthenticateV3(KmsRequest request, string authorization)
    {
        var fields = ParseAuthorization(authorization);
        if (!fields.TryGetValue("Credential", out var accessKeyId) || accessKeyId.Length == 0
            || !fields.TryGetValue("SignedHeaders", out var signedHeaderList) || signedHeaderList.Length == 0
            || !fields.TryGetValue("Signature", out var signature) || signature.Length == 0)
        {
            throw KmsErrors.IncompleteSignature();
        }
        var signedHeaders = signedHeaderList.Split(';');
        // The headers that carry the call's identity and freshness must be covered by the signature,
        // otherwise they could be swapped on a captured request.
        string[] mustBeSigned = ["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"];
        var mustAlsoSign = request.Header("x-acs-security-token") is null ? mustBeSigned : [.. mustBeSigned, "x-acs-security-token"];
        if (mustAlsoSign.Any(h => !signedHeaders.Contains(h, StringComparer.Ordinal))
            || signedHeaders.Any(h => h != h.ToLowerInvariant() || request.Header(h) is null))
        {
            throw KmsErrors.IncompleteSignature();
        }

        CheckTimestamp(request.Header("x-acs-date")!);
        var credential = FindCredential(accessKeyId, request.Header("x-acs-security-token"));

        var payloadHash = SignatureV3.HexSha256(request.Body);
        if (!string.Equals(request.Header("x-acs-content-sha256"), payloadHash, StringComparison.OrdinalIgnoreCase))
        {
            throw KmsErrors.IncompleteSignature();
        }
        var canonicalRequest = SignatureV3.CanonicalRequest(
            request.Method, request.Query, signedHeaders, name => request.Headers[name], payloadHash);
        var stringToSign = SignatureV3.StringToSign(canonicalRequest);
        var expected = SignatureV3.Sign(credential.AccessKeySecret, stringToSign);
        if (!FixedTimeEquals(expected, signature.ToLowerInvariant()))
        {
            throw KmsErrors.SignatureDoesNotMatch(stringToSign);
        }
        UseNonce(accessKeyId, request.Header("x-acs-signature-nonce")!);
        return new Caller(accessKeyId, credential.SecurityToken is not null);
    }

    private Credential FindCredential(string accessKeyId, string? presentedToken)
    {
        var credential = credentials.Find(accessKeyId) ?? throw KmsErrors.AccessKeyNotFound();
        if (credential.SecurityToken is null)
        {
            return credential;
        }
        if (string.IsNullOrEmpty(presentedToken))
        {
            throw KmsErrors.SecurityTokenMalformed();
        }
        if (!FixedTimeEquals(credential.SecurityToken, presentedToken))
        {
            throw KmsErrors.SecurityTokenMismatch();
        }
        if (credential.Expiration <= time.GetUtcNow())
        {
            throw KmsErrors.SecurityTokenExpired();
        }
        return credential;
    }

    private void CheckTimestamp(string value)
    {
        // The SDKs send yyyy-MM-ddTHH:mm:ssZ; tolerate fractional seconds, still UTC only.
        string[] formats = ["yyyy-MM-dd'T'HH:mm:ss'Z'", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'"];
        if (!DateTimeOffset.TryParseExact(value, formats, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var timestamp))
        {
            throw KmsErrors.TimestampFormat();
        }
        if ((time.GetUtcNow() - timestamp).Duration() > timestampWindow)
        {
            throw KmsErrors.TimestampExpired();
        }
    }

    private void UseNonce(string accessKeyId, string nonce)
    {
        if (!nonces.TryUse(accessKeyId, nonce))
        {
            throw KmsErrors.SignatureNonceUsed();
        }
    }

    private static string Required(KmsRequest request, string name) =>
        request.Parameter(name) is { Length: > 0 } value ? value : throw KmsErrors.MissingParameter(name);

    /// <summary>Parses <c>ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..</c>.</summary>
    private static Dictionary<string, string> ParseAuthorization(string authorization)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in authorization[SignatureV3.Algorithm.Length..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            if (eq > 0)
            {
                fields[part[..eq]] = part[(eq + 1)..];
            }
        }
        return fields;
    }

    private static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}
