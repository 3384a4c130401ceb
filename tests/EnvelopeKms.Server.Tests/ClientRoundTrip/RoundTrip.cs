using System.Net.Http.Json;
using System.Text.Json;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Hosting;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>How our <see cref="KmsClient"/> signs and carries a request.</summary>
public enum ClientMode
{
    /// <summary>ACS3-HMAC-SHA256, the default.</summary>
    V3,

    /// <summary>HMAC-SHA1, everything in a form POST body.</summary>
    V1FormPost,

    /// <summary>HMAC-SHA1, everything in the query of a GET.</summary>
    V1QueryGet,
}

/// <summary>
/// An in-process <see cref="KmsServer"/> (through <see cref="TestServer"/>: port 0, temp data directory, manual
/// clock, control endpoint on) plus factories for our real <see cref="KmsClient"/> pointed at it over loopback HTTP.
/// </summary>
internal sealed class RoundTrip : IAsyncDisposable
{
    public const string RoleArn = "acs:ram::1234567890123456:role/roundtrip";

    private readonly List<IDisposable> owned = [];

    private RoundTrip(TestServer server) => Server = server;

    public TestServer Server { get; }

    public Uri Endpoint => Server.Endpoint;

    /// <summary>The server's clock. It does not move by itself; tests advance it.</summary>
    public ManualClock Clock => Server.Clock;

    public static async Task<RoundTrip> StartAsync(Action<KmsServerOptions>? configure = null) =>
        new(await TestServer.StartAsync(configure));

    /// <summary>The development pair the server accepts by default.</summary>
    public static ICredentialsProvider DevCredentials() =>
        new StaticCredentialsProvider(KmsServerOptions.DefaultAccessKeyId, KmsServerOptions.DefaultAccessKeySecret);

    /// <summary>Fast retries so fault tests run in milliseconds; the policy itself is what's under test.</summary>
    public static KmsRetryOptions FastRetry(int maxAttempts = 5) => new()
    {
        MaxAttempts = maxAttempts,
        BaseDelay = TimeSpan.FromMilliseconds(5),
        MaxDelay = TimeSpan.FromMilliseconds(20),
    };

    /// <summary>Our client against this server. The client's clock defaults to the server's, so timestamps agree.</summary>
    public KmsClient Client(ClientMode mode = ClientMode.V3, ICredentialsProvider? credentials = null, KmsRetryOptions? retry = null,
        TimeProvider? time = null, TimeSpan? attemptTimeout = null, Uri? endpoint = null)
    {
        var client = new KmsClient(new KmsClientOptions
        {
            Endpoint = KmsEndpoint.FromUrl((endpoint ?? Endpoint).GetLeftPart(UriPartial.Authority), "cn-hangzhou"),
            Credentials = credentials ?? DevCredentials(),
            SignatureVersion = mode == ClientMode.V3 ? KmsSignatureVersion.V3 : KmsSignatureVersion.V1,
            V1Transport = mode == ClientMode.V1QueryGet ? KmsV1Transport.QueryGet : KmsV1Transport.FormPost,
            Retry = retry ?? FastRetry(),
            TimeProvider = time ?? Clock,
            AttemptTimeout = attemptTimeout ?? TimeSpan.FromSeconds(30),
        });
        owned.Add(client);
        return client;
    }

    /// <summary>Our STS provider, calling AssumeRole on this same server with the development pair.</summary>
    public StsAssumeRoleCredentialsProvider Sts(TimeProvider? time = null, int durationSeconds = 3600) =>
        new(DevCredentials(), RoleArn, "roundtrip", durationSeconds, stsEndpoint: Endpoint,
            options: new CredentialResolutionOptions { TimeProvider = time ?? Clock, StsEndpoint = Endpoint });

    // ---- control endpoint -----------------------------------------------------------------------------------

    public async Task SetFaultsAsync(object settings)
    {
        using var response = await Server.Http.PostAsync(new Uri(Endpoint, "/__control/faults"), JsonContent.Create(settings));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Synchronous, for use inside <see cref="KmsClient.Retrying"/> handlers (which run before the wait).</summary>
    public void SetFaults(object settings)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Endpoint, "/__control/faults")) { Content = JsonContent.Create(settings) };
        using var response = Server.Http.Send(request);
        Assert.True(response.IsSuccessStatusCode, $"setting faults failed: {(int)response.StatusCode}");
    }

    public Task ClearFaultsAsync() => SetFaultsAsync(new { });

    public async Task ResetStatsAsync()
    {
        using var response = await Server.Http.PostAsync(new Uri(Endpoint, "/__control/reset-stats"), content: null);
        response.EnsureSuccessStatusCode();
    }

    public async Task<ServerStats> StatsAsync() =>
        new(JsonDocument.Parse(await Server.Http.GetStringAsync(new Uri(Endpoint, "/__control/stats"))).RootElement.Clone());

    public async ValueTask DisposeAsync()
    {
        foreach (var item in owned)
        {
            item.Dispose();
        }
        await Server.DisposeAsync();
    }
}

/// <summary>The server's per-action counters (<c>GET /__control/stats</c>).</summary>
internal sealed record ServerStats(JsonElement Root)
{
    public OperationCounts For(string action) =>
        Root.GetProperty("operations").TryGetProperty(action, out var op)
            ? new OperationCounts(op.GetProperty("success").GetInt64(), op.GetProperty("failure").GetInt64(), op.GetProperty("dropped").GetInt64(),
                op.GetProperty("errors").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64()))
            : new OperationCounts(0, 0, 0, []);

    /// <summary>Every call the server saw for the action, whatever the outcome.</summary>
    public long Calls(string action) => For(action) is var c ? c.Success + c.Failure + c.Dropped : 0;

    public long TotalCalls
    {
        get
        {
            var totals = Root.GetProperty("totals");
            return totals.GetProperty("success").GetInt64() + totals.GetProperty("failure").GetInt64() + totals.GetProperty("dropped").GetInt64();
        }
    }

    public override string ToString() => Root.ToString();
}

internal sealed record OperationCounts(long Success, long Failure, long Dropped, Dictionary<string, long> Errors)
{
    public long Error(string code) => Errors.GetValueOrDefault(code);
}

/// <summary>A clock that reads another clock plus a fixed offset (a skewed client machine).</summary>
internal sealed class ShiftedClock(TimeProvider inner, TimeSpan offset) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => inner.GetUtcNow() + offset;
}
