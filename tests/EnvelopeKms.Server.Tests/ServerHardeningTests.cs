using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EnvelopeKms.Server.Hosting;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>
/// Issue 18, local KMS server: who may use it outside loopback, how secrets reach it without the command line,
/// what it does to an existing data directory, and how it answers an oversized request.
/// </summary>
public class ServerHardeningTests
{
    private static string TempDir() => Path.Combine(Path.GetTempPath(), "ekms-hard-" + Guid.NewGuid().ToString("N"));

    // ---- outside loopback: explicit access keys only --------------------------------------------------------
    // The check happens before anything is bound, so these tests never listen on (or reach) a non-loopback address.

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("192.0.2.1")]
    public async Task A_non_loopback_bind_without_configured_access_keys_refuses_to_start(string bind)
    {
        var dir = TempDir();
        await using var server = new KmsServer();
        var e = await Assert.ThrowsAsync<ArgumentException>(() => server.StartAsync(new KmsServerOptions { DataDirectory = dir, BindAddress = bind }));
        Assert.Contains("--access-key-file", e.Message);
        Assert.Null(server.Endpoint);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public async Task A_non_loopback_bind_refuses_the_published_development_pair_even_when_given_explicitly()
    {
        var dir = TempDir();
        await using var server = new KmsServer();
        var options = new KmsServerOptions { DataDirectory = dir, BindAddress = "0.0.0.0" };
        options.AccessKeys[KmsServerOptions.DefaultAccessKeyId] = KmsServerOptions.DefaultAccessKeySecret;
        var e = await Assert.ThrowsAsync<ArgumentException>(() => server.StartAsync(options));
        Assert.Contains("published", e.Message);
        Assert.Null(server.Endpoint);
    }

    // ---- secrets from files, not the command line -----------------------------------------------------------

    [Fact]
    public void Access_keys_and_the_admin_token_can_come_from_files()
    {
        var dir = Directory.CreateTempSubdirectory("ekms-keyfile-").FullName;
        try
        {
            var keys = Path.Combine(dir, "keys");
            File.WriteAllText(keys, "# comment\nAKID1:secret-one\n\n  AKID2:secret-two  \n");
            var token = Path.Combine(dir, "token");
            File.WriteAllText(token, "admin-token-value\n");
            var options = CommandLine.Parse(["--access-key-file", keys, "--admin-token-file", token], _ => null).Options!;
            Assert.Equal(new Dictionary<string, string> { ["AKID1"] = "secret-one", ["AKID2"] = "secret-two" }, options.AccessKeys);
            Assert.Equal("admin-token-value", options.AdminToken);

            File.WriteAllText(keys, "AKID3 secret-three\n");
            var e = Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--access-key-file", keys], _ => null));
            Assert.DoesNotContain("secret-three", e.Message);
            Assert.Contains("line 1", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Help_offers_the_environment_and_files_before_the_command_line_and_says_why()
    {
        var help = CommandLine.HelpText;
        Assert.Contains("--access-key-file", help);
        Assert.Contains("--admin-token-file", help);
        Assert.Contains("/proc", help);
        Assert.True(help.IndexOf("--access-key-file", StringComparison.Ordinal) < help.IndexOf("--access-key ID:SECRET", StringComparison.Ordinal));
    }

    // ---- an existing data directory keeps its mode ----------------------------------------------------------

    [Fact]
    public async Task An_existing_data_directory_is_not_chmodded_and_a_loose_one_is_reported()
    {
        if (OperatingSystem.IsWindows()) return;
        var dir = Directory.CreateTempSubdirectory("ekms-shared-").FullName;
        const UnixFileMode Loose = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(dir, Loose);
        try
        {
            await using (var server = new KmsServer())
            {
                await server.StartAsync(new KmsServerOptions { DataDirectory = dir });
                Assert.Equal(Loose, File.GetUnixFileMode(dir));
                Assert.Contains(server.Warnings, w => w.Contains(dir, StringComparison.Ordinal) && w.Contains("0755", StringComparison.Ordinal));
            }
            var fresh = Path.Combine(dir, "new");
            await using (var server = new KmsServer())
            {
                await server.StartAsync(new KmsServerOptions { DataDirectory = fresh });
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(fresh));
                Assert.Empty(server.Warnings);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ---- an oversized request is a 4xx ------------------------------------------------------------------------

    [Fact]
    public async Task A_100_MB_request_body_is_a_400_with_the_KMS_error_shape_not_a_500()
    {
        await using var server = await TestServer.StartAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Endpoint.Host, server.Endpoint.Port).WaitAsync(TimeSpan.FromSeconds(10));
        tcp.ReceiveTimeout = 10_000;
        var stream = tcp.GetStream();
        // Declares 100 MB and sends the first bytes only: the server must answer from the declared length.
        var head = $"POST / HTTP/1.1\r\nHost: {server.Endpoint.Authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\nAction=CreateKey&";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var response = await ReadResponse(stream).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(response.StatusLine.StartsWith("HTTP/1.1 400", StringComparison.Ordinal), $"{response.StatusLine}\n{response.Body}");
        using var body = JsonDocument.Parse(response.Body);
        Assert.Equal("ParseRequestParameterException", body.RootElement.GetProperty("Code").GetString());
        Assert.True(body.RootElement.TryGetProperty("RequestId", out _));
    }

    /// <summary>Reads one HTTP/1.1 response (Content-Length or chunked) from a raw connection.</summary>
    private static async Task<(string StatusLine, string Body)> ReadResponse(NetworkStream stream)
    {
        var bytes = new List<byte>();
        var buffer = new byte[4096];
        while (true)
        {
            var text = Encoding.UTF8.GetString(bytes.ToArray());
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                var headers = text[..end].Split("\r\n");
                var rest = text[(end + 4)..];
                var lengthHeader = headers.FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                if (lengthHeader is not null && Encoding.UTF8.GetByteCount(rest) >= int.Parse(lengthHeader["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture))
                    return (headers[0], rest);
                if (lengthHeader is null && rest.Contains("\r\n0\r\n\r\n", StringComparison.Ordinal))
                    return (headers[0], Dechunk(rest));
            }
            int n = await stream.ReadAsync(buffer);
            if (n == 0) throw new IOException($"The connection closed before a whole response: {text}");
            bytes.AddRange(buffer.AsSpan(0, n).ToArray());
        }
    }

    private static string Dechunk(string chunked)
    {
        var body = new StringBuilder();
        int at = 0;
        while (true)
        {
            int lineEnd = chunked.IndexOf("\r\n", at, StringComparison.Ordinal);
            int size = int.Parse(chunked[at..lineEnd], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            if (size == 0) return body.ToString();
            body.Append(chunked, lineEnd + 2, size); // the error bodies are ASCII: characters are bytes
            at = lineEnd + 2 + size + 2;
        }
    }
}
