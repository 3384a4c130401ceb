using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EnvelopeKms.Credentials;
using EnvelopeKms.Cloud.Signing;

namespace EnvelopeKms.Kms;

/// <summary>Raised before the client waits and tries a call again.</summary>
public sealed class KmsRetryEventArgs : EventArgs
{
    internal KmsRetryEventArgs(string operation, int failedAttempt, TimeSpan delay, KmsException error)
    {
        Operation = operation;
        FailedAttempt = failedAttempt;
        Delay = delay;
        Error = error;
    }

    public string Operation { get; }
    public int FailedAttempt { get; }
    public TimeSpan Delay { get; }
    public KmsException Error { get; }
}

/// <summary>
/// Signs and sends KMS requests, with retries. Each attempt gets a fresh timestamp, nonce and signature. The
/// response body is read into a pinned buffer that the caller parses and then disposes (which wipes it), so a
/// plaintext data key in the body is never copied into a string or left in unmanaged-by-us memory.
/// </summary>
internal sealed class KmsHttpTransport : IDisposable
{
    /// <summary>KMS responses are small; anything larger is not a KMS answer.</summary>
    private const int MaxResponseBytes = 1 << 20;
    private const string FormContentType = "application/x-www-form-urlencoded";
    private static readonly byte[] EchoedStringToSignMarker = "string to sign is"u8.ToArray();

    private readonly KmsClientOptions _options;
    private readonly HttpClient _http;
    private long _retryCount;

    public KmsHttpTransport(KmsClientOptions options, HttpMessageHandler handler)
    {
        _options = options;
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public event EventHandler<KmsRetryEventArgs>? Retrying;

    public long RetryCount => Interlocked.Read(ref _retryCount);

    /// <summary>Sends the request and returns the 2xx body; the caller must dispose it.</summary>
    public async Task<SensitiveByteBuffer> SendAsync(KmsRequest request, CancellationToken cancellationToken)
    {
        int attempt = 0;
        bool refreshedCredentials = false;
        while (true)
        {
            attempt++;
            cancellationToken.ThrowIfCancellationRequested();
            var credentials = await _options.Credentials.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
            KmsException failure;
            using (var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            using (var built = BuildHttpRequest(request, credentials))
            {
                attemptCts.CancelAfter(_options.AttemptTimeout);
                try
                {
                    using var response = await _http.SendAsync(built.Message, HttpCompletionOption.ResponseHeadersRead, attemptCts.Token).ConfigureAwait(false);
                    var body = await ReadBodyAsync(request.Action, response, attemptCts.Token).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode) return body;
                    using (body) failure = ParseError(request, (int)response.StatusCode, body.WrittenSpan, built.DiagnosticStringToSign);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
                catch (OperationCanceledException e)
                {
                    failure = new KmsException(request.Action, KmsErrorKind.Timeout, KmsException.TimeoutCode,
                        $"KMS {request.Action} did not answer within {_options.AttemptTimeout.TotalSeconds:0.###} s ({_options.Endpoint}).", inner: e);
                }
                catch (HttpRequestException e) when (e.InnerException is System.Security.Authentication.AuthenticationException tls)
                {
                    // Said plainly, and never retried: the same certificate will fail the same way.
                    failure = new KmsException(request.Action, KmsErrorKind.Connection, KmsException.ConnectionFailureCode,
                        $"KMS {request.Action}: the TLS connection to {_options.Endpoint} failed, so nothing was sent: {tls.Message} " +
                        "The server's certificate is not trusted for this endpoint. If the endpoint uses a private CA, give that CA certificate " +
                        "for this endpoint only; certificate validation cannot be switched off.", inner: tls);
                }
                catch (HttpRequestException e)
                {
                    failure = new KmsException(request.Action, KmsErrorKind.Connection, KmsException.ConnectionFailureCode,
                        $"KMS {request.Action} could not reach {_options.Endpoint}: {e.Message}", inner: e.InnerException ?? e);
                }
                catch (KmsException e)
                {
                    failure = e;
                }
            }

            failure.Attempts = attempt;
            if (failure.Kind == KmsErrorKind.Service && KmsErrorClassifier.IsExpiredSecurityToken(failure.Code) && !refreshedCredentials)
            {
                // The cached STS token expired between our refresh check and the server's: fetch new ones once.
                refreshedCredentials = true;
                _options.Credentials.Invalidate();
                var fresh = await _options.Credentials.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
                // A source that cannot renew (explicit credentials) hands back the same expired token: sending it
                // again would only fail the same way.
                if (fresh.AccessKeyId == credentials.AccessKeyId && fresh.SecurityToken == credentials.SecurityToken) throw failure;
                attempt--;
                continue;
            }
            if (!failure.IsRetryable || attempt >= _options.Retry.MaxAttempts) throw failure;

            var delay = ComputeBackoff(attempt);
            Interlocked.Increment(ref _retryCount);
            Retrying?.Invoke(this, new KmsRetryEventArgs(request.Action, attempt, delay, failure));
            await Task.Delay(delay, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Full jitter: uniform in [0, min(max, base·2^(attempt-1))].</summary>
    internal TimeSpan ComputeBackoff(int failedAttempt)
    {
        double ceiling = Math.Min(_options.Retry.MaxDelay.TotalMilliseconds,
            _options.Retry.BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(failedAttempt - 1, 30)));
        return TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling);
    }

    private static string NewNonce() => Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();

    private BuiltRequest BuildHttpRequest(KmsRequest request, AlibabaCloudCredentials credentials)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var nonce = NewNonce();
        var baseUri = _options.Endpoint.BaseUri;
        var body = new SensitiveByteBuffer();
        try
        {
            if (_options.SignatureVersion == KmsSignatureVersion.V3)
                return BuildV3(request, credentials, now, nonce, baseUri, body);
            return BuildV1(request, credentials, now, nonce, baseUri, body);
        }
        catch
        {
            body.Dispose();
            throw;
        }
    }

    private BuiltRequest BuildV3(KmsRequest request, AlibabaCloudCredentials credentials, DateTimeOffset now, string nonce, Uri baseUri, SensitiveByteBuffer body)
    {
        // Business parameters go in the query as the SDKs send them; secret ones go in a form body instead,
        // which the signature covers through x-acs-content-sha256.
        var query = request.Parameters.Where(p => !p.IsSecret).Select(p => new KeyValuePair<string, string>(p.Name, p.TextValue)).ToList();
        var secret = request.Parameters.Where(p => p.IsSecret).ToList();
        string? contentType = null;
        if (secret.Count > 0)
        {
            RpcSignatureV1.WriteEncodedPairs(secret, body);
            contentType = FormContentType;
        }
        string payloadHash = AcsSignatureV3.HashPayload(body.WrittenSpan);
        var signed = AcsSignatureV3.Sign("POST", baseUri.Authority, request.Action, KmsRequest.ApiVersion, query, payloadHash,
            contentType, credentials.AccessKeyId, credentials.AccessKeySecret, credentials.SecurityToken, now, nonce);

        var queryString = AcsSignatureV3.BuildCanonicalQueryString(query);
        var message = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, queryString.Length > 0 ? "/?" + queryString : "/"));
        foreach (var (name, value) in signed.Headers)
        {
            if (name is "host" or "content-type") continue; // HttpClient writes Host; Content-Type goes on the content
            message.Headers.TryAddWithoutValidation(name, value);
        }
        message.Headers.TryAddWithoutValidation("Authorization", signed.Authorization);
        AddCommonHeaders(message);
        message.Content = CreateContent(body, contentType);
        return new BuiltRequest(message, body, signed.StringToSign);
    }

