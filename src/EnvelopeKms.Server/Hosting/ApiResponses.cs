using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using EnvelopeKms.Server.Protocol;
using Microsoft.AspNetCore.Http;

namespace EnvelopeKms.Server.Hosting;

/// <summary>Writes success and error bodies in the POP gateway's JSON shape with its headers.</summary>
internal static class ApiResponses
{
    public const string RequestIdHeader = "x-acs-request-id";

    public static Task WriteSuccess(HttpContext context, string requestId, JsonObject body)
    {
        body["RequestId"] = requestId;
        return Write(context, 200, requestId, body);
    }

    public static Task WriteError(HttpContext context, string requestId, KmsException error, string product)
    {
        var host = context.Request.Host.HasValue ? context.Request.Host.Value! : "localhost";
        var body = new JsonObject
        {
            ["RequestId"] = requestId,
            ["HostId"] = host,
            ["Code"] = error.Code,
            ["Message"] = error.Message,
            ["Recommend"] = $"https://api.aliyun.com/troubleshoot?q={Uri.EscapeDataString(error.Code)}&product={product}&requestId={requestId}",
        };
        if (error.AccessDeniedDetail is { } detail)
        {
            body["AccessDeniedDetail"] = detail.DeepClone();
        }
        return Write(context, error.HttpStatus, requestId, body);
    }

    public static Task WriteJson(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json;charset=utf-8";
        return context.Response.WriteAsync(body.ToJsonString(JsonOptions), context.RequestAborted);
    }

    private static Task Write(HttpContext context, int status, string requestId, JsonObject body)
    {
        context.Response.Headers[RequestIdHeader] = requestId;
        return WriteJson(context, status, body);
    }

    // Relaxed escaping keeps base64 '+' readable; these bodies are JSON for API clients, never HTML.
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
