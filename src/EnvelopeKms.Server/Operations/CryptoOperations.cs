using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EnvelopeKms.Server.Crypto;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// GenerateDataKey, GenerateDataKeyWithoutPlaintext, Encrypt, Decrypt, ReEncrypt.
/// Blobs are sealed under the key's primary version (see <see cref="CiphertextBlobCodec"/>).
/// A blob that does not authenticate, including one presented with a different
/// EncryptionContext, fails with 400 InvalidParameter on CiphertextBlob: the reference leaves
/// the real code for that case unverified (§8 item 1) and names this as the reasonable choice.
/// </summary>
internal sealed class CryptoOperations(KmsStateStore store, KeyResolver resolver)
{
    /// <summary>Encrypt takes at most 6 KB of data (reference §7).</summary>
    public const int MaxEncryptPlaintextBytes = 6144;

    public void Register(OperationRegistry registry)
    {
        registry.Add(OperationRegistry.KmsVersion, "GenerateDataKey", request => GenerateDataKey(request, includePlaintext: true));
        registry.Add(OperationRegistry.KmsVersion, "GenerateDataKeyWithoutPlaintext", request => GenerateDataKey(request, includePlaintext: false));
        registry.Add(OperationRegistry.KmsVersion, "Encrypt", Encrypt);
        registry.Add(OperationRegistry.KmsVersion, "Decrypt", Decrypt);
        registry.Add(OperationRegistry.KmsVersion, "ReEncrypt", ReEncrypt);
    }

    private JsonObject GenerateDataKey(KmsRequest request, bool includePlaintext)
    {
        var keyId = request.Required("KeyId");
        var length = DataKeyLength(request);
        var context = EncryptionContextParser.Parse(request.Optional("EncryptionContext"), "EncryptionContext");
        var dryRun = request.OptionalBool("DryRun");
        var dataKey = RandomNumberGenerator.GetBytes(length);
        try
        {
            var (key, versionId, blob) = Seal(keyId, dataKey, context, dryRun);
            var response = new JsonObject
            {
                ["KeyId"] = key,
                ["KeyVersionId"] = versionId,
                ["CiphertextBlob"] = Convert.ToBase64String(blob),
            };
            if (includePlaintext)
            {
                response["Plaintext"] = Convert.ToBase64String(dataKey);
            }
            return response;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private JsonObject Encrypt(KmsRequest request)
    {
        var keyId = request.Required("KeyId");
        var plaintext = request.RequiredBase64("Plaintext");
        if (plaintext.Length > MaxEncryptPlaintextBytes)
        {
            throw KmsErrors.InvalidParameter("Plaintext");
        }
        var context = EncryptionContextParser.Parse(request.Optional("EncryptionContext"), "EncryptionContext");
        var (key, versionId, blob) = Seal(keyId, plaintext, context, request.OptionalBool("DryRun"));
        return new JsonObject { ["KeyId"] = key, ["KeyVersionId"] = versionId, ["CiphertextBlob"] = Convert.ToBase64String(blob) };
    }

    private JsonObject Decrypt(KmsRequest request)
    {
        var blob = request.RequiredBase64("CiphertextBlob");
        var context = EncryptionContextParser.Parse(request.Optional("EncryptionContext"), "EncryptionContext");
        var dryRun = request.OptionalBool("DryRun");
        var (keyId, versionId, plaintext) = Open(blob, context, "CiphertextBlob");
        try
        {
            if (dryRun)
            {
                throw KmsErrors.DryRunSucceeded();
            }
            return new JsonObject { ["KeyId"] = keyId, ["KeyVersionId"] = versionId, ["Plaintext"] = Convert.ToBase64String(plaintext) };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private JsonObject ReEncrypt(KmsRequest request)
    {
        var blob = request.RequiredBase64("CiphertextBlob");
        var destinationKeyId = request.Required("DestinationKeyId");
        var sourceContext = EncryptionContextParser.Parse(request.Optional("SourceEncryptionContext"), "SourceEncryptionContext");
        var destinationContext = EncryptionContextParser.Parse(request.Optional("DestinationEncryptionContext"), "DestinationEncryptionContext");
        if (request.Optional("SourceEncryptionAlgorithm") is not null)
        {
            // Only meaningful for asymmetric source keys, which this server does not have.
            throw KmsErrors.InvalidParameter("SourceEncryptionAlgorithm");
        }
        var (sourceKeyId, sourceVersionId, plaintext) = Open(blob, sourceContext, "CiphertextBlob");
        try
        {
            if (request.Optional("SourceKeyId") is { } claimedKey
                && store.Read(state => resolver.Resolve(state, claimedKey).KeyId) != sourceKeyId)
            {
                throw KmsErrors.InvalidParameter("SourceKeyId");
            }
            if (request.Optional("SourceKeyVersionId") is { } claimedVersion && claimedVersion != sourceVersionId)
            {
                throw KmsErrors.InvalidParameter("SourceKeyVersionId");
            }
            var (key, versionId, newBlob) = Seal(destinationKeyId, plaintext, destinationContext, dryRun: false);
            return new JsonObject { ["KeyId"] = key, ["KeyVersionId"] = versionId, ["CiphertextBlob"] = Convert.ToBase64String(newBlob) };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>NumberOfBytes (1–1024) wins over KeySpec (AES_256 → 32, AES_128 → 16); neither → 32.</summary>
    private static int DataKeyLength(KmsRequest request)
    {
        var fromSpec = request.Optional("KeySpec") switch
        {
            null or "AES_256" => 32,
            "AES_128" => 16,
            _ => throw KmsErrors.InvalidParameter("KeySpec"),
        };
        return request.OptionalInt("NumberOfBytes", 1, 1024) ?? fromSpec;
    }

    private (string KeyId, string KeyVersionId, byte[] Blob) Seal(string keyIdParameter, byte[] plaintext, SortedDictionary<string, string> context, bool dryRun)
    {
        var (key, version) = store.Read(state =>
        {
            var key = resolver.Resolve(state, keyIdParameter);
            KeyResolver.RequireEnabled(key);
            return (key.KeyId, key.Versions.Single(v => v.KeyVersionId == key.PrimaryKeyVersionId));
        });
        if (dryRun)
        {
            throw KmsErrors.DryRunSucceeded();
        }
        var blob = CiphertextBlobCodec.Seal(key, version.KeyVersionId, version.Material, plaintext, EncryptionContextParser.Canonical(context));
        return (key, version.KeyVersionId, blob);
    }

    private (string KeyId, string KeyVersionId, byte[] Plaintext) Open(byte[] blob, SortedDictionary<string, string> context, string parameterName)
    {
        var versionId = CiphertextBlobCodec.ReadKeyVersionId(blob) ?? throw KmsErrors.InvalidParameter(parameterName);
        var (key, material) = store.Read(state =>
        {
            // A well-formed blob whose key is gone (deleted) names a key that does not exist.
            var key = state.Keys.FirstOrDefault(k => k.Versions.Any(v => v.KeyVersionId == versionId)) ?? throw KmsErrors.KeyNotFound();
            KeyResolver.RequireEnabled(key);
            return (key.KeyId, key.Versions.Single(v => v.KeyVersionId == versionId).Material);
        });
        var plaintext = CiphertextBlobCodec.Open(key, versionId, material, blob, EncryptionContextParser.Canonical(context))
            ?? throw KmsErrors.InvalidParameter(parameterName);
        return (key, versionId, plaintext);
    }
}
