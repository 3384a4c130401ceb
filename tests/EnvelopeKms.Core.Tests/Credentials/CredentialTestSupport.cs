using System.Net;
using System.Net.Sockets;
using EnvelopeKms.Credentials;

namespace EnvelopeKms.Tests.Credentials;

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now;
    public ManualTimeProvider(DateTimeOffset start) => _now = start;
    public override DateTimeOffset GetUtcNow() => _now;
    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>A temporary home directory with helpers to write the profile files into it; deleted on dispose.</summary>
internal sealed class TempHome : IDisposable
{
    public TempHome()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ekms-home-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string CliConfigPath => System.IO.Path.Combine(Path, ".aliyun", "config.json");

    public string IniPath => System.IO.Path.Combine(Path, ".alibabacloud", "credentials");

    public void WriteCliConfig(string json)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(CliConfigPath)!);
        File.WriteAllText(CliConfigPath, json);
    }

    public void WriteIni(string text)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(IniPath)!);
        File.WriteAllText(IniPath, text);
    }

    /// <summary>Options that see only this home, the given variables, and no reachable metadata service.</summary>
    public CredentialResolutionOptions Options(Dictionary<string, string>? environment = null, TimeProvider? time = null,
        Uri? metadata = null, Uri? sts = null, string? profile = null)
        => new()
        {
            GetEnvironmentVariable = name => environment is not null && environment.TryGetValue(name, out var v) ? v : null,
            HomeDirectory = Path,
            EcsMetadataBaseUri = metadata ?? ClosedPort.Uri,
            EcsMetadataTimeout = TimeSpan.FromSeconds(2),
            StsEndpoint = sts,
            ProfileName = profile,
            TimeProvider = time ?? TimeProvider.System,
        };

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A loopback port nothing listens on, so connections are refused at once.</summary>
internal static class ClosedPort
{
    public static readonly Uri Uri = Create();

    private static Uri Create()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}");
    }
}
