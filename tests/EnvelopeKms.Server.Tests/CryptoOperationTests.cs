using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>GenerateDataKey(WithoutPlaintext), Encrypt, Decrypt, ReEncrypt and their parameter rules.</summary>
public class CryptoOperationTests
{
    private static async Task<(TestServer Server, KmsTestClient Client, string KeyId)> Setup()
    {
        var server = await TestServer.StartAsync();
        var client = server.Client();
        return (server, client, await client.CreateKey());
    }

    [Theory]
    [InlineData(null, null, 32)]
    [InlineData("AES_256", null, 32)]
    [InlineData("AES_128", null, 16)]
    [InlineData("AES_128", "64", 64)]
    [InlineData(null, "1", 1)]
    [InlineData(null, "1024", 1024)]
    public async Task GenerateDataKey_sizes(string? keySpec, string? numberOfBytes, int expected)
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var parameters = new Dictionary<string, string> { ["KeyId"] = keyId };
        if (keySpec is not null)
        {
            parameters["KeySpec"] = keySpec;
        }
        if (numberOfBytes is not null)
        {
            parameters["NumberOfBytes"] = numberOfBytes;
        }
        var response = await client.Ok("GenerateDataKey", parameters);
        Assert.Equal(expected, Convert.FromBase64String(response.Get("Plaintext")).Length);
        Assert.Equal(keyId, response.Get("KeyId"));
        var primary = (await client.Describe(keyId)).GetProperty("PrimaryKeyVersion").GetString();
        Assert.Equal(primary, response.Get("KeyVersionId"));
        // The blob starts with the 36-character key version id, as real blobs do.
        Assert.Equal(primary, System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(response.Get("CiphertextBlob")), 0, 36));
    }

    [Theory]
    [InlineData("NumberOfBytes", "0")]
    [InlineData("NumberOfBytes", "1025")]
    [InlineData("NumberOfBytes", "-1")]
    [InlineData("NumberOfBytes", "ten")]
    [InlineData("KeySpec", "AES_512")]
    [InlineData("EncryptionContext", "[\"a\"]")]
    [InlineData("EncryptionContext", "{\"Key\":12345}")]
    [InlineData("EncryptionContext", "{\"a\":{\"b\":\"c\"}}")]
    [InlineData("EncryptionContext", "{\"a\":\"b\"")]
    [InlineData("EncryptionContext", "\"text\"")]
    [InlineData("EncryptionContext", "{\"a\":\"1\",\"a\":\"2\"}")]
    [InlineData("DryRun", "perhaps")]
    public async Task GenerateDataKey_rejects_invalid_parameters(string name, string value)
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        await client.Fails("GenerateDataKey", new() { ["KeyId"] = keyId, [name] = value }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task EncryptionContext_longer_than_8192_characters_is_rejected()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var context = "{\"k\":\"" + new string('v', 8190) + "\"}";
        await client.Fails("GenerateDataKey", new() { ["KeyId"] = keyId, ["EncryptionContext"] = context }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task Decrypt_needs_an_equal_context_regardless_of_order_and_whitespace()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId, ["EncryptionContext"] = "{\"a\":\"1\",\"b\":\"2\"}" });
        var blob = dataKey.Get("CiphertextBlob");

        var reordered = await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = blob, ["EncryptionContext"] = " { \"b\" : \"2\", \"a\":\"1\" } " });
        Assert.Equal(dataKey.Get("Plaintext"), reordered.Get("Plaintext"));
        Assert.Equal(keyId, reordered.Get("KeyId"));
        Assert.Equal(dataKey.Get("KeyVersionId"), reordered.Get("KeyVersionId"));

        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob }, 400, "InvalidParameter");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob, ["EncryptionContext"] = "{\"a\":\"1\"}" }, 400, "InvalidParameter");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob, ["EncryptionContext"] = "{\"a\":\"1\",\"b\":\"3\"}" }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task Decrypt_without_context_accepts_an_empty_object_and_a_trailing_newline()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        var blob = dataKey.Get("CiphertextBlob");
        Assert.Equal(dataKey.Get("Plaintext"), (await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = blob + "\n" })).Get("Plaintext"));
        Assert.Equal(dataKey.Get("Plaintext"), (await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = " " + blob, ["EncryptionContext"] = "{}" })).Get("Plaintext"));
    }

    [Fact]
    public async Task Tampered_or_foreign_blobs_are_rejected()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var bytes = Convert.FromBase64String((await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Get("CiphertextBlob"));
        bytes[^1] ^= 0x01;
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = Convert.ToBase64String(bytes) }, 400, "InvalidParameter");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = "not base64!" }, 400, "InvalidParameter");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = Convert.ToBase64String(new byte[80]) }, 400, "InvalidParameter");
        await client.Fails("Decrypt", [], 400, "MissingParameter");

        // Well-formed, but naming a key version this server never had.
        bytes[^1] ^= 0x01;
        var foreign = System.Text.Encoding.ASCII.GetBytes(Guid.NewGuid().ToString("D"));
        foreign.CopyTo(bytes, 0);
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = Convert.ToBase64String(bytes) }, 404, "Forbidden.KeyNotFound");
    }

    [Fact]
    public async Task Blobs_are_bound_to_their_key()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var other = await client.CreateKey();
        var mine = Convert.FromBase64String((await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId })).Get("CiphertextBlob"));
        var otherVersion = (await client.Describe(other)).GetProperty("PrimaryKeyVersion").GetString()!;
        System.Text.Encoding.ASCII.GetBytes(otherVersion).CopyTo(mine, 0);
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = Convert.ToBase64String(mine) }, 400, "InvalidParameter");
    }

    [Fact]
    public async Task GenerateDataKeyWithoutPlaintext_returns_no_plaintext_but_a_decryptable_blob()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var response = await client.Ok("GenerateDataKeyWithoutPlaintext", new Dictionary<string, string> { ["KeyId"] = keyId, ["KeySpec"] = "AES_128", ["EncryptionContext"] = "{\"x\":\"y\"}" });
        Assert.False(response.Body.TryGetProperty("Plaintext", out _));
        Assert.Equal(keyId, response.Get("KeyId"));
        var decrypted = await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = response.Get("CiphertextBlob"), ["EncryptionContext"] = "{\"x\":\"y\"}" });
        Assert.Equal(16, Convert.FromBase64String(decrypted.Get("Plaintext")).Length);
    }

    [Fact]
    public async Task Encrypt_and_Decrypt_round_trip_up_to_6_KB()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var plaintext = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6144));
        await client.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = "alias/enc", ["KeyId"] = keyId });
        var encrypted = await client.Ok("Encrypt", new Dictionary<string, string> { ["KeyId"] = "alias/enc", ["Plaintext"] = plaintext });
        Assert.Equal(keyId, encrypted.Get("KeyId"));
        Assert.False(encrypted.Body.TryGetProperty("Plaintext", out _));
        Assert.Equal(plaintext, (await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = encrypted.Get("CiphertextBlob") })).Get("Plaintext"));

        var tooBig = Convert.ToBase64String(new byte[6145]);
        await client.Fails("Encrypt", new() { ["KeyId"] = keyId, ["Plaintext"] = tooBig }, 400, "InvalidParameter");
        await client.Fails("Encrypt", new() { ["KeyId"] = keyId, ["Plaintext"] = "%%%" }, 400, "InvalidParameter");
        await client.Fails("Encrypt", new() { ["KeyId"] = keyId }, 400, "MissingParameter");
        await client.Fails("Encrypt", new() { ["Plaintext"] = plaintext }, 400, "MissingParameter");
    }

    [Fact]
    public async Task ReEncrypt_moves_a_blob_to_another_key_and_context()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var destination = await client.CreateKey();
        var dataKey = await client.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId, ["EncryptionContext"] = "{\"v\":\"1\"}" });
        var reEncrypted = await client.Ok("ReEncrypt", new Dictionary<string, string>
        {
            ["CiphertextBlob"] = dataKey.Get("CiphertextBlob"),
            ["SourceEncryptionContext"] = "{\"v\":\"1\"}",
            ["DestinationKeyId"] = destination,
            ["DestinationEncryptionContext"] = "{\"v\":\"2\"}",
            ["SourceKeyId"] = keyId,
            ["SourceKeyVersionId"] = dataKey.Get("KeyVersionId"),
        });
        Assert.Equal(destination, reEncrypted.Get("KeyId"));
        var decrypted = await client.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = reEncrypted.Get("CiphertextBlob"), ["EncryptionContext"] = "{\"v\":\"2\"}" });
        Assert.Equal(dataKey.Get("Plaintext"), decrypted.Get("Plaintext"));
        Assert.Equal(destination, decrypted.Get("KeyId"));

        var baseParameters = new Dictionary<string, string> { ["CiphertextBlob"] = dataKey.Get("CiphertextBlob"), ["SourceEncryptionContext"] = "{\"v\":\"1\"}", ["DestinationKeyId"] = destination };
        await client.Fails("ReEncrypt", new(baseParameters) { ["SourceEncryptionContext"] = "{\"v\":\"9\"}" }, 400, "InvalidParameter");
        await client.Fails("ReEncrypt", new(baseParameters) { ["SourceKeyId"] = destination }, 400, "InvalidParameter");
        await client.Fails("ReEncrypt", new(baseParameters) { ["SourceKeyVersionId"] = Guid.NewGuid().ToString() }, 400, "InvalidParameter");
        await client.Fails("ReEncrypt", new(baseParameters) { ["SourceEncryptionAlgorithm"] = "RSAES_OAEP_SHA_256" }, 400, "InvalidParameter");
        await client.Fails("ReEncrypt", new(baseParameters) { ["DestinationKeyId"] = "alias/none" }, 404, "Forbidden.AliasNotFound");
        await client.Fails("ReEncrypt", new() { ["CiphertextBlob"] = dataKey.Get("CiphertextBlob") }, 400, "MissingParameter");

        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = destination });
        await client.Fails("ReEncrypt", baseParameters, 409, "Rejected.Disabled");
        await client.Ok("EnableKey", new Dictionary<string, string> { ["KeyId"] = destination });
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        await client.Fails("ReEncrypt", baseParameters, 409, "Rejected.Disabled");
    }

    [Fact]
    public async Task Disabled_keys_reject_every_cryptographic_operation()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var blob = (await client.Ok("Encrypt", new Dictionary<string, string> { ["KeyId"] = keyId, ["Plaintext"] = "aGVsbG8=" })).Get("CiphertextBlob");
        await client.Ok("DisableKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        var response = await client.Call("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId });
        Assert.Equal(409, response.Status);
        Assert.Equal("Rejected.Disabled", response.Code);
        Assert.Equal("The request was rejected because the key state is Disabled.", response.Message);
        await client.Fails("GenerateDataKeyWithoutPlaintext", new() { ["KeyId"] = keyId }, 409, "Rejected.Disabled");
        await client.Fails("Encrypt", new() { ["KeyId"] = keyId, ["Plaintext"] = "aGVsbG8=" }, 409, "Rejected.Disabled");
        await client.Fails("Decrypt", new() { ["CiphertextBlob"] = blob }, 409, "Rejected.Disabled");
    }

    [Fact]
    public async Task Concurrent_calls_from_several_clients_all_succeed()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        var modes = Enum.GetValues<SigningMode>();
        var calls = Enumerable.Range(0, 60).Select(async i =>
        {
            var caller = server.Client(modes[i % modes.Length]);
            var dataKey = await caller.Ok("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId, ["EncryptionContext"] = $"{{\"n\":\"{i}\"}}" });
            var decrypted = await caller.Ok("Decrypt", new Dictionary<string, string> { ["CiphertextBlob"] = dataKey.Get("CiphertextBlob"), ["EncryptionContext"] = $"{{\"n\":\"{i}\"}}" });
            Assert.Equal(dataKey.Get("Plaintext"), decrypted.Get("Plaintext"));
            if (i % 10 == 0)
            {
                await caller.Ok("CreateAlias", new Dictionary<string, string> { ["AliasName"] = $"alias/parallel-{i}", ["KeyId"] = keyId });
            }
        });
        await Task.WhenAll(calls);
        var aliases = (await client.Ok("ListAliasesByKeyId", new Dictionary<string, string> { ["KeyId"] = keyId })).Body;
        Assert.Equal(6, aliases.GetProperty("TotalCount").GetInt32());
    }

    [Fact]
    public async Task DryRun_validates_without_doing_the_work()
    {
        var (server, client, keyId) = await Setup();
        await using var owned = server;
        await client.Fails("GenerateDataKey", new() { ["KeyId"] = keyId, ["DryRun"] = "true" }, 400, "DryRunOperationError");
        await client.Fails("GenerateDataKey", new() { ["KeyId"] = "alias/none", ["DryRun"] = "true" }, 404, "Forbidden.AliasNotFound");
        Assert.Equal(200, (await client.Call("GenerateDataKey", new Dictionary<string, string> { ["KeyId"] = keyId, ["DryRun"] = "false" })).Status);
    }
}
