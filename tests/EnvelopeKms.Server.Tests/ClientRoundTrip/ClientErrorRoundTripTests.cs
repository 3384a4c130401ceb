using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// Every error our client maps, produced by the real server: what the <see cref="KmsException"/> carries, that
/// non-retryable errors are sent exactly once (the server's counters prove it), and the clock-skew message.
/// </summary>
public class ClientErrorRoundTripTests
{
    public static TheoryData<ClientMode> AllModes() => new() { ClientMode.V3, ClientMode.V1FormPost, ClientMode.V1QueryGet };

    /// <summary>Runs the call, expects a service error with this code and status, sent exactly once.</summary>
    private static async Task<KmsException> FailsOnce(RoundTrip rt, KmsClient client, string action, Func<Task> call, string code, int status)
    {
        await rt.ResetStatsAsync();
        var error = await Assert.ThrowsAsync<KmsException>(call);
        Assert.Equal(action, error.Operation);
        Assert.Equal(KmsErrorKind.Service, error.Kind);
        Assert.Equal(code, error.Code);
        Assert.Equal(status, error.HttpStatus);
        Assert.Matches("^[0-9A-F-]{36}$", error.RequestId);
        Assert.Contains(error.RequestId!, error.Message);
        Assert.Contains(code, error.Message);
        Assert.Equal(1, error.Attempts);
        Assert.False(error.IsRetryable);
        var stats = await rt.StatsAsync();
        Assert.True(stats.For(action).Failure == 1 && stats.For(action).Error(code) == 1 && stats.TotalCalls == 1, stats.ToString());
        return error;
    }

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task Key_state_and_lookup_errors_map_to_KmsException(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(mode);
        var keyId = (await client.CreateKeyAsync()).KeyId;
        var unknown = Guid.NewGuid().ToString();

        // Unknown key, by id, by ARN, and by alias.
        await FailsOnce(rt, client, "DescribeKey", () => client.DescribeKeyAsync(unknown), "Forbidden.KeyNotFound", 404);
        await FailsOnce(rt, client, "GenerateDataKey", () => client.GenerateDataKeyAsync($"acs:kms:cn-hangzhou:1234567890123456:key/{unknown}"), "Forbidden.KeyNotFound", 404);
        await FailsOnce(rt, client, "Encrypt", () => client.EncryptAsync("alias/nothing-here", new byte[] { 1, 2, 3 }), "Forbidden.AliasNotFound", 404);

        // Disabled key.
        using var dataKey = await client.GenerateDataKeyAsync(keyId);
        await client.DisableKeyAsync(keyId);
        var disabled = await FailsOnce(rt, client, "GenerateDataKey", () => client.GenerateDataKeyAsync(keyId), "Rejected.Disabled", 409);
        Assert.Contains("Disabled", disabled.ServiceMessage);
        await FailsOnce(rt, client, "Decrypt", () => client.DecryptAsync(dataKey.CiphertextBlob), "Rejected.Disabled", 409);
        await FailsOnce(rt, client, "Encrypt", () => client.EncryptAsync(keyId, dataKey.Plaintext.Memory), "Rejected.Disabled", 409);
        await client.EnableKeyAsync(keyId);

        // Pending deletion.
        await client.ScheduleKeyDeletionAsync(keyId, 30);
        await FailsOnce(rt, client, "GenerateDataKeyWithoutPlaintext", () => client.GenerateDataKeyWithoutPlaintextAsync(keyId), "Rejected.PendingDeletion", 409);
        await FailsOnce(rt, client, "Decrypt", () => client.DecryptAsync(dataKey.CiphertextBlob), "Rejected.PendingDeletion", 409);
        await FailsOnce(rt, client, "EnableKey", () => client.EnableKeyAsync(keyId), "Rejected.StateModifiedFailed", 409);
        await client.CancelKeyDeletionAsync(keyId);
        await FailsOnce(rt, client, "CancelKeyDeletion", () => client.CancelKeyDeletionAsync(keyId), "Rejected.StateModifiedFailed", 409);

        // Aliases: duplicate, malformed (caught by the server), missing.
        await client.CreateAliasAsync("alias/taken", keyId);
        await FailsOnce(rt, client, "CreateAlias", () => client.CreateAliasAsync("alias/taken", keyId), "AliasAlreadyExists", 400);
        await FailsOnce(rt, client, "CreateAlias", () => client.CreateAliasAsync("alias/has space", keyId), "InvalidParameter", 400);
        await FailsOnce(rt, client, "CreateAlias", () => client.CreateAliasAsync("alias/acs/reserved", keyId), "InvalidParameter", 400);
        await FailsOnce(rt, client, "DeleteAlias", () => client.DeleteAliasAsync("alias/never-made"), "Forbidden.AliasNotFound", 404);
        await FailsOnce(rt, client, "UpdateAlias", () => client.UpdateAliasAsync("alias/never-made", keyId), "Forbidden.AliasNotFound", 404);

        // A name without the alias/ prefix never leaves the client.
        await rt.ResetStatsAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => client.CreateAliasAsync("taken", keyId));
        Assert.Equal(0, (await rt.StatsAsync()).TotalCalls);
        Assert.Equal(0, client.RetryCount);
    }

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task Decrypt_with_the_wrong_encryption_context_is_refused(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(mode);
        var keyId = (await client.CreateKeyAsync()).KeyId;
        var context = new Dictionary<string, string> { ["file"] = "a.txt", ["tenant"] = "t1" };
        using var dataKey = await client.GenerateDataKeyAsync(keyId, encryptionContext: context);

        await FailsOnce(rt, client, "Decrypt", () => client.DecryptAsync(dataKey.CiphertextBlob, new Dictionary<string, string> { ["file"] = "a.txt", ["tenant"] = "t2" }),
            "InvalidParameter", 400);
        await FailsOnce(rt, client, "Decrypt", () => client.DecryptAsync(dataKey.CiphertextBlob), "InvalidParameter", 400);
        await FailsOnce(rt, client, "Decrypt", () => client.DecryptAsync(dataKey.CiphertextBlob, new Dictionary<string, string> { ["file"] = "a.txt" }),
            "InvalidParameter", 400);

        // The same pairs in another order are the same context.
        using var ok = await client.DecryptAsync(dataKey.CiphertextBlob, new Dictionary<string, string> { ["tenant"] = "t1", ["file"] = "a.txt" });
        Assert.True(ok.Plaintext.Span.SequenceEqual(dataKey.Plaintext.Span));
    }

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task A_wrong_secret_is_SignatureDoesNotMatch_and_is_not_retried(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(mode, new StaticCredentialsProvider(KmsServerOptionsDefaults.Id, "not-the-secret"));

        var error = await FailsOnce(rt, client, "ListKeys", () => client.ListKeysAsync(), "SignatureDoesNotMatch", 400);
        Assert.Equal(0, client.RetryCount);
        // The server's echoed string to sign is cut from the message; ours is offered for comparison instead.
        Assert.DoesNotContain("not-the-secret", error.Message);
        Assert.Contains("string to sign is: <omitted>", error.ServiceMessage);
        Assert.False(string.IsNullOrEmpty(error.ClientStringToSign));
        Assert.True(KmsErrorClassifier.IsAuthentication(error.Code, error.HttpStatus));
    }

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task An_unknown_access_key_id_is_not_retried(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var client = rt.Client(mode, new StaticCredentialsProvider("no-such-key", "whatever"));
        await FailsOnce(rt, client, "DescribeKey", () => client.DescribeKeyAsync("alias/x"), "InvalidAccessKeyId.NotFound", 404);
        Assert.Equal(0, client.RetryCount);
    }

    [Theory]
    [InlineData(ClientMode.V3, 20)]
    [InlineData(ClientMode.V3, -20)]
    [InlineData(ClientMode.V1FormPost, 16)]
    [InlineData(ClientMode.V1QueryGet, -16)]
    public async Task A_skewed_client_clock_is_reported_as_clock_skew(ClientMode mode, int minutes)
    {
        await using var rt = await RoundTrip.StartAsync();
        var skewed = new ShiftedClock(rt.Clock, TimeSpan.FromMinutes(minutes));
        var client = rt.Client(mode, time: skewed);

        var error = await FailsOnce(rt, client, "ListKeys", () => client.ListKeysAsync(), "InvalidTimeStamp.Expired", 400);
        Assert.True(error.IsClockSkew);
        Assert.Contains("clock", error.Message);
        Assert.Contains("skewed", error.Message);
        Assert.Contains(skewed.GetUtcNow().ToString("yyyy-MM-ddTHH:mm"), error.Message);

        // 14 minutes off is inside the gateway's window.
        var close = rt.Client(mode, time: new ShiftedClock(rt.Clock, TimeSpan.FromMinutes(Math.Sign(minutes) * 14)));
        Assert.NotNull(await close.ListKeysAsync());
    }

    [Fact]
    public async Task An_STS_token_that_expired_under_a_refreshing_provider_is_renewed_once()
    {
        // The provider runs on its own clock that lags behind the server's, so it still believes its token is
        // fresh when the server has already expired it: the race the client's one-time refresh exists for.
        // The server's timestamp window is widened so the lagging provider's AssumeRole still passes.
        await using var rt = await RoundTrip.StartAsync(o => o.TimestampWindow = TimeSpan.FromHours(1));
        var providerClock = new ManualClock(rt.Clock.GetUtcNow());
        var sts = rt.Sts(providerClock, durationSeconds: 900);
        var client = rt.Client(ClientMode.V3, sts);
        var keyId = (await client.CreateKeyAsync()).KeyId;
        Assert.Equal(1, sts.FetchCount);

        rt.Clock.Advance(TimeSpan.FromMinutes(16));
        await rt.ResetStatsAsync();
        using (var dataKey = await client.GenerateDataKeyAsync(keyId))
        {
            Assert.Equal(32, dataKey.Plaintext.Length);
        }

        Assert.Equal(2, sts.FetchCount);
        Assert.Equal(0, client.RetryCount); // the credential refresh is not a retry
        var stats = await rt.StatsAsync();
        Assert.True(stats.For("GenerateDataKey").Error("InvalidSecurityToken.Expired") == 1 && stats.For("GenerateDataKey").Success == 1, stats.ToString());
        Assert.Equal(1, stats.For("AssumeRole").Success);
    }

    [Theory]
    [MemberData(nameof(AllModes))]
    public async Task An_expired_STS_token_that_cannot_be_renewed_is_reported(ClientMode mode)
    {
        await using var rt = await RoundTrip.StartAsync();
        var issued = await rt.Sts(durationSeconds: 900).GetCredentialsAsync(CancellationToken.None);
        Assert.NotNull(issued.SecurityToken);
        var client = rt.Client(mode, new StaticCredentialsProvider(issued));
        Assert.NotNull(await client.ListKeysAsync());

        rt.Clock.Advance(TimeSpan.FromSeconds(901));
        var error = await FailsOnce(rt, client, "ListKeys", () => client.ListKeysAsync(), "InvalidSecurityToken.Expired", 400);
        Assert.True(KmsErrorClassifier.IsExpiredSecurityToken(error.Code));
        Assert.DoesNotContain(issued.SecurityToken!, error.Message);
    }
}

internal static class KmsServerOptionsDefaults
{
    public const string Id = EnvelopeKms.Server.Hosting.KmsServerOptions.DefaultAccessKeyId;
}
