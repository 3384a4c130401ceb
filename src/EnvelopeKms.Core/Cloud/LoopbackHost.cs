using System.Net;

namespace EnvelopeKms.Cloud;

/// <summary>Which hosts are this machine: the only ones plain http is ever allowed to (a local KMS server, a test STS).</summary>
public static class LoopbackHost
{
    /// <summary>True for <c>localhost</c>, 127.0.0.0/8 and ::1.</summary>
    public static bool Is(string host)
    {
        host = host.Trim('[', ']');
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address);
    }
}
