using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using EnvelopeKms.Server.Faults;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>The control endpoint, injected faults and per-operation statistics.</summary>
public class FaultInjectionTests
{
    private static async Task<HttpResponseMessage> SetFaults(TestServer server, object settings, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Endpoint, "/__control/faults")) { Content = JsonContent.Create(settings) };
        if (token is not null)
        {
            request.Headers.Add("X-EnvelopeKms-Admin-Token", token);
        }
        return await server.Http.SendAsync(request);
    }

    private static async Task<JsonElement> Stats(TestServer server) =>
        JsonDocument.Parse(await server.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/stats"))).RootElement;

    [Fact]
    public async Task Control_is_unreachable_unless_enabled()
    {
        await using var server = await TestServer.StartAsync(o => o.EnableControl = false);
        using var response = await server.Http.GetAsync(new Uri(server.Endpoint, "/__control/stats"));
        Assert.Equal(404, (int)response.StatusCode);
        Assert.Contains("InvalidAction.NotFound", await response.Content.ReadAsStringAsync());
        using var post = await SetFaults(server, new { throttleRate = 1.0 });
        Assert.Equal(404, (int)post.StatusCode);
        Assert.Equal(200, (await server.Client().Call("ListKeys")).Status);
    }

    [Fact]
    public async Task Control_requires_the_admin_token_when_one_is_configured()
    {
        await using var server = await TestServer.StartAsync(o => o.AdminToken = "s3cret-admin");
        using var without = await SetFaults(server, new { throttleRate = 1.0 });
        Assert.Equal(403, (int)without.StatusCode);
        using var wrong = await SetFaults(server, new { throttleRate = 1.0 }, "guess");
        Assert.Equal(403, (int)wrong.StatusCode);
        Assert.Equal(200, (await server.Client().Call("ListKeys")).Status);
        using var right = await SetFaults(server, new { throttleRate = 1.0 }, "s3cret-admin");
        Assert.Equal(200, (int)right.StatusCode);
        Assert.Equal("Throttling.User", (await server.Client().Call("ListKeys")).Code);
    }

    [Theory]
    [InlineData("Throttling.User", 400)]
    [InlineData("Throttling", 400)]
    [InlineData("Rejected.Throttling", 429)]
    public async Task Throttling_answers_like_the_service(string code, int status)
    {
        await using var server = await TestServer.StartAsync();
        using var set = await SetFaults(server, new { throttleRate = 1.0, throttleCode = code });
        Assert.Equal(200, (int)set.StatusCode);
        var response = await server.Client().Call("ListKeys");
        Assert.Equal(status, response.Status);
        Assert.Equal(code, response.Code);
        Assert.Equal(response.RequestIdHeader, response.Get("RequestId"));
    }

    [Theory]
    [InlineData(500, "InternalFailure")]
    [InlineData(503, "ServiceUnavailableTemporary")]
    public async Task Server_errors_can_be_injected(int status, string code)
    {
        await using var server = await TestServer.StartAsync();
        using var set = await SetFaults(server, new { errorRate = 1.0, errorStatus = status });
        var response = await server.Client().Call("ListKeys");
        Assert.Equal(status, response.Status);
        Assert.Equal(code, response.Code);
    }

    [Fact]
    public async Task Dropped_calls_abort_the_connection()
    {
        await using var server = await TestServer.StartAsync();
        using var set = await SetFaults(server, new { dropRate = 1.0 });
        await Assert.ThrowsAsync<HttpRequestException>(() => server.Client().Call("ListKeys"));
        var stats = await Stats(server);
        Assert.Equal(1, stats.GetProperty("operations").GetProperty("ListKeys").GetProperty("dropped").GetInt64());
    }

    [Fact]
    public async Task Latency_is_added_overall_and_per_operation()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        using var set = await SetFaults(server, new { latencyMs = 100, operationLatencyMs = new Dictionary<string, int> { ["DescribeKey"] = 300 } });
        var watch = Stopwatch.StartNew();
        await client.Ok("ListKeys");
        var listElapsed = watch.Elapsed;
        watch.Restart();
        await client.Describe(keyId);
        Assert.InRange(listElapsed, TimeSpan.FromMilliseconds(95), TimeSpan.FromSeconds(10));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(395), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Faults_can_target_specific_operations()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        using var set = await SetFaults(server, new { errorRate = 1.0, errorStatus = 503, operations = new[] { "GenerateDataKey" } });
        Assert.Equal(503, (await client.Call("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Status);
        Assert.Equal(200, (await client.Call("DescribeKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Status);
    }

    [Fact]
    public async Task A_seed_makes_the_fault_sequence_reproducible_and_rates_are_respected()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        async Task<string> Pattern()
        {
            using var set = await SetFaults(server, new { throttleRate = 0.5, seed = 42 });
            var outcomes = new List<char>();
            for (var i = 0; i < 40; i++)
            {
                outcomes.Add((await client.Call("ListKeys")).Status == 200 ? '.' : 'T');
            }
            return new string([.. outcomes]);
        }
        var first = await Pattern();
        var second = await Pattern();
        Assert.Equal(first, second);
        Assert.InRange(first.Count(c => c == 'T'), 8, 32);
    }

    [Fact]
    public async Task Stats_count_calls_per_operation_and_reset()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        var blob = (await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Get("CiphertextBlob");
        await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = blob });
        await client.Call("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = blob, ["EncryptionContext"] = "{\"x\":\"y\"}" });
        await server.Client(secret: "wrong").Call("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = blob });

        var operations = (await Stats(server)).GetProperty("operations");
        Assert.Equal(2, operations.GetProperty("GenerateDataKey").GetProperty("success").GetInt64());
        Assert.Equal(0, operations.GetProperty("GenerateDataKey").GetProperty("failure").GetInt64());
        var decrypt = operations.GetProperty("Decrypt");
        Assert.Equal(1, decrypt.GetProperty("success").GetInt64());
        Assert.Equal(2, decrypt.GetProperty("failure").GetInt64());
        Assert.Equal(1, decrypt.GetProperty("errors").GetProperty("InvalidParameter").GetInt64());
        Assert.Equal(1, decrypt.GetProperty("errors").GetProperty("SignatureDoesNotMatch").GetInt64());
        Assert.Equal(4, (await Stats(server)).GetProperty("totals").GetProperty("success").GetInt64());

        using var reset = await server.Http.PostAsync(new Uri(server.Endpoint, "/__control/reset-stats"), null);
        Assert.Equal(200, (int)reset.StatusCode);
        var after = await Stats(server);
        Assert.Empty(after.GetProperty("operations").EnumerateObject());
        Assert.Equal(0, after.GetProperty("totals").GetProperty("success").GetInt64());
    }

    [Fact]
    public async Task Current_faults_can_be_read_back_and_invalid_settings_are_refused()
    {
        await using var server = await TestServer.StartAsync();
        using var set = await SetFaults(server, new { errorRate = 0.25, latencyMs = 5 });
        var current = JsonDocument.Parse(await server.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/faults"))).RootElement;
        Assert.Equal(0.25, current.GetProperty("errorRate").GetDouble());
        Assert.Equal(5, current.GetProperty("latencyMs").GetInt32());

        foreach (var bad in new object[] { new { throttleRate = 1.5 }, new { errorRate = 0.6, dropRate = 0.6 }, new { errorStatus = 404 }, new { throttleCode = "Nope" }, new { latencyMs = -1 } })
        {
            using var response = await SetFaults(server, bad);
            Assert.Equal(400, (int)response.StatusCode);
        }
        using var notJson = await server.Http.PostAsync(new Uri(server.Endpoint, "/__control/faults"), new StringContent("{oops"));
        Assert.Equal(400, (int)notJson.StatusCode);
        using var unknown = await server.Http.GetAsync(new Uri(server.Endpoint, "/__control/nothing"));
        Assert.Equal(404, (int)unknown.StatusCode);
        // The rejected settings did not replace the good ones.
        current = JsonDocument.Parse(await server.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/faults"))).RootElement;
        Assert.Equal(0.25, current.GetProperty("errorRate").GetDouble());
    }

    [Fact]
    public async Task Faults_given_at_start_apply_without_the_control_endpoint()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.EnableControl = false;
            o.Faults = new FaultSettings { ThrottleRate = 1.0, ThrottleCode = "Rejected.Throttling" };
        });
        Assert.Equal(429, (await server.Client().Call("ListKeys")).Status);
    }

    [Fact]
    public async Task Faults_do_not_replace_authentication()
    {
        await using var server = await TestServer.StartAsync();
        using var set = await SetFaults(server, new { throttleRate = 1.0 });
        Assert.Equal("SignatureDoesNotMatch", (await server.Client(secret: "wrong").Call("ListKeys")).Code);
    }
}
