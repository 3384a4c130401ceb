using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EnvelopeKms.Server.Faults;
using Microsoft.AspNetCore.Http;

namespace EnvelopeKms.Server.Hosting;

/// <summary>
/// <c>/__control/*</c> for reliability tests: <c>GET|POST /__control/faults</c>,
/// <c>GET /__control/stats</c>, <c>POST /__control/reset-stats</c>. Served only when enabled, and
/// then only to callers presenting the admin token, or, when no token is configured, to loopback
/// callers: it can make the server misbehave, so it must not be open to the network.
/// </summary>
internal sealed class ControlEndpoint(FaultInjector faults, OperationStats stats, bool enabled, string? adminToken)
{
    public const string PathPrefix = "/__control/";
    public const string AdminTokenHeader = "X-EnvelopeKms-Admin-Token";

    public static bool IsControlPath(HttpContext context) =>
        context.Request.Path.Value?.StartsWith(PathPrefix, StringComparison.Ordinal) == true;

    /// <summary>False when control is disabled, so the caller treats the path like any unknown one.</summary>
    public async Task<bool> TryHandle(HttpContext context)
    {
        if (!enabled)
        {
            return false;
        }
        if (!IsAuthorized(context))
        {
            await ApiResponses.WriteJson(context, 403, new JsonObject { ["error"] = "control access denied" });
            return true;
        }
        var route = context.Request.Path.Value![PathPrefix.Length..];
        var method = context.Request.Method;
        switch (route)
        {
            case "faults" when HttpMethods.IsGet(method):
                await ApiResponses.WriteJson(context, 200, JsonSerializer.SerializeToNode(faults.Current)!);
                break;
            case "faults" when HttpMethods.IsPost(method):
                await SetFaults(context);
                break;
            case "stats" when HttpMethods.IsGet(method):
                await ApiResponses.WriteJson(context, 200, stats.Snapshot());
                break;
            case "reset-stats" when HttpMethods.IsPost(method):
                stats.Reset();
                await ApiResponses.WriteJson(context, 200, stats.Snapshot());
                break;
            default:
                await ApiResponses.WriteJson(context, 404, new JsonObject { ["error"] = $"no control route {method} {PathPrefix}{route}" });
                break;
        }
        return true;
    }

    private async Task SetFaults(HttpContext context)
    {
        try
        {
            var settings = await JsonSerializer.DeserializeAsync<FaultSettings>(context.Request.Body, cancellationToken: context.RequestAborted)
                ?? throw new ArgumentException("body must be a JSON object");
            faults.Configure(settings);
        }
        catch (Exception error) when (error is JsonException or ArgumentException)
        {
            await ApiResponses.WriteJson(context, 400, new JsonObject { ["error"] = error.Message });
            return;
        }
        await ApiResponses.WriteJson(context, 200, JsonSerializer.SerializeToNode(faults.Current)!);
    }

    private bool IsAuthorized(HttpContext context)
    {
        if (adminToken is not null)
        {
            var presented = context.Request.Headers[AdminTokenHeader].ToString();
            return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(adminToken));
        }
        return context.Connection.RemoteIpAddress is { } remote && IPAddress.IsLoopback(remote);
    }
}
