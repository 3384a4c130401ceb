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
            using var response = await client.SendAsync(request, cts.Token).ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false);
            return ((int)response.StatusCode, body);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new HttpRequestException($"no answer within {timeout.TotalSeconds:0.###} s", e);
        }
    }

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

    /// <summary>An error body's Code and Message, for messages; never the rest of the body.</summary>
    public static string DescribeError(int status, byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var code = GetString(document.RootElement, "Code");
            var message = GetString(document.RootElement, "Message");
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

    private static string? GetString(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
