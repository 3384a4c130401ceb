using System.Collections.Concurrent;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.Kms;

public sealed class KmsRegionalClientsOptions
{
    /// <summary>
    /// Explicit endpoints of regions (region id → endpoint): VPC endpoints, KMS instances, local servers. Keys must
    /// be region ids such as <c>cn-shanghai</c>. Build each with <see cref="KmsEndpoint.FromUrl"/> (which carries its
    /// CA certificate, if any).
    /// </summary>
    public IReadOnlyDictionary<string, KmsEndpoint>? RegionEndpoints { get; init; }

    /// <summary>Allow plain http to a non-loopback host for the <see cref="RegionEndpoints"/> (as KmsClientOptions.AllowInsecureHttp).</summary>
    public bool AllowInsecureHttp { get; init; }

    /// <summary>For a region without an explicit endpoint: <c>kms-vpc.&lt;region&gt;.aliyuncs.com</c> instead of <c>kms.&lt;region&gt;…</c>.</summary>
    public bool UseVpcEndpoint { get; init; }

    /// <summary>Every region goes to the home client: one endpoint only, no routing.</summary>
    public bool SingleEndpoint { get; init; }

    /// <summary>Called once for each regional client created (on whatever thread first needed it).</summary>
    public Action<KmsClient>? ClientCreated { get; init; }
}

/// <summary>
/// The KMS clients of one connection, one per region. The home client is the connection's own endpoint; a client
/// for any other region is made on first use and shares the home client's credentials source, signature version,
/// retry policy, timeouts and clock. A region's endpoint is the one given for it in
/// <see cref="KmsRegionalClientsOptions.RegionEndpoints"/>, else the standard public endpoint
/// <c>https://kms.&lt;region&gt;.aliyuncs.com</c> (the rule <see cref="KmsEndpoint.ForRegion"/> applies to the home
/// region too). When the home endpoint's region is unknown (an explicit endpoint with no region), a region without
/// an explicit endpoint is taken to be served by the home endpoint: there is no way to tell it is another one.
/// Thread-safe. Disposing disposes the regional clients it made, not the home client.
/// </summary>
public sealed class KmsRegionalClients : IDisposable
{
    private readonly KmsRegionalClientsOptions _options;
    private readonly Dictionary<string, KmsEndpoint> _endpoints = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, Lazy<KmsClient>> _clients = new(StringComparer.OrdinalIgnoreCase);
    private volatile bool _disposed;

    public KmsRegionalClients(KmsClient home, KmsRegionalClientsOptions? options = null)
    {
        Home = home ?? throw new ArgumentNullException(nameof(home));
        _options = options ?? new KmsRegionalClientsOptions();
        foreach (var (region, endpoint) in _options.RegionEndpoints ?? new Dictionary<string, KmsEndpoint>())
        {
            if (!RegionIds.IsValid(region))
                throw new KmsConfigurationException($"'{region}' is not a region id such as cn-shanghai; region endpoints are keyed by region id.");
            ArgumentNullException.ThrowIfNull(endpoint);
            endpoint.EnsureTransportAllowed(_options.AllowInsecureHttp);
            if (!_endpoints.TryAdd(region, endpoint))
                throw new KmsConfigurationException($"The region '{region}' is given more than once.");
        }
    }

    /// <summary>A set that sends everything to <paramref name="client"/> (no routing).</summary>
    public static KmsRegionalClients Single(KmsClient client) => new(client, new KmsRegionalClientsOptions { SingleEndpoint = true });

    /// <summary>The connection's own client.</summary>
    public KmsClient Home { get; }

    /// <summary>The home endpoint's region, when known.</summary>
    public string? HomeRegion => Home.Endpoint.RegionId;

    /// <summary>The explicit region endpoints.</summary>
    public IReadOnlyDictionary<string, KmsEndpoint> RegionEndpoints => _endpoints;

    /// <summary>The regional clients made so far (the home client not included).</summary>
    public IReadOnlyList<KmsClient> RegionalClients
        => _clients.Values.Where(l => l.IsValueCreated).Select(l => l.Value).ToList();

    /// <summary>Retries over the home client and every regional client.</summary>
    public long RetryCount => Home.RetryCount + RegionalClients.Sum(c => c.RetryCount);

    /// <summary>True when <paramref name="region"/> is served by the home client.</summary>
    public bool IsHome(string? region)
    {
        if (_options.SingleEndpoint || string.IsNullOrEmpty(region)) return true;
        if (HomeRegion is { } home && string.Equals(region, home, StringComparison.OrdinalIgnoreCase)) return true;
        return HomeRegion is null && !_endpoints.ContainsKey(region);
    }

    /// <summary>
    /// The endpoint that serves <paramref name="region"/>, without making a client. Throws
    /// <see cref="KmsConfigurationException"/> when no endpoint is known (a region id of a form no endpoint has).
    /// </summary>
    public KmsEndpoint EndpointFor(string? region)
    {
        if (IsHome(region)) return Home.Endpoint;
        if (_endpoints.TryGetValue(region!, out var mapped)) return mapped;
        if (!RegionIds.IsValid(region))
            throw new KmsConfigurationException($"No KMS endpoint is known for the region '{region}': it is not a region id such as cn-shanghai.");
        return KmsEndpoint.ForRegion(region!, _options.UseVpcEndpoint);
    }

    /// <summary>
    /// The client for keys and wrapped keys of <paramref name="region"/> (null or empty: the home region). Throws
    /// <see cref="KmsConfigurationException"/> when no endpoint is known for it.
    /// </summary>
    public KmsClient ForRegion(string? region)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsHome(region)) return Home;
        var endpoint = EndpointFor(region);
        bool mapped = _endpoints.ContainsKey(region!);
        var lazy = _clients.GetOrAdd(region!, _ => new Lazy<KmsClient>(() => Create(endpoint, mapped), LazyThreadSafetyMode.ExecutionAndPublication));
        var client = lazy.Value;
        if (_disposed)
        {
            client.Dispose();
            ObjectDisposedException.ThrowIf(true, this);
        }
        return client;
    }

    /// <summary>The region a key reference names: the region of an ARN, else null (ids and aliases are the home region's).</summary>
    public static string? RegionOfKey(string keyId)
    {
        try { return KmsKeyReference.Parse(keyId).Region; }
        catch (ArgumentException) { return null; }
    }

    private KmsClient Create(KmsEndpoint endpoint, bool mapped)
    {
        var home = Home.Options;
        var client = new KmsClient(new KmsClientOptions
        {
            Endpoint = endpoint,
            Credentials = home.Credentials,
            SignatureVersion = home.SignatureVersion,
            V1Transport = home.V1Transport,
            // Public endpoints are https; the opt-in to plain http covers the explicit region endpoints only.
            AllowInsecureHttp = mapped && _options.AllowInsecureHttp,
            Retry = home.Retry,
            AttemptTimeout = home.AttemptTimeout,
            TimeProvider = home.TimeProvider,
            UserAgent = home.UserAgent,
        });
        _options.ClientCreated?.Invoke(client);
        return client;
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var lazy in _clients.Values)
        {
            if (lazy.IsValueCreated) lazy.Value.Dispose();
        }
    }
}
