using System.Diagnostics;
using System.Text.RegularExpressions;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>The server as its own process: the listening line, help, and the ways it stops.</summary>
public partial class ServerProcessTests
{
    private static readonly string ServerDll = Path.Combine(AppContext.BaseDirectory, "EnvelopeKms.Server.dll");

    private static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(ServerDll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        info.Environment.Remove("ENVELOPEKMS_SERVER_ACCESS_KEYS");
        return Process.Start(info)!;
    }

    private static async Task<Uri> ReadListeningLine(Process process)
    {
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var match = ListeningLine().Match(line ?? string.Empty);
        Assert.True(match.Success, $"first stdout line was '{line}'; stderr: {(process.HasExited ? await process.StandardError.ReadToEndAsync() : "")}");
        return new Uri(match.Groups[1].Value);
    }

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "ekms-proc-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Prints_the_listening_line_first_serves_requests_and_exits_when_stdin_closes()
    {
        var dataDir = TempDir();
        using var process = Start("--port", "0", "--data-dir", dataDir, "--exit-on-stdin-close");
        try
        {
            var endpoint = await ReadListeningLine(process);
            Assert.Equal("127.0.0.1", endpoint.Host);
            using var http = new HttpClient();
            var client = new KmsTestClient(http, endpoint, TimeProvider.System, "testid", "testsecret", null, SigningMode.V1Get);
            Assert.Equal(200, (await client.Call("CreateKey")).Status);

            process.StandardInput.Close();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, process.ExitCode);
            Assert.True(File.Exists(Path.Combine(dataDir, "state.json")));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task Stops_cleanly_on_SIGTERM_and_honours_configured_access_keys()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // no SIGTERM to send there
        }
        var dataDir = TempDir();
        using var process = Start("--port", "0", "--data-dir", dataDir, "--access-key", "ci:ci-secret", "--region", "cn-shanghai");
        try
        {
            var endpoint = await ReadListeningLine(process);
            using var http = new HttpClient();
            var ok = await new KmsTestClient(http, endpoint, TimeProvider.System, "ci", "ci-secret", null, SigningMode.V3).Call("CreateKey");
            Assert.StartsWith("acs:kms:cn-shanghai:", ok.Body.GetProperty("KeyMetadata").GetProperty("Arn").GetString());
            var defaultPair = await new KmsTestClient(http, endpoint, TimeProvider.System, "testid", "testsecret", null, SigningMode.V3).Call("ListKeys");
            Assert.Equal("InvalidAccessKeyId.NotFound", defaultPair.Code);

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, process.ExitCode);
            var stderr = await process.StandardError.ReadToEndAsync();
            Assert.DoesNotContain("ci-secret", stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task Help_documents_the_development_credentials_and_the_warning()
    {
        using var process = Start("--help");
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("testid / testsecret", output);
        Assert.Contains("FOR DEVELOPMENT AND TESTS ONLY", output);
        Assert.Contains("--enable-control", output);
    }

    [Fact]
    public async Task A_bad_policy_file_fails_the_start_with_exit_code_1_naming_the_file_and_creating_nothing()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ekms-proc-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var policyFile = Path.Combine(dir, "policies.json");
            File.WriteAllText(policyFile, """{"AccessKeys":{"app":{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*"}]}}}""");
            using var process = Start("--port", "0", "--data-dir", Path.Combine(dir, "data"), "--policy-file", policyFile);
            var output = await process.StandardOutput.ReadToEndAsync();
            var error = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(1, process.ExitCode);
            Assert.Equal("", output);
            Assert.Contains($"{policyFile}: AccessKeys['app'], statement 1: Resource is required.", error);
            Assert.False(Directory.Exists(Path.Combine(dir, "data")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Unknown_flags_fail_with_exit_code_2()
    {
        using var process = Start("--no-such-flag");
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, process.ExitCode);
        Assert.Contains("--no-such-flag", error);
    }

    [Fact]
    public async Task A_port_in_use_fails_the_start_with_exit_code_1()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var dataDir = TempDir();
        try
        {
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            using var process = Start("--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data-dir", dataDir);
            var error = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(1, process.ExitCode);
            Assert.Contains("failed to start", error);
            Assert.Equal(string.Empty, await process.StandardOutput.ReadToEndAsync());
        }
        finally
        {
            listener.Stop();
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    [GeneratedRegex("^EnvelopeKms\\.Server listening on (http://127\\.0\\.0\\.1:[0-9]+)$")]
    private static partial Regex ListeningLine();
}
