using System.Diagnostics;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Hosting;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// The client's retry policy against faults the server really produces (throttling, 5xx, dropped connections,
/// latency, a server that is gone): what is retried, how often, and that the client's count agrees with the
/// server's counters.
/// </summary>
public class ClientRetryRoundTripTests
{
    /// <summary>Faults on every call until the client has seen <paramref name="failures"/> of them, then none.</summary>
    private static List<KmsRetryEventArgs> FailTimesThenRecover(RoundTrip rt, KmsClient client, int failures)
    {
        var events = new List<KmsRetryEventArgs>();
        client.Retrying += (_, e) =>
        {
            events.Add(e);
            if (e.FailedAttempt == failures)
            {
                rt.SetFaults(new { });
            }
        };
        return events;
    }

    [Theory]
    [InlineData("Throttling.User", 400)]
    [InlineData("Throttling", 400)]
    [InlineData("Rejected.Throttling", 429)]
    public async Task Throttling_is_retried_until_it_succeeds(string code, int status)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client();
        var keyId = (await client.CreateKeyAsync()).KeyId;
        await rt.ResetStatsAsync();
        await rt.SetFaultsAsync(new { throttleRate = 1.0, throttleCode = code });
        var events = FailTimesThenRecover(rt, client, failures: 3);

        using var dataKey = await client.GenerateDataKeyAsync(keyId);

