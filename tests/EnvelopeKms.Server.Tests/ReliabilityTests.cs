using System.Security.Cryptography;
using System.Text.Json;
using EnvelopeKms.Credentials;
using EnvelopeKms.Files;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>
/// Reliability promises that need the real server but no PowerShell (docs/reliability.md): credentials that expire
/// in the middle of a batch, and a skewed local clock.
/// </summary>
public sealed class ReliabilityTests
{
    /// <summary>A clock that is another clock plus a fixed offset.</summary>
    private sealed class ShiftedClock(TimeProvider inner, TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow() + offset;
    }

    private static KmsClient NewClient(Uri endpoint, ICredentialsProvider credentials, TimeProvider time) => new(new KmsClientOptions
    {
        Endpoint = KmsEndpoint.FromUrl(endpoint.GetLeftPart(UriPartial.Authority), "cn-hangzhou"),
        Credentials = credentials,
        TimeProvider = time,
    });

    [Fact]
    public async Task StsCredentialsThatExpireMidBatchAreRefreshedWithoutFailingAFile()
    {
        // The server's clock runs 2 minutes ahead of the client's, so there are moments when the client still trusts
        // its cached token while the server already calls it expired: both the scheduled refresh (RefreshMargin) and
        // the refresh forced by InvalidSecurityToken.Expired are exercised.
        var clientClock = new ManualClock();
        var serverClock = new ManualClock(clientClock.GetUtcNow() + TimeSpan.FromMinutes(2));
        await using var server = await TestServer.StartAsync(o => o.Time = serverClock);
        string keyId;
        using (var admin = NewClient(server.Endpoint, new StaticCredentialsProvider("testid", "testsecret"), clientClock))
            keyId = (await admin.CreateKeyAsync()).KeyId;

        var credentialOptions = new CredentialResolutionOptions { TimeProvider = clientClock, RefreshMargin = TimeSpan.FromMinutes(1) };
        var sts = new StsAssumeRoleCredentialsProvider(new StaticCredentialsProvider("testid", "testsecret"),
            "acs:ram::1234567890123456:role/batch", "reliability", durationSeconds: 900, stsEndpoint: server.Endpoint, options: credentialOptions);
        using var client = NewClient(server.Endpoint, sts, clientClock);
        var provider = new KmsDataKeyProvider(client);

        using var dir = new TempDirectory();
        const int files = 48;
        var originals = new Dictionary<string, byte[]>();
        for (int i = 0; i < files; i++)
        {
            var data = RandomNumberGenerator.GetBytes(1000 + i * 37);
            string path = Path.Combine(dir.Path, $"f{i:000}.bin");
            await File.WriteAllBytesAsync(path, data);
            originals[path] = data;
        }

        int step = 0;
        void Tick()
        {
            // Every 4 files, 5 minutes pass on both clocks: each 15-minute token expires mid-batch, more than once.
            if (++step % 4 != 0) return;
            clientClock.Advance(TimeSpan.FromMinutes(5));
            serverClock.Advance(TimeSpan.FromMinutes(5));
        }

        using (var batcher = new DataKeyBatcher(provider, [keyId], EncryptionContext.Empty, DataKeyReuseLimits.PerFile, clientClock))
        {
            foreach (var path in originals.Keys)
            {
                using var lease = await batcher.AcquireAsync(originals[path].Length, default);
                await EnvelopeFileOperations.EncryptFileAsync(path, path + ".ekms", lease.Key, EncryptionContext.Empty);
                Tick();
            }
            Assert.Equal(files, batcher.DataKeysGenerated);
        }
        foreach (var path in originals.Keys)
        {
            await EnvelopeFileOperations.DecryptFileAsync(path + ".ekms", path + ".out", provider);
            Assert.Equal(originals[path], await File.ReadAllBytesAsync(path + ".out"));
            Tick();
        }

        // 96 KMS calls over 120 minutes of 15-minute tokens: the token was replaced several times.
        Assert.True(sts.FetchCount >= 6, $"STS tokens fetched: {sts.FetchCount}");
        using var stats = JsonDocument.Parse(await server.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/stats")));
        var ops = stats.RootElement.GetProperty("operations");
        int expired = 0;
        foreach (var op in ops.EnumerateObject())
            if (op.Value.GetProperty("errors").TryGetProperty("InvalidSecurityToken.Expired", out var n)) expired += n.GetInt32();
        Assert.True(expired >= 1, "the server never saw an expired token, so the forced refresh was not exercised");
        Assert.Equal(files, ops.GetProperty("GenerateDataKey").GetProperty("success").GetInt32());
        Assert.Equal(files, ops.GetProperty("Decrypt").GetProperty("success").GetInt32());
        Console.WriteLine($"[reliability] STS mid-batch: {files} files encrypted and decrypted, {sts.FetchCount} tokens, {expired} calls refused as expired and retried with a fresh token, 0 failures");
    }

    [Theory]
    [InlineData(20)]
    [InlineData(-20)]
    public async Task AClockSkewedBeyondTheWindowGivesAClearErrorNamingTheClock(int minutes)
    {
        var serverClock = new ManualClock();
        await using var server = await TestServer.StartAsync(o => o.Time = serverClock);
        using var client = NewClient(server.Endpoint, new StaticCredentialsProvider("testid", "testsecret"),
            new ShiftedClock(serverClock, TimeSpan.FromMinutes(minutes)));

        var e = await Assert.ThrowsAsync<KmsException>(() => client.GenerateDataKeyAsync("alias/any"));
        Assert.True(e.IsClockSkew);
        Assert.Equal("InvalidTimeStamp.Expired", e.Code);
        Assert.Equal(1, e.Attempts); // not retried: a skewed clock does not fix itself
        Assert.Contains("clock", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("skew", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, client.RetryCount);

        // Through the data key provider the cause survives: the cmdlets map it to KmsClockSkew.
        var wrapped = await Assert.ThrowsAsync<KeyProviderException>(() =>
            new KmsDataKeyProvider(client).GenerateDataKeyAsync(["alias/any"], EncryptionContext.Empty, default));
        Assert.True(((KmsException)wrapped.InnerException!).IsClockSkew);
        Assert.Contains("clock", wrapped.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task AClockSkewWithinTheWindowIsAccepted()
    {
        var serverClock = new ManualClock();
        await using var server = await TestServer.StartAsync(o => o.Time = serverClock);
        using var client = NewClient(server.Endpoint, new StaticCredentialsProvider("testid", "testsecret"),
            new ShiftedClock(serverClock, TimeSpan.FromMinutes(10)));
        var key = await client.CreateKeyAsync();
        Assert.False(string.IsNullOrEmpty(key.KeyId));
    }

    private sealed class TempDirectory : IDisposable
    {
        public TempDirectory() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ekms-rel-" + Guid.NewGuid().ToString("N")));
        public string Path { get; }
        public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
    }
}
