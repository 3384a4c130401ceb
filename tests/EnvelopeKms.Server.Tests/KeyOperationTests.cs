using System.Text.Json;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>CreateKey, DescribeKey, ListKeys and the key state machine.</summary>
public class KeyOperationTests
{
    [Fact]
    public async Task CreateKey_returns_the_documented_metadata_shape()
    {
        await using var server = await TestServer.StartAsync();
        var response = await server.Client().Ok("CreateKey", new Dictionary<string, string> { ["Description"] = "shape" });
        var metadata = response.Body.GetProperty("KeyMetadata");
        var keyId = metadata.GetProperty("KeyId").GetString()!;
        Assert.True(Guid.TryParseExact(keyId, "D", out _));
        Assert.Equal($"acs:kms:cn-hangzhou:1234567890123456:key/{keyId}", metadata.GetProperty("Arn").GetString());
        Assert.Equal("Enabled", metadata.GetProperty("KeyState").GetString());
        Assert.Equal("Aliyun_AES_256", metadata.GetProperty("KeySpec").GetString());
        Assert.Equal("ENCRYPT/DECRYPT", metadata.GetProperty("KeyUsage").GetString());
        Assert.Equal("Aliyun_KMS", metadata.GetProperty("Origin").GetString());
        Assert.Equal("SOFTWARE", metadata.GetProperty("ProtectionLevel").GetString());
        Assert.Equal("Disabled", metadata.GetProperty("AutomaticRotation").GetString());
        Assert.Equal("shape", metadata.GetProperty("Description").GetString());
        Assert.Equal("1234567890123456", metadata.GetProperty("Creator").GetString());
        Assert.Equal("", metadata.GetProperty("DeleteDate").GetString());
        Assert.Equal("", metadata.GetProperty("MaterialExpireTime").GetString());
        Assert.Matches("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$", metadata.GetProperty("CreationDate").GetString());
        Assert.True(Guid.TryParseExact(metadata.GetProperty("PrimaryKeyVersion").GetString(), "D", out _));
        Assert.False(metadata.TryGetProperty("DeletionProtection", out _));
        Assert.False(string.IsNullOrEmpty(response.Get("RequestId")));
    }

