using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>
/// Issue 18: in .NET, '$' also matches before a final newline, so "name\n" passed every validation pattern that
/// ended in '$'. The server's patterns end in '\z'.
/// </summary>
public class ValidationPatternTests
{
    [Fact]
    public async Task A_trailing_newline_is_not_part_of_a_valid_alias_name_or_rotation_interval()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey();
        await client.Fails("CreateAlias", new() { ["AliasName"] = "alias/newline\n", ["KeyId"] = keyId }, 400, "InvalidParameter");
        await client.Fails("CreateKey", new() { ["EnableAutomaticRotation"] = "true", ["RotationInterval"] = "30d\n" }, 400, "InvalidParameter");
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/newline", ["KeyId"] = keyId });
    }
}
