using EnvelopeKms.Server.Hosting;

namespace EnvelopeKms.Server.Tests.Infrastructure;

/// <summary>
/// An in-process <see cref="KmsServer"/> on a free loopback port with its own temporary data
/// directory and a manual clock; restartable on the same directory to test persistence.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private static readonly HttpClient SharedHttp = new() { Timeout = TimeSpan.FromSeconds(30) };

    private readonly KmsServerOptions options;
    private KmsServer server;

    private TestServer(KmsServerOptions options, KmsServer server, Uri endpoint)
    {
        this.options = options;
        this.server = server;
        Endpoint = endpoint;
    }

    public Uri Endpoint { get; private set; }

    public string DataDirectory => options.DataDirectory;

    internal ManualClock Clock => (ManualClock)options.Time;

    public HttpClient Http => SharedHttp;

    public static async Task<TestServer> StartAsync(Action<KmsServerOptions>? configure = null)
    {
        var options = new KmsServerOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "ekms-test-" + Guid.NewGuid().ToString("N")),
            Time = new ManualClock(),
            EnableControl = true,
        };
        configure?.Invoke(options);
        var server = new KmsServer();
        var endpoint = await server.StartAsync(options);
        return new TestServer(options, server, endpoint);
    }

    public KmsTestClient Client(SigningMode mode = SigningMode.V3, string accessKeyId = "testid", string secret = "testsecret", string? securityToken = null) =>
        new(SharedHttp, Endpoint, options.Time, accessKeyId, secret, securityToken, mode);

    /// <summary>Stops the server and starts a new one on the same data directory (new port).</summary>
    public async Task RestartAsync()
    {
        await server.DisposeAsync();
        server = new KmsServer();
        Endpoint = await server.StartAsync(options);
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        if (Directory.Exists(options.DataDirectory))
        {
            Directory.Delete(options.DataDirectory, recursive: true);
        }
    }
}
