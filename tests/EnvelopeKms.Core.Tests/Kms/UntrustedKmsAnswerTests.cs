using System.Security.Cryptography;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

/// <summary>
/// A KMS (or something between us and it) that answers Decrypt with crafted JSON: a key outside the allow-list, a data
/// key of the wrong length, a missing or malformed plaintext, a huge body. Decrypting a real file through
/// <see cref="EnvelopeFileOperations"/> fails with a <see cref="KeyProviderException"/> and writes nothing.
/// </summary>
public class UntrustedKmsAnswerTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly byte[] DataKeyBytes = RandomNumberGenerator.GetBytes(32);

    /// <summary>An honest GenerateDataKey (blob "blob-k1", key id k1) and a Decrypt answered by <paramref name="decrypt"/>.</summary>
    private static LocalHttpServer Kms(Func<StubResponse> decrypt) => new(r => r.Header("x-acs-action") switch
    {
        "GenerateDataKey" => StubResponse.Json($"{{\"KeyId\":\"k1\",\"KeyVersionId\":\"v\",\"CiphertextBlob\":\"blob-k1\",\"Plaintext\":\"{Convert.ToBase64String(DataKeyBytes)}\",\"RequestId\":\"r\"}}"),
        "Decrypt" => decrypt(),
        _ => StubResponse.Error(404, "InvalidAction.NotFound"),
    });

    private static string Answer(string keyId, byte[] plaintext)
        => $"{{\"KeyId\":\"{keyId}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(plaintext)}\",\"RequestId\":\"r\"}}";

    public static TheoryData<string, string, KeyProviderError> Answers() => new()
    {
        { "another key than the allowed one", Answer("evil", DataKeyBytes), KeyProviderError.InvalidDataKey },
        { "an ARN of another key", Answer("acs:kms:cn-test:1234:key/evil", DataKeyBytes), KeyProviderError.InvalidDataKey },
        { "a 16-byte key", Answer("k1", DataKeyBytes[..16]), KeyProviderError.InvalidDataKey },
        { "a 64-byte key", Answer("k1", [.. DataKeyBytes, .. DataKeyBytes]), KeyProviderError.InvalidDataKey },
        { "an empty key", "{\"KeyId\":\"k1\",\"KeyVersionId\":\"v\",\"Plaintext\":\"\",\"RequestId\":\"r\"}", KeyProviderError.InvalidDataKey },
        { "no plaintext", "{\"KeyId\":\"k1\",\"KeyVersionId\":\"v\",\"RequestId\":\"r\"}", KeyProviderError.Unavailable },
        { "no key id", $"{{\"KeyVersionId\":\"v\",\"Plaintext\":\"{Convert.ToBase64String(DataKeyBytes)}\"}}", KeyProviderError.Unavailable },
        { "a plaintext that is not base64", "{\"KeyId\":\"k1\",\"Plaintext\":\"%%%%\"}", KeyProviderError.Unavailable },
        { "a plaintext that is a number", "{\"KeyId\":\"k1\",\"Plaintext\":12345}", KeyProviderError.Unavailable },
        { "not JSON", "<html>proxy error</html>", KeyProviderError.Unavailable },
        { "a 20 MB body", "{\"KeyId\":\"k1\",\"Pad\":\"" + new string('A', 20_000_000) + "\"}", KeyProviderError.Unavailable },
        { "two Plaintext fields (the last, 31 bytes, counts)", "{\"KeyId\":\"k1\",\"Plaintext\":\"" + Convert.ToBase64String(new byte[32]) + "\",\"Plaintext\":\"" + Convert.ToBase64String(new byte[31]) + "\"}", KeyProviderError.InvalidDataKey },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public async Task ACraftedDecryptAnswer_IsRejected_AndNothingIsWritten(string what, string body, KeyProviderError expected)
    {
        await using var kms = Kms(() => StubResponse.Json(body));
        using var client = TestClients.For(kms, maxAttempts: 1);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = ["k1"] });
        string source = _dir.File("plain");
        await File.WriteAllBytesAsync(source, Bytes.Random(5000, 1));
        using (var key = await provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, default))
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);

        var e = await Record.ExceptionAsync(() => EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", _dir.File("out"), provider));

        var k = Assert.IsType<KeyProviderException>(e);
        Assert.True(expected == k.Error, $"{what}: {k.Error}: {k.Message}");
        Assert.False(File.Exists(_dir.File("out")));
        Assert.Empty(Directory.GetFiles(_dir.Path, "*" + EnvelopeFileOperations.TempSuffix));
    }

    [Fact]
    public async Task AnHonestAnswer_ThroughTheSameStandIn_Decrypts()
    {
        await using var kms = Kms(() => StubResponse.Json(Answer("acs:kms:cn-test:1234:key/k1", DataKeyBytes)));
        using var client = TestClients.For(kms, maxAttempts: 1);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = ["k1"] });
        string source = _dir.File("plain");
        var plaintext = Bytes.Random(5000, 2);
        await File.WriteAllBytesAsync(source, plaintext);
        using (var key = await provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, default))
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
        await EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", _dir.File("out"), provider);
        Assert.Equal(plaintext, await File.ReadAllBytesAsync(_dir.File("out")));
    }

    /// <summary>A right-length key that is not the file's (a KMS lying about the plaintext) fails the key commitment.</summary>
    [Fact]
    public async Task AWrongKeyOfTheRightLength_FailsTheKeyCommitment()
    {
        await using var kms = Kms(() => StubResponse.Json(Answer("k1", RandomNumberGenerator.GetBytes(32))));
        using var client = TestClients.For(kms, maxAttempts: 1);
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = ["k1"] });
        string source = _dir.File("plain");
        await File.WriteAllBytesAsync(source, Bytes.Random(100, 3));
        using (var key = await provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, default))
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", _dir.File("out"), provider));
        Assert.Equal(EnvelopeError.KeyCommitmentMismatch, e.Error);
        Assert.False(File.Exists(_dir.File("out")));
    }
}
