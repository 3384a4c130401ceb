using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace EnvelopeKms.Server.Tests.Infrastructure;

/// <summary>Where the signed parameters travel, covering every shape the official clients send.</summary>
public enum SigningMode
{
    /// <summary>V1, GET, everything in the query (pop-core default, aliyun CLI).</summary>
    V1Get,

    /// <summary>V1, POST, everything in the query and an empty body (openapi-client 'v2', rpc-client).</summary>
    V1PostQuery,

    /// <summary>V1, POST, everything including Signature in a form body (pop-core POST).</summary>
    V1PostForm,

    /// <summary>V1, POST, common parameters in the query, business parameters in a form body (STS AssumeRole).</summary>
    V1Mixed,

    /// <summary>V3 ACS3-HMAC-SHA256, business parameters in the query (current generated SDKs).</summary>
    V3,

    /// <summary>V3 with the business parameters in a signed form body (exercises the payload hash).</summary>
    V3Form,
}

/// <summary>The status, body and request-id header of one answer.</summary>
public sealed record ApiResponse(int Status, JsonElement Body, string? RequestIdHeader)
{
    public string? Code => Body.TryGetProperty("Code", out var code) ? code.GetString() : null;

    public string? Message => Body.TryGetProperty("Message", out var message) ? message.GetString() : null;

    public string Get(string name) => Body.GetProperty(name).GetString()!;

    public override string ToString() => $"{Status} {Body}";
}

/// <summary>Optional deviations from a correctly signed request, for the error-path tests.</summary>
public sealed record Tweaks
{
    public string? Timestamp { get; init; }

    public string? Nonce { get; init; }

    /// <summary>Sign with this secret instead of the real one.</summary>
    public string? SigningSecret { get; init; }

    /// <summary>Applied to the request after signing (tampering).</summary>
    public Action<HttpRequestMessage>? AfterSigning { get; init; }
}

/// <summary>Signs and sends KMS/STS requests over real HTTP, with <see cref="TestSigner"/>.</summary>
public sealed class KmsTestClient(HttpClient http, Uri endpoint, TimeProvider clock, string accessKeyId, string secret, string? securityToken, SigningMode mode)
{
    public const string KmsVersion = "2016-01-20";

    public Task<ApiResponse> Call(string action, IDictionary<string, string>? parameters = null, Tweaks? tweaks = null, string version = KmsVersion) =>
        Send(Build(action, parameters ?? new Dictionary<string, string>(), tweaks ?? new Tweaks(), version));

    /// <summary>Calls and asserts success (200), returning the body.</summary>
    public async Task<ApiResponse> Ok(string action, IDictionary<string, string>? parameters = null)
    {
        var response = await Call(action, parameters);
        Xunit.Assert.True(response.Status == 200, $"{action} failed: {response}");
        return response;
    }

    public HttpRequestMessage Build(string action, IDictionary<string, string> business, Tweaks tweaks, string version = KmsVersion)
    {
        var timestamp = tweaks.Timestamp ?? clock.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var nonce = tweaks.Nonce ?? Guid.NewGuid().ToString("N");
        var signingSecret = tweaks.SigningSecret ?? secret;
        var request = mode is SigningMode.V3 or SigningMode.V3Form
            ? BuildV3(action, version, business, timestamp, nonce, signingSecret)
            : BuildV1(action, version, business, timestamp, nonce, signingSecret);
        tweaks.AfterSigning?.Invoke(request);
        return request;
    }

    public async Task<ApiResponse> Send(HttpRequestMessage request)
    {
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        var requestId = response.Headers.TryGetValues("x-acs-request-id", out var values) ? values.First() : null;
        return new ApiResponse((int)response.StatusCode, body, requestId);
    }

    private HttpRequestMessage BuildV1(string action, string version, IDictionary<string, string> business, string timestamp, string nonce, string signingSecret)
    {
        var common = new Dictionary<string, string>
        {
            ["Action"] = action,
            ["Version"] = version,
            ["Format"] = "JSON",
            ["AccessKeyId"] = accessKeyId,
            ["SignatureMethod"] = "HMAC-SHA1",
            ["SignatureVersion"] = "1.0",
            ["SignatureNonce"] = nonce,
            ["Timestamp"] = timestamp,
        };
        if (securityToken is not null)
        {
            common["SecurityToken"] = securityToken;
        }
        var method = mode == SigningMode.V1Get ? "GET" : "POST";
        var all = common.Concat(business).ToList();
        common["Signature"] = TestSigner.V1Signature(signingSecret, TestSigner.V1StringToSign(method, all));
        var signature = common["Signature"];

        return mode switch
        {
            SigningMode.V1Get => new HttpRequestMessage(HttpMethod.Get, Url([.. all, new("Signature", signature)])),
            SigningMode.V1PostQuery => new HttpRequestMessage(HttpMethod.Post, Url([.. all, new("Signature", signature)])),
            SigningMode.V1PostForm => new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = Form([.. all, new("Signature", signature)]) },
            _ => new HttpRequestMessage(HttpMethod.Post, Url(common)) { Content = Form(business) },
        };
    }

    private HttpRequestMessage BuildV3(string action, string version, IDictionary<string, string> business, string timestamp, string nonce, string signingSecret)
    {
        var inForm = mode == SigningMode.V3Form;
        var content = inForm ? Form(business) : null;
        var body = content is null ? [] : content.ReadAsByteArrayAsync().GetAwaiter().GetResult();
        var payloadHash = TestSigner.Sha256Hex(body);
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["host"] = endpoint.Authority,
            ["x-acs-action"] = action,
            ["x-acs-version"] = version,
            ["x-acs-date"] = timestamp,
            ["x-acs-signature-nonce"] = nonce,
            ["x-acs-content-sha256"] = payloadHash,
        };
        if (securityToken is not null)
        {
            headers["x-acs-security-token"] = securityToken;
            headers["x-acs-accesskey-id"] = accessKeyId;
        }
        if (content is not null)
        {
            headers["content-type"] = content.Headers.ContentType!.ToString();
        }
        var query = inForm ? [] : business.ToList();
        var canonical = TestSigner.V3CanonicalRequest("POST", query, headers, payloadHash);
        var signature = TestSigner.V3Signature(signingSecret, TestSigner.V3StringToSign(canonical));

        var request = new HttpRequestMessage(HttpMethod.Post, Url(query)) { Content = content };
        foreach (var (name, value) in headers.Where(h => h.Key is not ("host" or "content-type")))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        request.Headers.TryAddWithoutValidation("Authorization",
            $"ACS3-HMAC-SHA256 Credential={accessKeyId},SignedHeaders={string.Join(";", headers.Keys)},Signature={signature}");
        return request;
    }

    private Uri Url(IEnumerable<KeyValuePair<string, string>> query)
    {
        var text = string.Join("&", query.Select(p => $"{TestSigner.Encode(p.Key)}={TestSigner.Encode(p.Value)}"));
        return new Uri(endpoint, text.Length == 0 ? "/" : "/?" + text);
    }

    private static ByteArrayContent Form(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var text = string.Join("&", pairs.Select(p => $"{TestSigner.Encode(p.Key)}={TestSigner.Encode(p.Value)}"));
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");
        return content;
    }
}
