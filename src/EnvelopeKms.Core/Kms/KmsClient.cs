using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using EnvelopeKms.Cloud.Signing;

namespace EnvelopeKms.Kms;

/// <summary>
/// Client of the Alibaba Cloud KMS OpenAPI (version 2016-01-20). Thread-safe; create one per endpoint and
/// credential source and dispose it at the end. Every <c>keyId</c> parameter accepts a key id, an alias
/// (<c>alias/…</c>) or a key ARN, and is passed through as given.
/// </summary>
public sealed class KmsClient : IDisposable
{
    /// <summary>Largest plaintext Encrypt accepts (6 KiB of data).</summary>
    public const int MaxEncryptPlaintextBytes = 6 * 1024;

    private readonly KmsHttpTransport _transport;

    public KmsClient(KmsClientOptions options)
        : this(options, handler: null) { }

    internal KmsClient(KmsClientOptions options, HttpMessageHandler? handler)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Endpoint);
        ArgumentNullException.ThrowIfNull(options.Credentials);
        options.Retry.Validate();
        if (options.AttemptTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "AttemptTimeout must be positive.");
        options.Endpoint.EnsureTransportAllowed(options.AllowInsecureHttp);
        Options = options;
        _transport = new KmsHttpTransport(options, handler ?? EndpointCertificateTrust.CreateHandler(options.Endpoint));
    }

    public KmsClientOptions Options { get; }

    public KmsEndpoint Endpoint => Options.Endpoint;

    /// <summary>Where the credentials came from (a source name, never a secret).</summary>
    public string CredentialsSource => Options.Credentials.SourceName;

    /// <summary>Raised before each retry; handlers run on the calling thread and must be quick.</summary>
    public event EventHandler<KmsRetryEventArgs>? Retrying
    {
        add => _transport.Retrying += value;
        remove => _transport.Retrying -= value;
    }

    /// <summary>Retries performed by this client so far, over all operations.</summary>
    public long RetryCount => _transport.RetryCount;

    // ---- keys -------------------------------------------------------------------------------------------------

    public async Task<KeyMetadata> CreateKeyAsync(CreateKeyRequest? request = null, CancellationToken cancellationToken = default)
    {
        request ??= new CreateKeyRequest();
        var call = new KmsRequest("CreateKey")
            .Add("Description", request.Description)
            .Add("KeySpec", request.KeySpec)
            .Add("KeyUsage", request.KeyUsage)
            .Add("Origin", request.Origin)
            .Add("ProtectionLevel", request.ProtectionLevel)
            .Add("EnableAutomaticRotation", request.EnableAutomaticRotation)
            .Add("RotationInterval", request.RotationInterval)
            .Add("DKMSInstanceId", request.DKMSInstanceId)
            .Add("Tags", request.Tags is { Count: > 0 } tags ? KmsEncryptionContextJson.TagsToJson(tags) : null);
        var response = await InvokeAsync<KmsWire.KeyMetadataResponse>(call, cancellationToken).ConfigureAwait(false);
        return response.KeyMetadata ?? throw KmsResponseReader.Invalid(call.Action, "it has no KeyMetadata");
    }

    public async Task<KeyMetadata> DescribeKeyAsync(string keyId, CancellationToken cancellationToken = default)
    {
        var call = new KmsRequest("DescribeKey").Add("KeyId", RequireKeyId(keyId));
        var response = await InvokeAsync<KmsWire.KeyMetadataResponse>(call, cancellationToken).ConfigureAwait(false);
        return response.KeyMetadata ?? throw KmsResponseReader.Invalid(call.Action, "it has no KeyMetadata");
    }

    /// <summary>One page of keys. <c>filters</c> is the documented Filters JSON, e.g. <c>[{"Key":"KeyState","Values":["Enabled"]}]</c>.</summary>
    public async Task<KmsPage<KeySummary>> ListKeysAsync(int pageNumber = 1, int pageSize = 100, string? filters = null, CancellationToken cancellationToken = default)
    {
        var call = new KmsRequest("ListKeys").Add("PageNumber", CheckPageNumber(pageNumber)).Add("PageSize", CheckPageSize(pageSize)).Add("Filters", filters);
        var r = await InvokeAsync<KmsWire.ListKeysResponse>(call, cancellationToken).ConfigureAwait(false);
        return Page(r, r.Keys?.Key);
    }

    public IAsyncEnumerable<KeySummary> ListAllKeysAsync(int pageSize = 100, string? filters = null, CancellationToken cancellationToken = default)
        => KmsPaging.EnumerateAsync((page, ct) => ListKeysAsync(page, pageSize, filters, ct), cancellationToken);

    public Task EnableKeyAsync(string keyId, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(new KmsRequest("EnableKey").Add("KeyId", RequireKeyId(keyId)), cancellationToken);

    public Task DisableKeyAsync(string keyId, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(new KmsRequest("DisableKey").Add("KeyId", RequireKeyId(keyId)), cancellationToken);

    /// <summary>Schedules deletion after a pending window of 7 to 366 days.</summary>
    public Task ScheduleKeyDeletionAsync(string keyId, int pendingWindowInDays, CancellationToken cancellationToken = default)
    {
        if (pendingWindowInDays is < 7 or > 366)
            throw new ArgumentOutOfRangeException(nameof(pendingWindowInDays), "KMS accepts a pending window of 7 to 366 days.");
        return InvokeAsync<KmsWire.EmptyResponse>(
            new KmsRequest("ScheduleKeyDeletion").Add("KeyId", RequireKeyId(keyId)).Add("PendingWindowInDays", pendingWindowInDays), cancellationToken);
    }

    public Task CancelKeyDeletionAsync(string keyId, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(new KmsRequest("CancelKeyDeletion").Add("KeyId", RequireKeyId(keyId)), cancellationToken);

    // ---- aliases ----------------------------------------------------------------------------------------------

    public Task CreateAliasAsync(string aliasName, string keyId, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(
            new KmsRequest("CreateAlias").Add("AliasName", RequireAlias(aliasName)).Add("KeyId", RequireKeyId(keyId)), cancellationToken);

    public Task UpdateAliasAsync(string aliasName, string keyId, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(
            new KmsRequest("UpdateAlias").Add("AliasName", RequireAlias(aliasName)).Add("KeyId", RequireKeyId(keyId)), cancellationToken);

    public Task DeleteAliasAsync(string aliasName, CancellationToken cancellationToken = default)
        => InvokeAsync<KmsWire.EmptyResponse>(new KmsRequest("DeleteAlias").Add("AliasName", RequireAlias(aliasName)), cancellationToken);

    public async Task<KmsPage<AliasMetadata>> ListAliasesAsync(int pageNumber = 1, int pageSize = 100, CancellationToken cancellationToken = default)
    {
        var call = new KmsRequest("ListAliases").Add("PageNumber", CheckPageNumber(pageNumber)).Add("PageSize", CheckPageSize(pageSize));
        var r = await InvokeAsync<KmsWire.ListAliasesResponse>(call, cancellationToken).ConfigureAwait(false);
        return Page(r, r.Aliases?.Alias);
    }

    public IAsyncEnumerable<AliasMetadata> ListAllAliasesAsync(int pageSize = 100, CancellationToken cancellationToken = default)
        => KmsPaging.EnumerateAsync((page, ct) => ListAliasesAsync(page, pageSize, ct), cancellationToken);

    public async Task<KmsPage<AliasMetadata>> ListAliasesByKeyIdAsync(string keyId, int pageNumber = 1, int pageSize = 100, CancellationToken cancellationToken = default)
    {
        var call = new KmsRequest("ListAliasesByKeyId").Add("KeyId", RequireKeyId(keyId))
            .Add("PageNumber", CheckPageNumber(pageNumber)).Add("PageSize", CheckPageSize(pageSize));
        var r = await InvokeAsync<KmsWire.ListAliasesResponse>(call, cancellationToken).ConfigureAwait(false);
        return Page(r, r.Aliases?.Alias);
    }

    public IAsyncEnumerable<AliasMetadata> ListAllAliasesByKeyIdAsync(string keyId, int pageSize = 100, CancellationToken cancellationToken = default)
        => KmsPaging.EnumerateAsync((page, ct) => ListAliasesByKeyIdAsync(keyId, page, pageSize, ct), cancellationToken);

    // ---- cryptographic operations -----------------------------------------------------------------------------

    /// <summary>
    /// Generates a data key. With neither <paramref name="numberOfBytes"/> nor <paramref name="keySpec"/>, KMS
    /// returns 32 bytes. The result owns the plaintext: dispose it to wipe.
    /// </summary>
    public async Task<GenerateDataKeyResult> GenerateDataKeyAsync(string keyId, int? numberOfBytes = null, string? keySpec = null,
        IReadOnlyDictionary<string, string>? encryptionContext = null, CancellationToken cancellationToken = default)
    {
        var call = DataKeyRequest("GenerateDataKey", keyId, numberOfBytes, keySpec, encryptionContext);
        using var body = await _transport.SendAsync(call, cancellationToken).ConfigureAwait(false);
        var (fields, plaintext) = KmsResponseReader.ReadWithPlaintext(call.Action, body.WrittenSpan);
        try
        {
            if (plaintext is null) throw KmsResponseReader.Invalid(call.Action, "it has no Plaintext");
            return new GenerateDataKeyResult
            {
                KeyId = KmsResponseReader.Required(call.Action, fields, "KeyId"),
                KeyVersionId = fields.GetValueOrDefault("KeyVersionId") ?? "",
                CiphertextBlob = KmsResponseReader.Required(call.Action, fields, "CiphertextBlob"),
                RequestId = fields.GetValueOrDefault("RequestId"),
                Plaintext = plaintext,
            };
        }
        catch
        {
            plaintext?.Dispose();
            throw;
        }
    }

    public Task<CiphertextResult> GenerateDataKeyWithoutPlaintextAsync(string keyId, int? numberOfBytes = null, string? keySpec = null,
        IReadOnlyDictionary<string, string>? encryptionContext = null, CancellationToken cancellationToken = default)
        => InvokeCiphertextAsync(DataKeyRequest("GenerateDataKeyWithoutPlaintext", keyId, numberOfBytes, keySpec, encryptionContext), cancellationToken);

    /// <summary>
    /// Encrypts up to 6 KiB. The plaintext is base64-encoded into a pinned buffer and sent in the form body (never
    /// as a string, never in the URL); the buffer is wiped when the call ends. Used to wrap one data key under
    /// further keys.
    /// </summary>
    public async Task<CiphertextResult> EncryptAsync(string keyId, ReadOnlyMemory<byte> plaintext,
        IReadOnlyDictionary<string, string>? encryptionContext = null, CancellationToken cancellationToken = default)
    {
        if (plaintext.Length is 0 or > MaxEncryptPlaintextBytes)
            throw new ArgumentOutOfRangeException(nameof(plaintext), $"Encrypt takes 1 to {MaxEncryptPlaintextBytes} bytes.");
        var base64 = Keys.SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(Base64.GetMaxEncodedToUtf8Length(plaintext.Length), pinned: true));
        try
        {
            Base64.EncodeToUtf8(plaintext.Span, base64, out _, out int written);
            var call = new KmsRequest("Encrypt").Add("KeyId", RequireKeyId(keyId))
                .AddSecret("Plaintext", base64.AsMemory(0, written))
                .Add("EncryptionContext", KmsEncryptionContextJson.ToJson(encryptionContext));
            return await InvokeCiphertextAsync(call, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(base64);
        }
    }

    /// <summary>Decrypts a CiphertextBlob. The result owns the plaintext: dispose it to wipe.</summary>
    public Task<DecryptResult> DecryptAsync(string ciphertextBlob, IReadOnlyDictionary<string, string>? encryptionContext = null,
        CancellationToken cancellationToken = default)
        => DecryptAsync(ciphertextBlob, encryptionContext, expectedKeyId: null, cancellationToken);

    /// <summary>
    /// Decrypts a CiphertextBlob that a file header says is under <paramref name="expectedKeyId"/>. The key id is not
    /// sent (the blob names its key); it only lets a RAM refusal name the key to grant kms:Decrypt on.
    /// </summary>
    public async Task<DecryptResult> DecryptAsync(string ciphertextBlob, IReadOnlyDictionary<string, string>? encryptionContext,
        string? expectedKeyId, CancellationToken cancellationToken = default)
    {
        var call = new KmsRequest("Decrypt") { KeyHint = string.IsNullOrWhiteSpace(expectedKeyId) ? null : expectedKeyId.Trim() }
            .Add("CiphertextBlob", RequireBlob(ciphertextBlob))
            .Add("EncryptionContext", KmsEncryptionContextJson.ToJson(encryptionContext));
        using var body = await _transport.SendAsync(call, cancellationToken).ConfigureAwait(false);
        var (fields, plaintext) = KmsResponseReader.ReadWithPlaintext(call.Action, body.WrittenSpan);
        try
        {
            if (plaintext is null) throw KmsResponseReader.Invalid(call.Action, "it has no Plaintext");
            return new DecryptResult
            {
                KeyId = KmsResponseReader.Required(call.Action, fields, "KeyId"),
                KeyVersionId = fields.GetValueOrDefault("KeyVersionId") ?? "",
                RequestId = fields.GetValueOrDefault("RequestId"),
                Plaintext = plaintext,
            };
        }
        catch
        {
            plaintext?.Dispose();
            throw;
        }
    }

    /// <summary>Re-wraps a ciphertext under another key inside KMS (shared gateway only).</summary>
    public Task<CiphertextResult> ReEncryptAsync(string ciphertextBlob, string destinationKeyId,
        IReadOnlyDictionary<string, string>? sourceEncryptionContext = null, IReadOnlyDictionary<string, string>? destinationEncryptionContext = null,
        CancellationToken cancellationToken = default)
        => InvokeCiphertextAsync(new KmsRequest("ReEncrypt")
            .Add("CiphertextBlob", RequireBlob(ciphertextBlob))
            .Add("DestinationKeyId", RequireKeyId(destinationKeyId))
            .Add("SourceEncryptionContext", KmsEncryptionContextJson.ToJson(sourceEncryptionContext))
            .Add("DestinationEncryptionContext", KmsEncryptionContextJson.ToJson(destinationEncryptionContext)), cancellationToken);

    // ---- tags -------------------------------------------------------------------------------------------------

    public Task TagResourceAsync(string keyId, IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken = default)
    {
        if (tags is null || tags.Count == 0) throw new ArgumentException("At least one tag is needed.", nameof(tags));
        return InvokeAsync<KmsWire.EmptyResponse>(
            new KmsRequest("TagResource").Add("KeyId", RequireKeyId(keyId)).Add("Tags", KmsEncryptionContextJson.TagsToJson(tags)), cancellationToken);
    }

    public Task UntagResourceAsync(string keyId, IEnumerable<string> tagKeys, CancellationToken cancellationToken = default)
    {
        var keys = tagKeys?.ToArray() ?? throw new ArgumentNullException(nameof(tagKeys));
        if (keys.Length == 0) throw new ArgumentException("At least one tag key is needed.", nameof(tagKeys));
        return InvokeAsync<KmsWire.EmptyResponse>(
            new KmsRequest("UntagResource").Add("KeyId", RequireKeyId(keyId)).Add("TagKeys", KmsEncryptionContextJson.StringsToJson(keys)), cancellationToken);
    }

    public async Task<IReadOnlyList<ResourceTag>> ListResourceTagsAsync(string keyId, CancellationToken cancellationToken = default)
    {
        var r = await InvokeAsync<KmsWire.ListResourceTagsResponse>(
            new KmsRequest("ListResourceTags").Add("KeyId", RequireKeyId(keyId)), cancellationToken).ConfigureAwait(false);
        return (IReadOnlyList<ResourceTag>?)r.Tags?.Tag ?? Array.Empty<ResourceTag>();
    }

    // ---- plumbing ---------------------------------------------------------------------------------------------

    private async Task<T> InvokeAsync<T>(KmsRequest call, CancellationToken cancellationToken) where T : class
    {
        using var body = await _transport.SendAsync(call, cancellationToken).ConfigureAwait(false);
        return KmsResponseReader.Deserialize<T>(call.Action, body.WrittenSpan);
    }

    private async Task<CiphertextResult> InvokeCiphertextAsync(KmsRequest call, CancellationToken cancellationToken)
    {
        var r = await InvokeAsync<CiphertextResult>(call, cancellationToken).ConfigureAwait(false);
        if (string.IsNullOrEmpty(r.CiphertextBlob) || string.IsNullOrEmpty(r.KeyId))
            throw KmsResponseReader.Invalid(call.Action, "it has no CiphertextBlob or KeyId");
        return r;
    }

    private static KmsRequest DataKeyRequest(string action, string keyId, int? numberOfBytes, string? keySpec, IReadOnlyDictionary<string, string>? context)
    {
        if (numberOfBytes is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(numberOfBytes), "KMS generates 1 to 1024 bytes.");
        return new KmsRequest(action).Add("KeyId", RequireKeyId(keyId)).Add("KeySpec", keySpec).Add("NumberOfBytes", numberOfBytes)
            .Add("EncryptionContext", KmsEncryptionContextJson.ToJson(context));
    }

    private static KmsPage<T> Page<T>(KmsWire.Paged r, List<T>? items) => new()
    {
        Items = (IReadOnlyList<T>?)items ?? Array.Empty<T>(),
        TotalCount = r.TotalCount,
        PageNumber = r.PageNumber,
        PageSize = r.PageSize,
        RequestId = r.RequestId,
    };

    private static string RequireKeyId(string keyId)
        => string.IsNullOrWhiteSpace(keyId) ? throw new ArgumentException("A key id, alias or ARN is required.", nameof(keyId)) : keyId.Trim();

    private static string RequireBlob(string blob)
        // Trimmed because blobs read back from text files carry a trailing newline.
        => string.IsNullOrWhiteSpace(blob) ? throw new ArgumentException("A CiphertextBlob is required.", nameof(blob)) : blob.Trim();

    private static string RequireAlias(string aliasName)
        => aliasName is not null && aliasName.StartsWith("alias/", StringComparison.Ordinal) && aliasName.Length > "alias/".Length
            ? aliasName
            : throw new ArgumentException($"An alias name starts with 'alias/' (got '{aliasName}').", nameof(aliasName));

    private static int CheckPageNumber(int pageNumber)
        => pageNumber >= 1 ? pageNumber : throw new ArgumentOutOfRangeException(nameof(pageNumber), "Pages are numbered from 1.");

    private static int CheckPageSize(int pageSize)
        => pageSize is >= 1 and <= 100 ? pageSize : throw new ArgumentOutOfRangeException(nameof(pageSize), "KMS pages hold 1 to 100 entries.");

    public void Dispose() => _transport.Dispose();
}

/// <summary>Walks every page of a KMS list operation.</summary>
public static class KmsPaging
{
    public static async IAsyncEnumerable<T> EnumerateAsync<T>(Func<int, CancellationToken, Task<KmsPage<T>>> fetchPage,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int seen = 0;
        for (int pageNumber = 1; ; pageNumber++)
        {
            var page = await fetchPage(pageNumber, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items) yield return item;
            seen += page.Items.Count;
            // Stop on an empty page too, so a server whose TotalCount is wrong cannot make this loop forever.
            if (page.Items.Count == 0 || seen >= page.TotalCount) yield break;
        }
    }

    public static async Task<List<T>> FetchAllAsync<T>(IAsyncEnumerable<T> items, CancellationToken cancellationToken = default)
    {
        var list = new List<T>();
        await foreach (var item in items.WithCancellation(cancellationToken).ConfigureAwait(false)) list.Add(item);
        return list;
    }
}
