using System.Net;
using EnvelopeKms.Server.Auth;
using EnvelopeKms.Server.Faults;
using EnvelopeKms.Server.Operations;
using EnvelopeKms.Server.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EnvelopeKms.Server.Hosting;

/// <summary>
/// The local KMS server, hostable in-process (tests) or from <c>Program</c> (its own process).
/// <code>
/// await using var server = new KmsServer();
/// Uri endpoint = await server.StartAsync(new KmsServerOptions { DataDirectory = dir });
/// </code>
/// </summary>
public sealed class KmsServer : IAsyncDisposable
{
    private WebApplication? app;

    /// <summary>The bound base URI, e.g. <c>http://127.0.0.1:41234/</c>; null before start.</summary>
    public Uri? Endpoint { get; private set; }

    /// <summary>Things the operator should know about the configuration (printed by Program on stderr).</summary>
    public IReadOnlyList<string> Warnings { get; private set; } = [];

    private const UnixFileMode OpenToOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Outside loopback, only explicitly configured access keys, and never the published development pair: the
    /// server holds every data key of the files wrapped under its keys, and testid/testsecret is in every README.
    /// Checked before anything is created or bound.
    /// </summary>
    private static void RefuseUnsafeExposure(IPAddress bindAddress, KmsServerOptions options)
    {
        if (IPAddress.IsLoopback(bindAddress))
        {
            return;
        }
        if (options.AccessKeys.Count == 0)
        {
            throw new ArgumentException(
                $"--bind {options.BindAddress} is not a loopback address, and no access keys are configured: the published development pair " +
                $"{KmsServerOptions.DefaultAccessKeyId}/{KmsServerOptions.DefaultAccessKeySecret} is accepted on loopback only. Give keys with --access-key-file FILE " +
                $"or {CommandLine.AccessKeysVariable}.", nameof(options));
        }
        if (options.AccessKeys.TryGetValue(KmsServerOptions.DefaultAccessKeyId, out var secret) && secret == KmsServerOptions.DefaultAccessKeySecret)
        {
            throw new ArgumentException(
                $"--bind {options.BindAddress} is not a loopback address: the published development pair {KmsServerOptions.DefaultAccessKeyId}/... " +
                "cannot be used there. Give other keys with --access-key-file FILE.", nameof(options));
        }
    }

    /// <summary>Starts listening and returns the bound URI (with the real port when 0 was asked for).</summary>
    public async Task<Uri> StartAsync(KmsServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (app is not null)
        {
            throw new InvalidOperationException("The server is already started.");
        }
        if (!IPAddress.TryParse(options.BindAddress, out var bindAddress))
        {
            throw new ArgumentException($"--bind must be an IP address, not '{options.BindAddress}'.", nameof(options));
        }
        RefuseUnsafeExposure(bindAddress, options);
        var warnings = new List<string>();
        if (!OperatingSystem.IsWindows() && Directory.Exists(options.DataDirectory)
            && (File.GetUnixFileMode(options.DataDirectory) & OpenToOthers) != 0)
        {
            var mode = File.GetUnixFileMode(options.DataDirectory);
            warnings.Add($"Warning: the data directory {options.DataDirectory} is open to other users (mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}) " +
                "and holds every key's material; it is left as it is. Use a new directory, or chmod 700 it.");
        }
        var handler = CreateHandler(options, out var control);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        // Nothing may precede the listening line on stdout, and request logs would be noise anyway.
        builder.Logging.ClearProviders();
        // The default console lifetime hooks SIGINT/SIGTERM process-wide; the host process decides that instead.
        builder.Services.AddSingleton<IHostLifetime, ExternallyControlledLifetime>();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // The SDKs put every business parameter in the query (an 8 KB Description, a 6 KB
            // plaintext as base64), so the request line must be allowed well past Kestrel's 8 KB.
            kestrel.Limits.MaxRequestLineSize = 128 * 1024;
            kestrel.Limits.MaxRequestHeadersTotalSize = 128 * 1024;
            kestrel.Listen(bindAddress, options.Port);
        });
        var built = builder.Build();
        built.Run(async context =>
        {
            if (ControlEndpoint.IsControlPath(context) && await control.TryHandle(context))
            {
                return;
            }
            await handler.Handle(context);
        });
        try
        {
            await built.StartAsync(cancellationToken);
        }
        catch
        {
            // E.g. the port is taken: release what was built so the caller can retry or exit cleanly.
            await built.DisposeAsync();
            throw;
        }
        app = built;
        Warnings = warnings;

        var address = built.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Endpoint = new Uri(address.EndsWith('/') ? address : address + "/");
        return Endpoint;
    }

    public async ValueTask DisposeAsync()
    {
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
            app = null;
        }
    }

    /// <summary>Wires the components together; the only place that knows all of them.</summary>
    private static ApiRequestHandler CreateHandler(KmsServerOptions options, out ControlEndpoint control)
    {
        var time = options.Time;
        // First, so that a bad policy file stops the start before anything is created on disk.
        var policyFile = options.PolicyFile is { } policyPath ? new RamPolicyFile(policyPath, Console.Error) : null;
        var identity = new ServiceIdentity(options.Region, options.AccountId);
        var store = new KmsStateStore(options.DataDirectory, time);
        var resolver = new KeyResolver(identity);
        var credentials = new CredentialStore(options.EffectiveAccessKeys(), store, time);
        var authenticator = new RequestAuthenticator(credentials, new NonceCache(time, options.TimestampWindow), time, options.TimestampWindow);

        var registry = new OperationRegistry();
        new KeyOperations(store, resolver, identity, time).Register(registry);
        new AliasOperations(store, resolver, identity).Register(registry);
        new CryptoOperations(store, resolver).Register(registry);
        new TagOperations(store, resolver).Register(registry);
        new StsOperations(credentials, identity, options.StsDuration).Register(registry);

        var faults = new FaultInjector(options.Faults);
        var stats = new OperationStats();
        control = new ControlEndpoint(faults, stats, options.EnableControl, options.AdminToken);
        var authorizer = policyFile is null ? null : new RamAuthorizer(policyFile, store, identity, time);
        return new ApiRequestHandler(registry, authenticator, authorizer, faults, stats);
    }

    /// <summary>A host lifetime that neither waits for nor listens to console signals.</summary>
    private sealed class ExternallyControlledLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
