using System.Text.Json;
using EnvelopeKms.Files;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// Files wrapped under keys of two regions, against two in-process servers that each hold one region's keys (and
/// refuse ARNs of the other): the provider must send each key and each entry to its own region's endpoint.
/// </summary>
public class MultiRegionRoundTripTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("ekms-rt-regions-").FullName;

    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "regions" });

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static KmsConnectionSettings Settings(TestServer home, string? homeRegion, TestServer shanghai) => new()
    {
        Endpoint = home.Endpoint.GetLeftPart(UriPartial.Authority),
        Region = homeRegion,
        AccessKeyId = "testid",
        AccessKeySecret = "testsecret",
        RegionEndpoints = new Dictionary<string, string> { ["cn-shanghai"] = shanghai.Endpoint.GetLeftPart(UriPartial.Authority) },
        Retry = RoundTrip.FastRetry(2),
        CredentialOptions = new Credentials.CredentialResolutionOptions { GetEnvironmentVariable = _ => null, HomeDirectory = Path.GetTempPath() + "/ekms-no-home" },
    };

    private static async Task<JsonElement> Stats(TestServer server)
        => JsonDocument.Parse(await server.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/stats"))).RootElement.Clone();

    private static long Count(JsonElement stats, string action, string outcome = "success")
        => stats.GetProperty("operations").TryGetProperty(action, out var op) ? op.GetProperty(outcome).GetInt64() : 0;

    private static async Task ResetStats(TestServer server)
        => (await server.Http.PostAsync(new Uri(server.Endpoint, "/__control/reset-stats"), null)).EnsureSuccessStatusCode();

    private string Source(int length)
    {
        var path = Path.Combine(dir, "plain.bin");
        var data = new byte[length];
        Random.Shared.NextBytes(data);
        File.WriteAllBytes(path, data);
        return path;
    }

    [Fact]
    public async Task A_file_wrapped_in_two_regions_is_wrapped_and_unwrapped_at_each_regions_endpoint()
    {
        await using var hangzhou = await TestServer.StartAsync(o => o.Region = "cn-hangzhou");
        var shanghai = await TestServer.StartAsync(o => o.Region = "cn-shanghai");
        await using var _ = shanghai;
        var settings = Settings(hangzhou, "cn-hangzhou", shanghai);
        using var home = KmsClientFactory.Create(settings);
        using var clients = KmsClientFactory.CreateRegionalClients(settings, home);

        var keyA = await home.CreateKeyAsync(new CreateKeyRequest { Description = "hangzhou" });
        var keyB = await clients.ForRegion("cn-shanghai").CreateKeyAsync(new CreateKeyRequest { Description = "shanghai" });
        Assert.StartsWith("acs:kms:cn-shanghai:", keyB.Arn);
        // The routing matters: the Hangzhou server does not hold the Shanghai key.
        var wrongPlace = await Assert.ThrowsAsync<KmsException>(() => home.DescribeKeyAsync(keyB.Arn!));
        Assert.Contains("NotFound", wrongPlace.Code);

        await ResetStats(hangzhou);
        await ResetStats(shanghai);
        var source = Source(200_000);
        var encrypted = Path.Combine(dir, "plain.bin.ekms");
        using (var dataKey = await new KmsDataKeyProvider(clients).GenerateDataKeyAsync([keyA.KeyId, keyB.Arn!], Context, CancellationToken.None))
        {
            Assert.Equal(new[] { ("cn-hangzhou", keyA.KeyId), ("cn-shanghai", keyB.KeyId) }, dataKey.WrappedKeys.Select(w => (w.Region, w.KeyId)));
            await EnvelopeFileOperations.EncryptFileAsync(source, encrypted, dataKey, Context);
        }
        var (a, b) = (await Stats(hangzhou), await Stats(shanghai));
        Assert.Equal((1L, 0L), (Count(a, "GenerateDataKey"), Count(a, "Encrypt")));
        Assert.Equal((0L, 1L), (Count(b, "GenerateDataKey"), Count(b, "Encrypt")));
        var header = await EnvelopeFileOperations.ReadHeaderAsync(encrypted);
        Assert.Equal(new[] { "cn-hangzhou", "cn-shanghai" }, header.WrappedKeys.Select(w => w.Region));

        // Both regions up: the first entry, in Hangzhou.
        var output = Path.Combine(dir, "out.bin");
        var first = await EnvelopeFileOperations.DecryptFileAsync(encrypted, output, new KmsDataKeyProvider(clients), overwrite: true);
        Assert.Equal((keyA.KeyId, "cn-hangzhou"), (first.KeyId, first.UnwrappedFrom!.Region));
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));

        // Only the Shanghai key allowed: Hangzhou is not asked at all.
        await ResetStats(hangzhou);
        await ResetStats(shanghai);
        var allowB = new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { AllowedKeyIds = [keyB.Arn!] });
        var viaB = await EnvelopeFileOperations.DecryptFileAsync(encrypted, output, allowB, overwrite: true);
        Assert.Equal((keyB.KeyId, "cn-shanghai"), (viaB.KeyId, viaB.UnwrappedFrom!.Region));
        Assert.Equal(0, Count(await Stats(hangzhou), "Decrypt") + Count(await Stats(hangzhou), "Decrypt", "failure"));
        Assert.Equal(1, Count(await Stats(shanghai), "Decrypt"));

        // The Hangzhou key disabled: its entry is refused there, and Shanghai unwraps.
        await home.DisableKeyAsync(keyA.KeyId);
        var trace = new List<string>();
        var disabled = await EnvelopeFileOperations.DecryptFileAsync(encrypted, output,
            new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { Trace = trace.Add }), overwrite: true);
        Assert.Equal("cn-shanghai", disabled.UnwrappedFrom!.Region);
        Assert.Contains(trace, t => t.Contains("entry 1 of 2") && t.Contains("Rejected.Disabled"));
        Assert.Contains(trace, t => t.Contains("entry 2 of 2") && t.Contains("unwrapped by") && t.Contains(shanghai.Endpoint.GetLeftPart(UriPartial.Authority)));
        await home.EnableKeyAsync(keyA.KeyId);

        // Hangzhou gone entirely: the connection fails, the entry is skipped, Shanghai unwraps.
        await hangzhou.DisposeAsync();
        var down = await EnvelopeFileOperations.DecryptFileAsync(encrypted, output, new KmsDataKeyProvider(clients), overwrite: true);
        Assert.Equal((keyB.KeyId, "cn-shanghai"), (down.KeyId, down.UnwrappedFrom!.Region));
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));

        // Allowing only the (unreachable) Hangzhou key: nothing works, and the error says which entry failed how.
        var error = await Assert.ThrowsAsync<KeyProviderException>(() => EnvelopeFileOperations.DecryptFileAsync(encrypted, Path.Combine(dir, "none.bin"),
            new KmsDataKeyProvider(clients, new KmsDataKeyProviderOptions { AllowedKeyIds = [keyA.KeyId] })));
        Assert.Equal(KeyProviderError.Unavailable, error.Error);
        Assert.Contains($"entry 1 '{keyA.KeyId}' (region cn-hangzhou): Unavailable", error.Message);
        Assert.Contains($"entry 2 '{keyB.KeyId}' (region cn-shanghai): skipped: not an allowed key", error.Message);
        Assert.False(File.Exists(Path.Combine(dir, "none.bin")));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("cn-hangzhou")]
    public async Task The_shanghai_entry_is_recorded_and_unwrapped_in_shanghai_whatever_the_home_region_is(string? homeRegion)
    {
        await using var hangzhou = await TestServer.StartAsync(o => o.Region = "cn-hangzhou");
        await using var shanghai = await TestServer.StartAsync(o => o.Region = "cn-shanghai");
        var settings = Settings(hangzhou, homeRegion, shanghai);
        using var home = KmsClientFactory.Create(settings);
        using var clients = KmsClientFactory.CreateRegionalClients(settings, home);
        var keyA = (await home.CreateKeyAsync()).KeyId;
        var keyB = (await clients.ForRegion("cn-shanghai").CreateKeyAsync()).Arn!;

        // The Shanghai key first this time: the data key is generated in Shanghai.
        using var dataKey = await new KmsDataKeyProvider(clients).GenerateDataKeyAsync([keyB, keyA], Context, CancellationToken.None);
        Assert.Equal(new[] { "cn-shanghai", homeRegion ?? "" }, dataKey.WrappedKeys.Select(w => w.Region));
        Assert.Equal(1, Count(await Stats(shanghai), "GenerateDataKey"));

        await home.DisableKeyAsync(keyA);
        using var unwrapped = await new KmsDataKeyProvider(clients).DecryptDataKeyAsync(dataKey.WrappedKeys.Reverse().ToList(), Context, CancellationToken.None);
        Assert.Equal(dataKey.Plaintext.ToArray(), unwrapped.Plaintext.ToArray());
        Assert.Equal("cn-shanghai", unwrapped.UnwrappedFrom!.Region);
    }
}