        Assert.Equal(32, dataKey.Plaintext.Length);
        Assert.Equal(3, client.RetryCount);
        Assert.Equal([1, 2, 3], events.Select(e => e.FailedAttempt));
        Assert.All(events, e =>
        {
            Assert.Equal("GenerateDataKey", e.Operation);
            Assert.Equal(code, e.Error.Code);
            Assert.Equal(status, e.Error.HttpStatus);
            Assert.True(e.Delay <= TimeSpan.FromMilliseconds(20));
        });
        var stats = (await rt.StatsAsync()).For("GenerateDataKey");
        Assert.Equal(3, stats.Error(code));
        Assert.Equal(3, stats.Failure);
        Assert.Equal(1, stats.Success);
    }

    [Theory]
    [InlineData(503, "ServiceUnavailableTemporary")]
    [InlineData(500, "InternalFailure")]
    public async Task Server_errors_are_retried_until_it_succeeds(int status, string code)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(ClientMode.V1FormPost);
        var keyId = (await client.CreateKeyAsync()).KeyId;
        using var dataKey = await client.GenerateDataKeyAsync(keyId);
        await rt.ResetStatsAsync();
        await rt.SetFaultsAsync(new { errorRate = 1.0, errorStatus = status, operations = new[] { "Decrypt" } });
        var events = FailTimesThenRecover(rt, client, failures: 2);

        using var decrypted = await client.DecryptAsync(dataKey.CiphertextBlob);

        Assert.True(decrypted.Plaintext.Span.SequenceEqual(dataKey.Plaintext.Span));
        Assert.Equal(2, client.RetryCount);
        Assert.All(events, e => Assert.Equal((KmsErrorKind.Service, code, (int?)status), (e.Error.Kind, e.Error.Code, e.Error.HttpStatus)));
        var stats = (await rt.StatsAsync()).For("Decrypt");
        Assert.Equal((2L, 2L, 1L), (stats.Failure, stats.Error(code), stats.Success));
    }

    [Fact]
    public async Task A_dropped_connection_is_retried()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client();
        var keyId = (await client.CreateKeyAsync()).KeyId;
        await rt.ResetStatsAsync();
        await rt.SetFaultsAsync(new { dropRate = 1.0 });
        var events = FailTimesThenRecover(rt, client, failures: 1);

        var described = await client.DescribeKeyAsync(keyId);

        Assert.Equal(keyId, described.KeyId);
        Assert.Equal(1, client.RetryCount);
        var error = Assert.Single(events).Error;
        Assert.Equal(KmsErrorKind.Connection, error.Kind);
        Assert.Equal(KmsException.ConnectionFailureCode, error.Code);
        var stats = (await rt.StatsAsync()).For("DescribeKey");
        Assert.Equal(1, stats.Success);
        // HttpClient may itself resend once on a pooled connection that died before any answer, so the server can
        // see one more drop than the client counts as a retry, never fewer.
        Assert.InRange(stats.Dropped, 1, 2);
    }

    [Fact]
    public async Task Under_random_faults_every_call_succeeds_and_the_counts_agree()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(retry: RoundTrip.FastRetry(maxAttempts: 12));
        var keyId = (await client.CreateKeyAsync()).KeyId;
        await rt.ResetStatsAsync();
        await rt.SetFaultsAsync(new { throttleRate = 0.2, errorRate = 0.2, seed = 42, operations = new[] { "GenerateDataKey", "Decrypt" } });

        for (int i = 0; i < 15; i++)
        {
            using var dataKey = await client.GenerateDataKeyAsync(keyId);
            using var decrypted = await client.DecryptAsync(dataKey.CiphertextBlob);
            Assert.True(decrypted.Plaintext.Span.SequenceEqual(dataKey.Plaintext.Span));
        }

        var stats = await rt.StatsAsync();
        Assert.Equal(15, stats.For("GenerateDataKey").Success);
        Assert.Equal(15, stats.For("Decrypt").Success);
        long failures = stats.For("GenerateDataKey").Failure + stats.For("Decrypt").Failure;
        Assert.True(failures > 0, stats.ToString());
        Assert.Equal(failures, client.RetryCount);
    }

    [Fact]
    public async Task A_server_that_keeps_failing_gives_up_after_the_attempt_limit()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(retry: RoundTrip.FastRetry(maxAttempts: 4));
        await rt.SetFaultsAsync(new { errorRate = 1.0, errorStatus = 503 });
        await rt.ResetStatsAsync();

        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<KmsException>(() => client.ListKeysAsync());
        watch.Stop();

        Assert.Equal(KmsErrorKind.Service, error.Kind);
        Assert.Equal("ServiceUnavailableTemporary", error.Code);
        Assert.Equal(503, error.HttpStatus);
        Assert.Equal(4, error.Attempts);
        Assert.NotNull(error.RequestId);
        Assert.Equal(3, client.RetryCount);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), watch.Elapsed.ToString());
        var stats = (await rt.StatsAsync()).For("ListKeys");
        Assert.Equal((4L, 0L), (stats.Error("ServiceUnavailableTemporary"), stats.Success));
    }

    [Fact]
    public async Task A_server_that_is_down_fails_with_a_connection_error_in_bounded_time()
    {
        await using var rt = await RoundTrip.StartAsync();
        // A server that was there and is gone: its port now refuses connections.
        Uri gone;
        await using (var server = new KmsServer())
        {
            gone = await server.StartAsync(new KmsServerOptions { DataDirectory = Path.Combine(rt.Server.DataDirectory, "gone") });
        }
        var client = rt.Client(endpoint: gone, retry: RoundTrip.FastRetry(maxAttempts: 3), attemptTimeout: TimeSpan.FromSeconds(5));

        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<KmsException>(() => client.DescribeKeyAsync("alias/x"));
        watch.Stop();

        Assert.Equal(KmsErrorKind.Connection, error.Kind);
        Assert.Equal(KmsException.ConnectionFailureCode, error.Code);
        Assert.Equal(3, error.Attempts);
        Assert.Equal(2, client.RetryCount);
        Assert.Null(error.HttpStatus);
        Assert.Contains(gone.Authority, error.Message);
        Assert.Contains("DescribeKey", error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), watch.Elapsed.ToString());
    }

    [Fact]
    public async Task A_server_that_does_not_answer_in_time_fails_with_a_timeout_in_bounded_time()
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(retry: RoundTrip.FastRetry(maxAttempts: 2), attemptTimeout: TimeSpan.FromMilliseconds(300));
        await rt.SetFaultsAsync(new { latencyMs = 5000 });

        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<KmsException>(() => client.ListKeysAsync());
        watch.Stop();

        Assert.Equal(KmsErrorKind.Timeout, error.Kind);
        Assert.Equal(KmsException.TimeoutCode, error.Code);
        Assert.Equal(2, error.Attempts);
        Assert.Equal(1, client.RetryCount);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), watch.Elapsed.ToString());
        await rt.ClearFaultsAsync();
        Assert.NotNull(await client.ListKeysAsync());
    }
}