    private BuiltRequest BuildV1(KmsRequest request, AlibabaCloudCredentials credentials, DateTimeOffset now, string nonce, Uri baseUri, SensitiveByteBuffer body)
    {
        bool useGet = _options.V1Transport == KmsV1Transport.QueryGet && !request.HasSecret;
        string method = useGet ? "GET" : "POST";
        var all = RpcSignatureV1.SignRequest(method, request.Action, KmsRequest.ApiVersion, request.Parameters,
            credentials.AccessKeyId, credentials.AccessKeySecret, credentials.SecurityToken, now, nonce);
        string? diagnostic = request.HasSecret || credentials.SecurityToken is not null
            ? null
            : RpcSignatureV1.BuildStringToSign(method, all.Where(p => p.Name != RpcSignatureV1.SignatureParameter)
                .Select(p => new KeyValuePair<string, string>(p.Name, p.TextValue)));

        HttpRequestMessage message;
        if (useGet)
        {
            RpcSignatureV1.WriteEncodedPairs(all, body);
            var query = Encoding.ASCII.GetString(body.WrittenSpan);
            body.Dispose();
            body = new SensitiveByteBuffer(16);
            message = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUri, "/?" + query));
        }
        else
        {
            RpcSignatureV1.WriteEncodedPairs(all, body);
            message = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, "/"));
            message.Content = CreateContent(body, FormContentType);
        }
        AddCommonHeaders(message);
        return new BuiltRequest(message, body, diagnostic);
    }

    private void AddCommonHeaders(HttpRequestMessage message)
    {
        message.Headers.TryAddWithoutValidation("User-Agent", _options.UserAgent);
        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    private static HttpContent? CreateContent(SensitiveByteBuffer body, string? contentType)
    {
        if (contentType is null) return null;
        var content = new ReadOnlyMemoryContent(body.WrittenMemory);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return content;
    }

    private static async Task<SensitiveByteBuffer> ReadBodyAsync(string action, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var buffer = new SensitiveByteBuffer(response.Content.Headers.ContentLength is long n and > 0 and < MaxResponseBytes ? (int)n : 4096);
        try
        {
            using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                int read = await stream.ReadAsync(buffer.GetMemory(4096), cancellationToken).ConfigureAwait(false);
                if (read == 0) return buffer;
                buffer.Advance(read);
                if (buffer.Length > MaxResponseBytes)
                {
                    throw new KmsException(action, KmsErrorKind.InvalidResponse, KmsException.InvalidResponseCode,
                        $"KMS {action} returned more than {MaxResponseBytes} bytes; that is not a KMS response.", (int)response.StatusCode);
                }
            }
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Turns an error body (<c>{"Code","Message","RequestId",...}</c>) into a <see cref="KmsException"/>.</summary>
    internal KmsException ParseError(KmsRequest request, int status, ReadOnlySpan<byte> body, string? clientStringToSign)
    {
        string? code = null, message = null, requestId = null, deniedAccount = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    string name = reader.GetString()!;
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject && name.Equals("AccessDeniedDetail", StringComparison.OrdinalIgnoreCase))
                    {
                        deniedAccount = ReadPrincipalOwner(ref reader);
                        continue;
                    }
                    if (reader.TokenType != JsonTokenType.String) { reader.Skip(); continue; }
                    if (name.Equals("Code", StringComparison.OrdinalIgnoreCase)) code = reader.GetString();
                    else if (name.Equals("Message", StringComparison.OrdinalIgnoreCase)) message = ReadSanitisedMessage(ref reader);
                    else if (name.Equals("RequestId", StringComparison.OrdinalIgnoreCase)) requestId = reader.GetString();
                }
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: GetString on a name or value that is not valid UTF-8.
            code = null;
        }

        if (string.IsNullOrEmpty(code))
        {
            return new KmsException(request.Action, KmsErrorKind.InvalidResponse, KmsException.InvalidResponseCode,
                $"KMS {request.Action} failed with HTTP {status} and a body that is not a KMS error ({_options.Endpoint}).", status);
        }

        string text;
        KmsRequiredPermission? needed = null;
        if (KmsErrorClassifier.IsPermissionDenied(code))
        {
            // Said as the fix: which action on which resource to grant, from the request we made.
            needed = KmsRequiredPermission.For(request, _options.Endpoint.RegionId, deniedAccount);
            text = $"KMS {request.Action} was refused by RAM: this needs {needed} ({code}, HTTP {status}" + (message is null ? ")." : $": {message.TrimEnd('.')}).");
        }
        else if (KmsErrorClassifier.IsClockSkew(code))
        {
            text = $"KMS {request.Action} failed: {code} (HTTP {status}). The request timestamp was rejected, which means the local clock " +
                   $"is skewed: this machine's UTC time is {_options.TimeProvider.GetUtcNow():yyyy-MM-ddTHH:mm:ssZ} and KMS accepts only " +
                   "about 15 minutes of difference. Synchronise the system clock (NTP) and try again.";
        }
        else
        {
            text = $"KMS {request.Action} failed: {code} (HTTP {status})" + (message is null ? "." : $": {message}");
        }
        if (requestId is not null) text += $" RequestId: {requestId}.";
        var exception = new KmsException(request.Action, KmsErrorKind.Service, code, text, status, requestId, message);
        if (code.Equals("SignatureDoesNotMatch", StringComparison.OrdinalIgnoreCase)) exception.ClientStringToSign = clientStringToSign;
        exception.RequiredPermission = needed;
        return exception;
    }

    /// <summary>
    /// Reads <c>AccessDeniedDetail</c> (the object the gateway adds to a RAM denial) for the one field the message
    /// uses, the caller's account id, which completes the ARN of a key the request named by id. Only an account id
    /// of digits is taken: the body is the server's, and its text must not be able to shape our message freely.
    /// </summary>
    private static string? ReadPrincipalOwner(ref Utf8JsonReader reader)
    {
        string? owner = null;
        int depth = reader.CurrentDepth;
        while (reader.Read() && !(reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth))
        {
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != depth + 1) continue;
            bool isOwner = reader.ValueTextEquals("AuthPrincipalOwnerId"u8);
            reader.Read();
            if (isOwner && reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 and <= 32 } value && value.All(char.IsAsciiDigit))
                owner = value;
            else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                reader.Skip();
        }
        return owner;
    }

    /// <summary>
    /// Reads the service message without its echoed "server string to sign", which for V1 contains every
    /// parameter (a Plaintext or security token among them), and caps its length.
    /// </summary>
    private static string ReadSanitisedMessage(ref Utf8JsonReader reader)
    {
        int max = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var scratch = Keys.SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(Math.Max(1, max), pinned: true));
        try
        {
            int n = reader.CopyString(scratch);
            var value = scratch.AsSpan(0, n);
            int cut = value.IndexOf(EchoedStringToSignMarker);
            if (cut >= 0) value = value[..cut];
            var text = Encoding.UTF8.GetString(value).Trim();
            if (cut >= 0) text += " string to sign is: <omitted>";
            return text.Length > 500 ? text[..500] + "…" : text;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>An HTTP request and the body buffer it reads from; disposing wipes the body.</summary>
    private sealed class BuiltRequest : IDisposable
    {
        public BuiltRequest(HttpRequestMessage message, SensitiveByteBuffer body, string? diagnosticStringToSign)
        {
            Message = message;
            Body = body;
            DiagnosticStringToSign = diagnosticStringToSign;
        }

        public HttpRequestMessage Message { get; }
        public SensitiveByteBuffer Body { get; }
        public string? DiagnosticStringToSign { get; }

        public void Dispose()
        {
            Message.Dispose();
            Body.Dispose();
        }
    }
}
