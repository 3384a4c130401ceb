using System.Text;
using EnvelopeKms.Server.Auth;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Fuzz;

/// <summary>
/// The local server's request parsing, in process (no HTTP, no socket). One input is a request laid out as
/// <code>
/// METHOD\n
/// query string (no '?')\n
/// Content-Type\n
/// name: value\n   (headers, any number; a name may repeat)
/// \n
/// body
/// </code>
/// The query and, for a form content type, the body go through <see cref="PercentEncoding.ParsePairs"/> and are
/// merged first-occurrence-wins, exactly as <c>ApiRequestHandler.ReadRequest</c> does after Kestrel has split the
/// request; then <see cref="RequestAuthenticator.Authenticate"/> checks the V1 signature or the V3 Authorization
/// header against one known AccessKey pair, at a fixed clock. Its documented refusals are <see cref="KmsException"/>s
/// (the pipeline answers them); anything else would be an InternalFailure.
/// </summary>
internal static class ServerRequestTarget
{
    public const string AccessKeyId = "fuzz-access-key";
    public const string AccessKeySecret = "fuzz-access-key-secret";
    public static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(15);

    private static readonly Lazy<CredentialStore> Credentials = new(() =>
    {
        var time = new FixedTime(Now);
        string dir = Directory.CreateTempSubdirectory("ekms-fuzz-server-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } };
        return new CredentialStore(new Dictionary<string, string> { [AccessKeyId] = AccessKeySecret }, new KmsStateStore(dir, time), time);
    });

    public static void Run(byte[] data)
    {
        var request = Parse(data);
        // A fresh nonce cache per input, so that one input's outcome never depends on those run before it.
        var time = new FixedTime(Now);
        new RequestAuthenticator(Credentials.Value, new NonceCache(time, Window), time, Window).Authenticate(request);
    }

    internal static KmsRequest Parse(byte[] data)
    {
        int position = 0;
        string method = Line(data, ref position) ?? "POST";
        string query = Line(data, ref position) ?? "";
        string? contentType = Line(data, ref position);
        var headers = new Dictionary<string, string[]>(StringComparer.Ordinal);
        while (Line(data, ref position) is { Length: > 0 } line)
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            string name = line[..colon].Trim().ToLowerInvariant();
            string value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var values) ? [.. values, value] : [value];
        }
        byte[] body = data[Math.Min(position, data.Length)..];

        var queryPairs = PercentEncoding.ParsePairs(query);
        var form = contentType is not null && contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase)
            ? PercentEncoding.ParsePairs(Encoding.UTF8.GetString(body))
            : [];
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in queryPairs.Concat(form)) parameters.TryAdd(name, value);
        if (contentType is { Length: > 0 }) headers.TryAdd("content-type", [contentType]);
        return new KmsRequest { Method = method, Query = queryPairs, Headers = headers, Body = body, Parameters = parameters };
    }

    /// <summary>The next '\n'-terminated line as UTF-8 (Kestrel hands the server decoded strings), or null at the end.</summary>
    private static string? Line(byte[] data, ref int position)
    {
        if (position >= data.Length) return null;
        int end = Array.IndexOf(data, (byte)'\n', position);
        if (end < 0) end = data.Length;
        string line = Encoding.UTF8.GetString(data, position, end - position);
        position = end + 1;
        return line;
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
