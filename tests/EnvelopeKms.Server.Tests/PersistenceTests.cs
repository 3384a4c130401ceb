using EnvelopeKms.Server.Hosting;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>State survives restarts, is written atomically, and is readable by the owner only.</summary>
public class PersistenceTests
{
    [Fact]
    public async Task Keys_aliases_tags_states_and_blobs_survive_a_restart()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        var keyId = await client.CreateKey("persistent");
        var disabled = await client.CreateKey();
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = disabled });
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/kept", ["KeyId"] = keyId });
        await client.Ok("TagResource", new Dictionary<string, string> { ["KeyId"] = keyId, ["Tags"] = "[{\"TagKey\":\"t\",\"TagValue\":\"v\"}]" });
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = "alias/kept", ["EncryptionContext"] = "{\"f\":\"1\"}" });
        var before = await client.Describe(keyId);
        var oldEndpoint = server.Endpoint;

        await server.RestartAsync();
        client = server.Client();
        Assert.NotEqual(oldEndpoint, server.Endpoint);

        var after = await client.Describe("alias/kept");
        Assert.Equal(before.ToString(), after.ToString());
        Assert.Equal("Disabled", (await client.Describe(disabled)).GetProperty("KeyState").GetString());
        var decrypted = await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = dataKey.Get("CiphertextBlob"), ["EncryptionContext"] = "{\"f\":\"1\"}" });
        Assert.Equal(dataKey.Get("Plaintext"), decrypted.Get("Plaintext"));
        var tags = (await client.Ok("ListResourceTags", new Dictionary<string, string> { ["KeyId"] = keyId })).Body.GetProperty("Tags").GetProperty("Tag");
        Assert.Equal("t", tags[0].GetProperty("TagKey").GetString());
        Assert.Equal(2, (await client.Ok("ListKeys")).Body.GetProperty("TotalCount").GetInt32());
    }

    [Fact]
    public async Task Data_directory_and_state_file_are_owner_only_and_no_temp_files_remain()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix modes do not exist there; the ACL of the user profile applies instead.
        }
        // A new directory is created 0700 (an existing one keeps its mode: ServerHardeningTests).
        var directory = Path.Combine(Path.GetTempPath(), "ekms-perm-" + Guid.NewGuid().ToString("N"));
        await using var server = await TestServer.StartAsync(o => o.DataDirectory = directory);
        var client = server.Client();
        for (var i = 0; i < 3; i++)
        {
            await client.CreateKey();
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
        var stateFile = Path.Combine(directory, "state.json");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(stateFile));
        Assert.Equal(["state.json"], Directory.GetFiles(directory).Select(Path.GetFileName));
    }

    [Fact]
    public async Task A_damaged_state_file_stops_the_start_instead_of_being_overwritten()
    {
        var directory = Path.Combine(Path.GetTempPath(), "ekms-bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            File.WriteAllText(Path.Combine(directory, "state.json"), "{ not json");
            await using var server = new KmsServer();
            await Assert.ThrowsAsync<InvalidDataException>(() => server.StartAsync(new KmsServerOptions { DataDirectory = directory }));
            Assert.Equal("{ not json", File.ReadAllText(Path.Combine(directory, "state.json")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Key_material_differs_per_key_and_is_32_bytes()
    {
        await using var server = await TestServer.StartAsync();
        var client = server.Client();
        await client.CreateKey();
        await client.CreateKey();
        using var state = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(server.DataDirectory, "state.json")));
        var materials = state.RootElement.GetProperty("Keys").EnumerateArray()
            .Select(k => k.GetProperty("Versions")[0].GetProperty("Material").GetString()!)
            .ToList();
        Assert.Equal(2, materials.Distinct().Count());
        Assert.All(materials, m => Assert.Equal(32, Convert.FromBase64String(m).Length));
    }
}
