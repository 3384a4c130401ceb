using System.Text.Json;

namespace EnvelopeKms.Server.Tests.Infrastructure;

/// <summary>Shortcuts shared by the operation tests.</summary>
internal static class KmsAssertions
{
    public static async Task<string> CreateKey(this KmsTestClient client, string description = "")
    {
        var response = await client.Ok("CreateKey", new Dictionary<string, string> { ["Description"] = description });
        return response.Body.GetProperty("KeyMetadata").GetProperty("KeyId").GetString()!;
    }

    public static async Task<JsonElement> Describe(this KmsTestClient client, string keyId) =>
        (await client.Ok("DescribeKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Body.GetProperty("KeyMetadata");

    public static async Task Fails(this KmsTestClient client, string action, Dictionary<string, string> parameters, int status, string code)
    {
        var response = await client.Call(action, parameters);
        Assert.True(response.Status == status && response.Code == code, $"{action}: expected {status} {code}, got {response}");
    }
}
