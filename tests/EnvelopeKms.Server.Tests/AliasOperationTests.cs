using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId.</summary>
public class AliasOperationTests
{
    [Fact]
    public async Task Aliases_can_be_created_listed_moved_and_deleted()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var first = await client.CreateKey();
        var second = await client.CreateKey();
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/app/work-key", ["KeyId"] = first });
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/second_name", ["KeyId"] = "alias/app/work-key" });

        var all = (await client.Ok("ListAliases")).Body;
        Assert.Equal(2, all.GetProperty("TotalCount").GetInt32());
        var alias = all.GetProperty("Aliases").GetProperty("Alias")[0];
        Assert.Equal("alias/app/work-key", alias.GetProperty("AliasName").GetString());
        Assert.Equal(first, alias.GetProperty("KeyId").GetString());
        Assert.Equal("acs:kms:cn-hangzhou:1234567890123456:alias/app/work-key", alias.GetProperty("AliasArn").GetString());

        var byKey = (await client.Ok("ListAliasesByKeyId", new Dictionary<string, string> { ["KeyId"] = first, ["PageSize"] = "1" })).Body;
        Assert.Equal(2, byKey.GetProperty("TotalCount").GetInt32());
        Assert.Equal(1, byKey.GetProperty("Aliases").GetProperty("Alias").GetArrayLength());

        await client.Ok("UpdateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/app/work-key", ["KeyId"] = second });
        Assert.Equal(second, (await client.Describe("alias/app/work-key")).GetProperty("KeyId").GetString());
        var secondAliases = (await client.Ok("ListAliasesByKeyId", new Dictionary<string, string> { ["KeyId"] = second })).Body;
        Assert.Equal(1, secondAliases.GetProperty("TotalCount").GetInt32());

        await client.Ok("DeleteAlias", new Dictionary<string, string> { ["AliasName"] = "alias/app/work-key" });
        await client.Fails("DescribeKey", new() { ["KeyId"] = "alias/app/work-key" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("DeleteAlias", new() { ["AliasName"] = "alias/app/work-key" }, 404, "Forbidden.AliasNotFound");
        Assert.Equal(1, (await client.Ok("ListAliases")).Body.GetProperty("TotalCount").GetInt32());
    }

    [Theory]
    [InlineData("work-key")]
    [InlineData("alias/")]
    [InlineData("alias/has space")]
    [InlineData("alias/dots.not.allowed")]
    [InlineData("alias/acs-reserved")]
    [InlineData("alias/acs/x")]
    [InlineData("Alias/upper-prefix")]
    public async Task Invalid_alias_names_are_rejected(string aliasName)
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Fails("CreateAlias", new() { ["AliasName"] = aliasName, ["KeyId"] = keyId }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task Alias_name_length_limit_is_255_after_the_prefix()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/" + new string('a', 255), ["KeyId"] = keyId });
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/" + new string('b', 256), ["KeyId"] = keyId }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task Alias_errors_follow_the_reference()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/taken", ["KeyId"] = keyId });
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/taken", ["KeyId"] = keyId }, 400, "AliasAlreadyExists");
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/new", ["KeyId"] = Guid.NewGuid().ToString() }, 404, "Forbidden.KeyNotFound");
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/new" }, 400, "MissingParameter");
        await client.Fails("UpdateAlias", new() { ["AliasName"] = "alias/absent", ["KeyId"] = keyId }, 404, "Forbidden.AliasNotFound");
        await client.Fails("ListAliasesByKeyId", new() { ["KeyId"] = "alias/absent" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("ListAliases", new() { ["PageSize"] = "101" }, 400, "InvalidParameter");

        var doomed = await client.CreateKey();
        await client.Ok("ScheduleKeyDeletion", new Dictionary<string, string> { ["KeyId"] = doomed, ["PendingWindowInDays"] = "30" });
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/late", ["KeyId"] = doomed }, 409, "Rejected.StateModifiedFailed");
        await client.Fails("UpdateAlias", new() { ["AliasName"] = "alias/taken", ["KeyId"] = doomed }, 409, "Rejected.PendingDeletion");

        // A disabled target is fine for alias management.
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/on-disabled", ["KeyId"] = keyId });
    }
}
