using System.Text;
using EnvelopeKms.Server.Auth;
using EnvelopeKms.Server.Faults;
using EnvelopeKms.Server.Operations;
using EnvelopeKms.Server.Protocol;
using Microsoft.AspNetCore.Http;

namespace EnvelopeKms.Server.Hosting;

/// <summary>
/// One API call end to end: read the request, find the action, authenticate, apply injected
/// faults, run the operation, answer in the gateway's JSON shape, and count the outcome.
/// </summary>
internal sealed class ApiRequestHandler(OperationRegistry operations, RequestAuthenticator authenticator, RamAuthorizer? authorizer, FaultInjector faults, OperationStats stats)
{
    /// <summary>Bodies are small form posts; anything bigger is not a KMS request.</summary>
    private const int MaxBodyBytes = 1 << 20;

    public async Task Handle(HttpContext context)
    {
        var requestId = Guid.NewGuid().ToString("D").ToUpperInvariant();
        var action = "(unknown)";
        var product = "Kms";
        try
        {
            if (context.Request.Path.Value is not (null or "" or "/"))
            {
                throw KmsErrors.ActionNotFound();
            }
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsPost(context.Request.Method))
            {
                throw KmsErrors.UnsupportedHttpMethod();
            }
            var request = await ReadRequest(context);
            action = request.Action ?? throw KmsErrors.MissingParameter("Action");
            var version = request.Version ?? throw KmsErrors.MissingParameter("Version");
            if (version == OperationRegistry.StsVersion)
            {
                product = "Sts";
            }
            if (!operations.IsKnownVersion(version))
            {
                throw KmsErrors.InvalidVersion();
            }
            var handler = operations.Find(version, action) ?? throw KmsErrors.ActionNotFound();
            var caller = authenticator.Authenticate(request);
            // RAM policies, when a policy file is given; like the gateway, before throttling and the operation.
            authorizer?.Authorize(caller, version, action, request, context.Connection.RemoteIpAddress, context.Request.IsHttps);

            var fault = faults.Decide(action);
            if (fault.Delay > TimeSpan.Zero)
            {
                await Task.Delay(fault.Delay, context.RequestAborted);
            }
            switch (fault.Outcome)
            {
                case FaultOutcome.Drop:
                    stats.Dropped(action);
                    context.Abort();
                    return;
                case FaultOutcome.Throttle:
                    throw KmsErrors.Throttled(fault.ThrottleCode);
                case FaultOutcome.Error:
                    throw fault.ErrorStatus == 500 ? KmsErrors.InternalFailure() : KmsErrors.ServiceUnavailable();
            }

            var body = handler(request);
            stats.Success(action);
            await ApiResponses.WriteSuccess(context, requestId, body);
        }
        catch (KmsException error)
        {
            stats.Failure(action, error.Code);
            await ApiResponses.WriteError(context, requestId, error, product);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away (e.g. during injected latency); there is nobody to answer.
        }
        catch (Exception)
        {
            // Never leak internals (paths, key material) in an error body.
            stats.Failure(action, "InternalFailure");
            await ApiResponses.WriteError(context, requestId, KmsErrors.InternalFailure(), product);
        }
    }

    private static async Task<KmsRequest> ReadRequest(HttpContext context)
    {
        var body = await ReadBody(context.Request);
        var query = PercentEncoding.ParsePairs(context.Request.QueryString.HasValue ? context.Request.QueryString.Value![1..] : string.Empty);
        var form = context.Request.ContentType is { } contentType
                   && contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase)
            ? PercentEncoding.ParsePairs(Encoding.UTF8.GetString(body))
            : [];
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in query.Concat(form))
        {
            parameters.TryAdd(name, value);
        }
        var headers = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name.ToLowerInvariant()] = values.Where(v => v is not null).Select(v => v!).ToArray();
        }
        return new KmsRequest
        {
            Method = context.Request.Method,
            Query = query,
            Headers = headers,
            Body = body,
            Parameters = parameters,
        };
    }

    private static async Task<byte[]> ReadBody(HttpRequest request)
    {
        // A declared length past the limit is refused before reading: Kestrel itself would throw for one past its
        // own 30 MB limit on the first read, and that surfaced as a 500 InternalFailure (issue 18).
        if (request.ContentLength > MaxBodyBytes)
        {
            throw BodyTooLarge();
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        try
        {
            while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
            {
                if (buffer.Length + read > MaxBodyBytes)
                {
                    throw BodyTooLarge();
                }
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException)
        {
            // A malformed body (bad chunking, fewer bytes than declared): the client's fault, not the server's.
            throw BodyTooLarge();
        }
        return buffer.ToArray();
    }

    /// <summary>The gateway's answer to parameters it cannot parse (the real limit and its error are not documented).</summary>
    private static KmsException BodyTooLarge() =>
        new(400, "ParseRequestParameterException", "Server parse parameters exception. Please check your input params.");
}
