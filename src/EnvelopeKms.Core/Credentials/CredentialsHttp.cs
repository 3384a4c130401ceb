using System.Globalization;
using System.Text.Json;

namespace EnvelopeKms.Credentials;

/// <summary>HTTP plumbing shared by the sources that call a service, and the parser of their credential JSON.</summary>
internal static class CredentialsHttp
{
    /// <summary>For STS and credentials URIs (system proxy settings apply).</summary>
    public static readonly HttpClient Default = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>For the link-local metadata service, which must never be reached through a proxy.</summary>
    public static readonly HttpClient NoProxy = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Sends with a timeout and returns status and body; a timeout or connection failure throws <see cref="HttpRequestException"/>.</summary>
    public static async Task<(int Status, byte[] Body)> SendAsync(HttpClient client, HttpRequestMessage request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            return ((int)response.StatusCode, await ReadBoundedAsync(response, request, cts.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new HttpRequestException($"no answer within {timeout.TotalSeconds:0.###} s", e);
        }
    }

    /// <summary>Largest answer read from a credentials service: real ones are under 2 KiB.</summary>
    public const int MaxResponseBytes = 64 * 1024;

    /// <summary>
    /// The body, refused past <see cref="MaxResponseBytes"/> (declared or actual) before more is read: a hostile or
    /// broken service cannot make the client buffer and parse hundreds of megabytes.
    /// </summary>
    private static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > MaxResponseBytes) throw TooLarge(request);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[MaxResponseBytes + 1];
        int total = 0, n;
        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0) total += n;
        if (total > MaxResponseBytes) throw TooLarge(request);
        return buffer[..total];
    }

    private static CredentialsException TooLarge(HttpRequestMessage request)
        => new($"The answer from {request.RequestUri?.Host} is larger than {MaxResponseBytes / 1024} KiB; a credentials answer is a few hundred bytes.");

    /// <summary>
    /// Reads <c>AccessKeyId</c>, <c>AccessKeySecret</c>, <c>SecurityToken</c>, <c>Expiration</c> from the object
    /// itself or from its <c>Credentials</c> member (the STS shape).
    /// </summary>
    public static AlibabaCloudCredentials ParseCredentials(byte[] body, string source)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            // TryGetProperty throws InvalidOperationException on anything but an object (found by fuzzing: "1").
            if (root.ValueKind != JsonValueKind.Object)
                throw new CredentialsException($"{source} answered with JSON that is not an object.");
            if (root.TryGetProperty("Credentials", out var inner) && inner.ValueKind == JsonValueKind.Object) root = inner;
            string? id = GetString(root, "AccessKeyId"), secret = GetString(root, "AccessKeySecret");
            if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(secret))
                throw new CredentialsException($"{source} answered without AccessKeyId/AccessKeySecret.");
            DateTimeOffset? expiration = null;
            if (GetString(root, "Expiration") is { Length: > 0 } text)
            {
                if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
                    throw new CredentialsException($"{source} answered with an unreadable Expiration '{text}'.");
                expiration = parsed;
            }
            return new AlibabaCloudCredentials(id, secret, GetString(root, "SecurityToken"), expiration);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: JsonElement.GetString on a string that is not valid UTF-8.
            throw new CredentialsException($"{source} answered with something that is not JSON.", e);
        }
    }

    /// <summary>
    /// An error body's Code (only when it looks like one) and, with <paramref name="includeMessage"/>, its Message, for
    /// messages; never the rest of the body. A credentials URI is any service: its Message is not echoed at all (one
    /// carried a token into an error record), and neither is a Code that is not a plain identifier.
    /// </summary>
    public static string DescribeError(int status, byte[] body, bool includeMessage = true)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var code = GetString(document.RootElement, "Code");
            if (code is not null && !IsErrorCode(code)) code = null;
            var message = includeMessage ? GetString(document.RootElement, "Message") : null;
            if (message is not null)
            {
                int cut = message.IndexOf("string to sign is", StringComparison.OrdinalIgnoreCase);
                if (cut >= 0) message = message[..cut] + "string to sign is: <omitted>";
                if (message.Length > 300) message = message[..300] + "…";
            }
            return $"HTTP {status}" + (code is null ? "" : $", {code}") + (message is null ? "" : $": {message}");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return $"HTTP {status}";
        }
    }

    /// <summary>Error codes are identifiers such as <c>InvalidAccessKeyId.NotFound</c>: letters, digits, '.', '_', '-'.</summary>
    private static bool IsErrorCode(string code) => code.Length is > 0 and <= 64 && code.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static string? GetString(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