    [Fact]
    public async Task CreateKey_honours_region_account_and_rotation()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Region = "eu-central-1";
            o.AccountId = "5555";
        });
        var metadata = (await server.Client().Ok("CreateKey", new Dictionary<string, string>
        {
            ["EnableAutomaticRotation"] = "true",
            ["RotationInterval"] = "30d",
        })).Body.GetProperty("KeyMetadata");
        Assert.StartsWith("acs:kms:eu-central-1:5555:key/", metadata.GetProperty("Arn").GetString());
        Assert.Equal("Enabled", metadata.GetProperty("AutomaticRotation").GetString());
        Assert.Equal("2592000s", metadata.GetProperty("RotationInterval").GetString());
        Assert.True(metadata.TryGetProperty("NextRotationDate", out _));
    }

    [Theory]
    [InlineData("KeySpec", "RSA_2048", 400, "InvalidParameter")]
    [InlineData("KeySpec", "bogus", 400, "InvalidParameter")]
    [InlineData("KeyUsage", "SIGN/VERIFY", 400, "InvalidParameter")]
    [InlineData("Origin", "EXTERNAL", 400, "Unsupported.Origin")]
    [InlineData("Origin", "aliyun_kms", 400, "InvalidParameter")]
    [InlineData("ProtectionLevel", "HSM", 400, "Unsupported.ProtectionLevel")]
    [InlineData("RotationInterval", "6d", 400, "InvalidParameter")]
    [InlineData("RotationInterval", "731d", 400, "InvalidParameter")]
    [InlineData("RotationInterval", "1y", 400, "InvalidParameter")]
    [InlineData("EnableAutomaticRotation", "maybe", 400, "InvalidParameter")]
    [InlineData("Tags", "[{\"TagKey\":\"acs:x\",\"TagValue\":\"v\"}]", 400, "InvalidParameter")]
    public async Task CreateKey_rejects_invalid_parameters(string name, string value, int status, string code)
    {
        await using var server = await TestServer.StartAsync();
        await server.Client().Fails("CreateKey", new Dictionary<string, string> { [name] = value }, status, code);
    }

    [Fact]
    public async Task CreateKey_requires_an_interval_when_rotation_is_enabled_and_limits_description()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        await client.Fails("CreateKey", new() { ["EnableAutomaticRotation"] = "true" }, 400, "MissingParameter");
        await client.Fails("CreateKey", new() { ["Description"] = new string('d', 8193) }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task DescribeKey_accepts_key_id_alias_and_arns()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/by-name", ["KeyId"] = keyId });
        foreach (var reference in new[] { keyId, "alias/by-name", $"acs:kms:cn-hangzhou:1234567890123456:key/{keyId}", "acs:kms:cn-hangzhou:1234567890123456:alias/by-name" })
        {
            var metadata = await client.Describe(reference);
            Assert.Equal(keyId, metadata.GetProperty("KeyId").GetString());
            Assert.Equal("Disabled", metadata.GetProperty("DeletionProtection").GetString());
        }
        await client.Fails("DescribeKey", new() { ["KeyId"] = $"acs:kms:cn-shanghai:1234567890123456:key/{keyId}" }, 404, "Forbidden.KeyNotFound");
        await client.Fails("DescribeKey", new() { ["KeyId"] = Guid.NewGuid().ToString() }, 404, "Forbidden.KeyNotFound");
        await client.Fails("DescribeKey", new() { ["KeyId"] = "alias/missing" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("DescribeKey", [], 400, "MissingParameter");
    }

    [Fact]
    public async Task ListKeys_pages_with_numbers_and_wrapped_lists()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await client.CreateKey());
        }
        var page2 = (await client.Ok("ListKeys", new Dictionary<string, string> { ["PageNumber"] = "2", ["PageSize"] = "2" })).Body;
        Assert.Equal(JsonValueKind.Number, page2.GetProperty("TotalCount").ValueKind);
        Assert.Equal(5, page2.GetProperty("TotalCount").GetInt32());
        Assert.Equal(2, page2.GetProperty("PageNumber").GetInt32());
        Assert.Equal(2, page2.GetProperty("PageSize").GetInt32());
        var keys = page2.GetProperty("Keys").GetProperty("Key").EnumerateArray().ToList();
        Assert.Equal(ids.Skip(2).Take(2), keys.Select(k => k.GetProperty("KeyId").GetString()));
        Assert.Equal($"acs:kms:cn-hangzhou:1234567890123456:key/{ids[2]}", keys[0].GetProperty("KeyArn").GetString());

        var defaults = (await client.Ok("ListKeys")).Body;
        Assert.Equal(1, defaults.GetProperty("PageNumber").GetInt32());
        Assert.Equal(10, defaults.GetProperty("PageSize").GetInt32());
        Assert.Equal(5, defaults.GetProperty("Keys").GetProperty("Key").GetArrayLength());
        var beyond = (await client.Ok("ListKeys", new Dictionary<string, string> { ["PageNumber"] = "9" })).Body;
        Assert.Equal(0, beyond.GetProperty("Keys").GetProperty("Key").GetArrayLength());
    }

    [Theory]
    [InlineData("PageSize", "0")]
    [InlineData("PageSize", "101")]
    [InlineData("PageNumber", "0")]
    [InlineData("PageNumber", "x")]
    [InlineData("Filters", "{\"Key\":\"KeyState\"}")]
    [InlineData("Filters", "[{\"Key\":\"Colour\",\"Values\":[\"red\"]}]")]
    public async Task ListKeys_rejects_bad_paging_and_filters(string name, string value)
    {
        await using var server = await TestServer.StartAsync();
        await server.Client().Fails("ListKeys", new() { [name] = value }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task ListKeys_filters_by_state()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var enabled = await client.CreateKey();
        var disabled = await client.CreateKey();
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = disabled });
        var body = (await client.Ok("ListKeys", new Dictionary<string, string> { ["Filters"] = "[{\"Key\":\"KeyState\",\"Values\":[\"Disabled\"]}]" })).Body;
        Assert.Equal([disabled], body.GetProperty("Keys").GetProperty("Key").EnumerateArray().Select(k => k.GetProperty("KeyId").GetString()));
        Assert.NotEqual(enabled, disabled);
    }

    [Fact]
    public async Task Disable_and_enable_move_between_states()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        Assert.Equal("Disabled", (await client.Describe(keyId)).GetProperty("KeyState").GetString());
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        await client.Ok("EnableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        Assert.Equal("Enabled", (await client.Describe(keyId)).GetProperty("KeyState").GetString());
        await client.Fails("EnableKey", new() { ["KeyId"] = Guid.NewGuid().ToString() }, 404, "Forbidden.KeyNotFound");
    }

    [Fact]
    public async Task Scheduled_deletion_follows_the_state_machine_and_deletes_after_the_window()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/doomed", ["KeyId"] = keyId });
        var blob = (await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Get("CiphertextBlob");

        await client.Fails("ScheduleKeyDeletion", new() { ["KeyId"] = keyId }, 400, "MissingParameter");
        await client.Fails("ScheduleKeyDeletion", new() { ["KeyId"] = keyId, ["PendingWindowInDays"] = "6" }, 400, "InvalidParameter");
        await client.Fails("ScheduleKeyDeletion", new() { ["KeyId"] = keyId, ["PendingWindowInDays"] = "367" }, 400, "InvalidParameter");
        await client.Fails("CancelKeyDeletion", new() { ["KeyId"] = keyId }, 409, "Rejected.StateModifiedFailed");

        await client.Ok("ScheduleKeyDeletion", new Dictionary<string, string> { ["KeyId"] = keyId, ["PendingWindowInDays"] = "7" });
        var metadata = await client.Describe(keyId);
        Assert.Equal("PendingDeletion", metadata.GetProperty("KeyState").GetString());
        var deleteDate = DateTimeOffset.Parse(metadata.GetProperty("DeleteDate").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(server.Clock.GetUtcNow().AddDays(7).ToUnixTimeSeconds(), deleteDate.ToUnixTimeSeconds(), 1.0);

        await client.Fails("ScheduleKeyDeletion", new() { ["KeyId"] = keyId, ["PendingWindowInDays"] = "7" }, 409, "Rejected.StateModifiedFailed");
        await client.Fails("EnableKey", new() { ["KeyId"] = keyId }, 409, "Rejected.StateModifiedFailed");
        await client.Fails("DisableKey", new() { ["KeyId"] = keyId }, 409, "Rejected.StateModifiedFailed");
        await client.Fails("GenerateDataKey", new() { ["KeyId"] = keyId }, 409, "Rejected.PendingDeletion");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob }, 409, "Rejected.PendingDeletion");

        await client.Ok("CancelKeyDeletion", new Dictionary<string, string> { ["KeyId"] = keyId });
        metadata = await client.Describe(keyId);
        Assert.Equal("Enabled", metadata.GetProperty("KeyState").GetString());
        Assert.Equal("", metadata.GetProperty("DeleteDate").GetString());

        await client.Ok("ScheduleKeyDeletion", new Dictionary<string, string> { ["KeyId"] = keyId, ["PendingWindowInDays"] = "7" });
        server.Clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1));
        await client.Fails("DescribeKey", new() { ["KeyId"] = keyId }, 404, "Forbidden.KeyNotFound");
        await client.Fails("DescribeKey", new() { ["KeyId"] = "alias/doomed" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob }, 404, "Forbidden.KeyNotFound");
    }
}
