using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>TagResource, UntagResource, ListResourceTags.</summary>
public class TagOperationTests
{
    private static async Task<List<(string Key, string Value)>> Tags(KmsTestClient client, string keyId)
    {
        var body = (await client.Ok("ListResourceTags", new Dictionary<string, string> { ["KeyId"] = keyId })).Body;
        return body.GetProperty("Tags").GetProperty("Tag").EnumerateArray()
            .Select(t =>
            {
                Assert.Equal(keyId, t.GetProperty("KeyId").GetString());
                return (t.GetProperty("TagKey").GetString()!, t.GetProperty("TagValue").GetString()!);
            }).ToList();
    }

    [Fact]
    public async Task Tags_can_be_added_overwritten_listed_and_removed()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        Assert.Empty(await Tags(client, keyId));
        await client.Ok("TagResource", new Dictionary<string, string> { ["KeyId"] = keyId, ["Tags"] = "[{\"TagKey\":\"env\",\"TagValue\":\"dev\"},{\"TagKey\":\"team\",\"TagValue\":\"crypto\"}]" });
        await client.Ok("TagResource", new Dictionary<string, string> { ["KeyId"] = keyId, ["Tags"] = "[{\"TagKey\":\"env\",\"TagValue\":\"prod\"}]" });
        Assert.Equal([("env", "prod"), ("team", "crypto")], await Tags(client, keyId));
        await client.Ok("UntagResource", new Dictionary<string, string> { ["KeyId"] = keyId, ["TagKeys"] = "[\"env\",\"absent\"]" });
        Assert.Equal([("team", "crypto")], await Tags(client, keyId));
    }

    [Fact]
    public async Task CreateKey_can_set_tags()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var response = await client.Ok("CreateKey", new Dictionary<string, string> { ["Tags"] = "[{\"TagKey\":\"owner\",\"TagValue\":\"me\"}]" });
        var keyId = response.Body.GetProperty("KeyMetadata").GetProperty("KeyId").GetString()!;
        Assert.Equal([("owner", "me")], await Tags(client, keyId));
    }

    [Fact]
    public async Task At_most_ten_tags_per_key()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        var ten = "[" + string.Join(",", Enumerable.Range(0, 10).Select(i => $"{{\"TagKey\":\"k{i}\",\"TagValue\":\"v\"}}")) + "]";
        await client.Ok("TagResource", new Dictionary<string, string> { ["KeyId"] = keyId, ["Tags"] = ten });
        await client.Fails("TagResource", new() { ["KeyId"] = keyId, ["Tags"] = "[{\"TagKey\":\"k10\",\"TagValue\":\"v\"}]" }, 400, "Rejected.LimitExceeded");
        Assert.Equal(10, (await Tags(client, keyId)).Count);
    }

    [Theory]
    [InlineData("TagResource", "Tags", "not json")]
    [InlineData("TagResource", "Tags", "[]")]
    [InlineData("TagResource", "Tags", "[{\"TagKey\":\"\",\"TagValue\":\"v\"}]")]
    [InlineData("TagResource", "Tags", "[{\"TagKey\":\"aliyun-x\",\"TagValue\":\"v\"}]")]
    [InlineData("TagResource", "Tags", "[{\"TagKey\":\"a\",\"TagValue\":\"v\"},{\"TagKey\":\"a\",\"TagValue\":\"w\"}]")]
    [InlineData("UntagResource", "TagKeys", "{\"a\":\"b\"}")]
    [InlineData("UntagResource", "TagKeys", "[]")]
    public async Task Malformed_tag_parameters_are_rejected(string action, string name, string value)
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Fails(action, new() { ["KeyId"] = keyId, [name] = value }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task Tag_operations_need_an_existing_key()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        await client.Fails("ListResourceTags", new() { ["KeyId"] = Guid.NewGuid().ToString() }, 404, "Forbidden.KeyNotFound");
        await client.Fails("TagResource", new() { ["KeyId"] = "alias/none", ["Tags"] = "[{\"TagKey\":\"a\",\"TagValue\":\"b\"}]" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("TagResource", new() { ["SecretName"] = "s", ["Tags"] = "[{\"TagKey\":\"a\",\"TagValue\":\"b\"}]" }, 400, "InvalidParameter");
        await client.Fails("UntagResource", new() { ["TagKeys"] = "[\"a\"]" }, 400, "MissingParameter");
    }
}
