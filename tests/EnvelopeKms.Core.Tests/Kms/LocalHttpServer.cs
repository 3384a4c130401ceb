using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EnvelopeKms.Tests.Kms;

/// <summary>A request as the local stand-in server received it.</summary>
public sealed class StubRequest
{
    public required string Method { get; init; }
    public required string Target { get; init; }
    public required Dictionary<string, string> Headers { get; init; }
    public required byte[] Body { get; init; }

    public string Path => Target.Split('?')[0];

    public Dictionary<string, string> Query => ParseForm(Target.Contains('?') ? Target[(Target.IndexOf('?') + 1)..] : "");

    public Dictionary<string, string> Form => ParseForm(Encoding.UTF8.GetString(Body));

    /// <summary>Query and form parameters together, as the gateway sees them.</summary>
    public Dictionary<string, string> AllParameters
    {
        get
        {
            var all = Query;
            foreach (var (k, v) in Form) all[k] = v;
            return all;
        }
    }

    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;

    public static Dictionary<string, string> ParseForm(string s)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in s.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            string k = eq < 0 ? pair : pair[..eq], v = eq < 0 ? "" : pair[(eq + 1)..];
            result[Uri.UnescapeDataString(k.Replace('+', ' '))] = Uri.UnescapeDataString(v.Replace('+', ' '));
        }
        return result;
    }
}

public sealed record StubResponse(int Status, string Body, string ContentType = "application/json;charset=utf-8")
{
    /// <summary>Close the connection without answering (a broken server).</summary>
    public bool Drop { get; init; }

    public static StubResponse Json(string body) => new(200, body);

    public static StubResponse Error(int status, string code, string message = "error", string requestId = "req-1")
        => new(status, $"{{\"RequestId\":\"{requestId}\",\"HostId\":\"kms.local\",\"Code\":\"{code}\",\"Message\":\"{message}\"}}");
}

/// <summary>
/// A tiny HTTP/1.1 server on 127.0.0.1 (port chosen by the OS) for tests: one request per connection, answered by
/// the handler. Requests are recorded.
/// </summary>
public sealed class LocalHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<StubRequest, Task<StubResponse>> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public LocalHttpServer(Func<StubRequest, Task<StubResponse>> handler)
    {
        _handler = handler;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    public LocalHttpServer(Func<StubRequest, StubResponse> handler) : this(r => Task.FromResult(handler(r))) { }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string BaseUrl => $"http://127.0.0.1:{Port}";

    public ConcurrentQueue<StubRequest> Requests { get; } = new();

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch { return; }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var request = await ReadRequest(stream);
                if (request is null) return;
                Requests.Enqueue(request);
                var response = await _handler(request);
                if (response.Drop) return;
                var body = Encoding.UTF8.GetBytes(response.Body);
                var head = $"HTTP/1.1 {response.Status} X\r\nContent-Type: {response.ContentType}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
                await stream.WriteAsync(body);
                await stream.FlushAsync();
            }
            catch (IOException) { }
            catch (ObjectDisposedException) { }
        }
    }

    private static async Task<StubRequest?> ReadRequest(NetworkStream stream)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await stream.ReadAsync(one) == 0) return null;
            buffer.Add(one[0]);
            int n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n') break;
        }
        var lines = Encoding.ASCII.GetString(buffer.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var parts = lines[0].Split(' ');
        var headers = new Dictionary<string, string>();
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
        }
        int length = headers.TryGetValue("content-length", out var cl) ? int.Parse(cl) : 0;
        var body = new byte[length];
        int read = 0;
        while (read < length)
        {
            int r = await stream.ReadAsync(body.AsMemory(read));
            if (r == 0) break;
            read += r;
        }
        return new StubRequest { Method = parts[0], Target = parts[1], Headers = headers, Body = body };
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch { }
        _stop.Dispose();
    }
}
