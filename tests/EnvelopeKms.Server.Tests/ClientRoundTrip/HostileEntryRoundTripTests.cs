using System.Buffers.Binary;
using System.Text;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests.ClientRoundTrip;

/// <summary>
/// Issue 18, "one hostile file must not spoil the batch": wrapped-key entries crafted to fail in ways that used to
/// escape the reader's handling, against a real local server and the real KMS data key provider.
/// </summary>
public class HostileEntryRoundTripTests
{
    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "hostile" });

    private static KmsConnectionSettings Settings(TestServer home, IReadOnlyDictionary<string, string>? regionEndpoints = null) => new()
    {
        Endpoint = home.Endpoint.GetLeftPart(UriPartial.Authority),
        Region = "cn-hangzhou",
        AccessKeyId = "testid",
        AccessKeySecret = "testsecret",
        RegionEndpoints = regionEndpoints,
        Retry = RoundTrip.FastRetry(2),
        CredentialOptions = new Credentials.CredentialResolutionOptions { GetEnvironmentVariable = _ => null, HomeDirectory = Path.GetTempPath() + "/ekms-no-home" },
    };

    private static async Task<byte[]> EncryptAsync(IDataKeyProvider provider, string keyId, byte[] plaintext)
    {
        using var dataKey = await provider.GenerateDataKeyAsync([keyId], Context, CancellationToken.None);
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream(plaintext), output, dataKey, Context);
        return output.ToArray();
    }

    [Fact]
    public async Task A_region_with_a_trailing_newline_in_slot_0_is_slot_damage_and_slot_1_decrypts()
    {
        // "cn-hangzho\n" passed the region pattern ('$' matches before a final newline), then new Uri threw an
        // UriFormatException that nothing handled: the file failed as an unexpected error instead of using slot 1.
        await using var server = await TestServer.StartAsync(o => o.Region = "cn-hangzhou");
        var settings = Settings(server);
        using var home = KmsClientFactory.Create(settings);
        using var clients = KmsClientFactory.CreateRegionalClients(settings, home);
        var provider = new KmsDataKeyProvider(clients);
        var keyId = (await home.CreateKeyAsync()).KeyId;
        var plaintext = Encoding.UTF8.GetBytes("genuine");
        var file = await EncryptAsync(provider, keyId, plaintext);

        int slotSize = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(48));
        int at = file.AsSpan(EnvelopeFormat.PreambleSize, slotSize).IndexOf("cn-hangzhou"u8);
        Assert.True(at > 0);
        file[EnvelopeFormat.PreambleSize + at + "cn-hangzhou".Length - 1] = (byte)'\n';

        var output = new MemoryStream();
        var result = await Envelope.DecryptAsync(new MemoryStream(file), output, provider);
        Assert.Equal(plaintext, output.ToArray());
        Assert.Equal(1, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[0].State);
    }
}
