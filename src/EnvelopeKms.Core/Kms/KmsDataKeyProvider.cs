using System.Collections.Concurrent;
using EnvelopeKms.Credentials;
using EnvelopeKms.Keys;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.Kms;

public sealed class KmsDataKeyProviderOptions
{
    /// <summary>
    /// When set, only entries wrapped under these keys (ids, ARNs or aliases) are sent to KMS, and a data key that
    /// KMS unwrapped with any other key is rejected. Aliases are resolved once with DescribeKey (an alias ARN in the
    /// region its ARN names).
    /// </summary>
    public IReadOnlyList<string>? AllowedKeyIds { get; init; }

    /// <summary>The region written into entries wrapped by the home client; defaults to the home endpoint's region.</summary>
    public string? Region { get; init; }

    /// <summary>
    /// Progress lines (which entry was tried where, and the outcome), for verbose output. Called on the worker
    /// thread; never given key material or secrets.
    /// </summary>
    public Action<string>? Trace { get; init; }
}

/// <summary>
/// The <see cref="IDataKeyProvider"/> backed by Alibaba Cloud KMS: GenerateDataKey under the first key, Encrypt of
/// that same data key under each further key; Decrypt of the first allowed entry that KMS will unwrap. With a
/// <see cref="KmsRegionalClients"/>, a key given as an ARN of another region is wrapped there, each entry records
/// the region that wrapped it, and an entry is unwrapped by its region's endpoint; an entry whose region cannot be
/// reached is skipped and the next one tried.
/// </summary>
public sealed class KmsDataKeyProvider : IDataKeyProvider, IDataKeyWrapper
{
    private readonly KmsRegionalClients _clients;
    private readonly KmsDataKeyProviderOptions _options;
    private readonly List<KmsKeyReference>? _allowed;
    private readonly SemaphoreSlim _aliasLock = new(1, 1);
    private readonly ConcurrentDictionary<string, byte> _unreachable = new(StringComparer.OrdinalIgnoreCase);
    private List<KmsKeyReference>? _resolvedAllowed;

    /// <summary>Every call goes to <paramref name="client"/>, whatever region a key or entry names.</summary>
    public KmsDataKeyProvider(KmsClient client, KmsDataKeyProviderOptions? options = null)
        : this(KmsRegionalClients.Single(client ?? throw new ArgumentNullException(nameof(client))), options) { }

    /// <summary>Calls go to the client of the region each key or entry names (see <see cref="KmsRegionalClients"/>).</summary>
    public KmsDataKeyProvider(KmsRegionalClients clients, KmsDataKeyProviderOptions? options = null)
    {
        _clients = clients ?? throw new ArgumentNullException(nameof(clients));
        _options = options ?? new KmsDataKeyProviderOptions();
        _allowed = _options.AllowedKeyIds?.Select(KmsKeyReference.Parse).ToList();
    }

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => GenerateDataKeyAsync(keyIds, context, DataKey.KeyLength, cancellationToken);

    /// <summary>Generates a data key of <paramref name="keyLength"/> bytes (32, or 16 for AES-128).</summary>
    public async Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        if (keyIds is null || keyIds.Count == 0) throw new ArgumentException("At least one KMS key is needed.", nameof(keyIds));
        ArgumentNullException.ThrowIfNull(context);
        if (!DataKey.IsSupportedLength(keyLength))
            throw new ArgumentOutOfRangeException(nameof(keyLength), $"Data keys are {DataKey.KeyLength} or {DataKey.Aes128KeyLength} bytes.");
        // Every key's endpoint is settled before the first call: a key no endpoint is known for fails up front.
        var clients = keyIds.Select(k => _clients.ForRegion(KmsRegionalClients.RegionOfKey(k))).ToList();
        GenerateDataKeyResult generated;
        try
        {
            generated = await clients[0].GenerateDataKeyAsync(keyIds[0], keyLength, keySpec: null, context, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KmsException or CredentialsException)
        {
            throw Map(e, $"generate a data key under '{keyIds[0]}' ({clients[0].Endpoint})");
        }
        using (generated)
        {
            if (generated.Plaintext.Length != keyLength)
            {
                throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                    $"KMS returned a {generated.Plaintext.Length}-byte data key for '{keyIds[0]}'; {keyLength} bytes were requested.");
            }
            var entries = new List<WrappedDataKey> { Entry(clients[0], keyIds[0], generated.KeyId, generated.KeyVersionId, generated.CiphertextBlob) };
            _options.Trace?.Invoke($"Data key generated under '{generated.KeyId}' ({RegionText(entries[0].Region)}, {clients[0].Endpoint}).");
            for (int i = 1; i < keyIds.Count; i++)
            {
                try
                {
                    var wrapped = await clients[i].EncryptAsync(keyIds[i], generated.Plaintext.Memory, context, cancellationToken).ConfigureAwait(false);
                    entries.Add(Entry(clients[i], keyIds[i], wrapped.KeyId, wrapped.KeyVersionId, wrapped.CiphertextBlob));
                    _options.Trace?.Invoke($"Data key also wrapped under '{wrapped.KeyId}' ({RegionText(entries[^1].Region)}, {clients[i].Endpoint}).");
                }
                catch (Exception e) when (e is KmsException or CredentialsException)
                {
                    throw Map(e, $"wrap the data key under the additional key '{keyIds[i]}' ({clients[i].Endpoint})");
                }
            }
            return new DataKey(generated.Plaintext.Span, entries, generated.KeyId);
        }
    }

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => DecryptDataKeyAsync(entries, context, DataKey.KeyLength, cancellationToken);

    /// <summary>Unwraps the first allowed entry; the data key must be <paramref name="keyLength"/> bytes (32, or 16 for AES-128).</summary>
    public async Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(context);
        if (entries.Count == 0) throw new KeyProviderException(KeyProviderError.NoMatchingKey, "The file has no wrapped data key.");
        var outcomes = new string?[entries.Count];
        var failures = new List<KeyProviderException>();
        foreach (int index in TryOrder(entries))
        {
            var entry = entries[index];
            string name = $"entry {index + 1} of {entries.Count} ('{Display(entry.KeyId)}', {RegionText(entry.Region)})";
            if (entry.ProviderId != WrappedDataKey.AlibabaKmsProvider)
            {
                outcomes[index] = $"skipped: another key provider ('{entry.ProviderId}')";
                _options.Trace?.Invoke($"Unwrap {name}: {outcomes[index]}.");
                continue;
            }
            if (!await IsAllowedAsync(entry.KeyId, cancellationToken).ConfigureAwait(false))
            {
                outcomes[index] = "skipped: not an allowed key";
                _options.Trace?.Invoke($"Unwrap {name}: {outcomes[index]}.");
                continue;
            }
            KmsClient client;
            try
            {
                client = _clients.ForRegion(entry.Region);
            }
            catch (Exception e) when (e is KmsConfigurationException or UriFormatException or ArgumentException)
            {
                // The region comes from the file, unauthenticated: anything it makes of the endpoint skips the entry.
                outcomes[index] = $"skipped: {e.Message}";
                failures.Add(new KeyProviderException(KeyProviderError.Unavailable, e.Message, e));
                _options.Trace?.Invoke($"Unwrap {name}: {outcomes[index]}");
                continue;
            }
            _options.Trace?.Invoke($"Unwrap {name}: Decrypt at {client.Endpoint}.");
            DecryptResult decrypted;
            try
            {
                decrypted = await client.DecryptAsync(entry.CiphertextBlob, context, entry.KeyId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KmsException or CredentialsException)
            {
                var mapped = Map(e, $"unwrap the data key of '{entry.KeyId}' at {client.Endpoint}");
                // Bad credentials fail the same way for every entry; stop instead of repeating the call.
                if (mapped.Error == KeyProviderError.Authentication) throw mapped;
                if (mapped.Error == KeyProviderError.Unavailable) _unreachable.TryAdd(client.Endpoint.ToString(), 0);
                outcomes[index] = $"{Describe(mapped)} at {client.Endpoint}";
                failures.Add(mapped);
                _options.Trace?.Invoke($"Unwrap {name}: failed ({outcomes[index]}); trying the next entry.");
                continue;
            }
            using (decrypted)
            {
                if (!await IsAllowedAsync(decrypted.KeyId, cancellationToken).ConfigureAwait(false))
                {
                    throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                        $"The entry for '{entry.KeyId}' was unwrapped by KMS key '{decrypted.KeyId}', which is not in the allowed keys; the file header may have been tampered with.");
                }
                if (decrypted.Plaintext.Length != keyLength)
                {
                    throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                        $"KMS unwrapped a {decrypted.Plaintext.Length}-byte data key from the entry for '{entry.KeyId}'; the format needs {keyLength} bytes.");
                }
                _unreachable.TryRemove(client.Endpoint.ToString(), out _);
                _options.Trace?.Invoke($"Unwrap {name}: unwrapped by '{decrypted.KeyId}' at {client.Endpoint}.");
                return new DataKey(decrypted.Plaintext.Span, entries, decrypted.KeyId) { UnwrappedFrom = entry };
            }
        }

        var summary = string.Join("; ", entries.Select((e, i) => $"entry {i + 1} '{Display(e.KeyId)}' ({RegionText(e.Region)}): {outcomes[i]}"));
        if (failures.Count == 0)
        {
            throw new KeyProviderException(KeyProviderError.NoMatchingKey,
                $"None of the {entries.Count} wrapped data keys is for an allowed Alibaba Cloud KMS key ({summary}).");
        }
        // Report the most actionable failure: a refusal (state, permission, context) over an outage over not-found.
        var worst = failures.OrderBy(e => e.Error switch
        {
            KeyProviderError.Refused => 0,
            KeyProviderError.Unavailable => 1,
            _ => 2,
        }).First();
        throw new KeyProviderException(worst.Error, $"No wrapped data key could be unwrapped ({summary}). {worst.Message}", worst.InnerException);
    }

    /// <summary>
    /// KMS Encrypt of an existing data key under another key (re-wrapping, Update-EnvelopeFileKey), at the endpoint
    /// of the key's region (a key ARN of another region is wrapped there, as in <see cref="GenerateDataKeyAsync(IReadOnlyList{string}, EncryptionContext, int, CancellationToken)"/>).
    /// </summary>
    public async Task<WrappedDataKey> WrapDataKeyAsync(string keyId, DataKey dataKey, EncryptionContext context, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        ArgumentNullException.ThrowIfNull(dataKey);
        ArgumentNullException.ThrowIfNull(context);
        var client = _clients.ForRegion(KmsRegionalClients.RegionOfKey(keyId));
        try
        {
            var wrapped = await client.EncryptAsync(keyId, dataKey.PlaintextMemory, context, cancellationToken).ConfigureAwait(false);
            var entry = Entry(client, keyId, wrapped.KeyId, wrapped.KeyVersionId, wrapped.CiphertextBlob);
            _options.Trace?.Invoke($"Data key wrapped under '{wrapped.KeyId}' ({RegionText(entry.Region)}, {client.Endpoint}).");
            return entry;
        }
        catch (Exception e) when (e is KmsException or CredentialsException)
        {
            throw Map(e, $"wrap the data key under '{keyId}' ({client.Endpoint})");
        }
    }

    /// <summary>An alias resolves with DescribeKey (at its region's endpoint) to its key id and ARN; anything else names itself.</summary>
    public async Task<IReadOnlyList<string>> ResolveKeyReferenceAsync(string keyReference, CancellationToken cancellationToken)
    {
        var reference = KmsKeyReference.Parse(keyReference);
        if (!reference.IsAlias) return [reference.Original];
        try
        {
            var key = await _clients.ForRegion(reference.Region).DescribeKeyAsync(reference.Original, cancellationToken).ConfigureAwait(false);
            return string.IsNullOrEmpty(key.Arn) ? [key.KeyId] : [key.KeyId, key.Arn];
        }
        catch (KmsException e) when (KmsErrorClassifier.IsNotFound(e.Code))
        {
            return [];
        }
        catch (Exception e) when (e is KmsException or CredentialsException)
        {
            throw Map(e, $"resolve the alias '{reference.Original}'");
        }
    }

    /// <summary>
    /// Header order, except that entries whose endpoint failed as unreachable earlier (and has not answered since)
    /// go last: a batch does not wait out the retries of a dead region for every file when another region works.
    /// </summary>
    private IEnumerable<int> TryOrder(IReadOnlyList<WrappedDataKey> entries)
    {
        if (_unreachable.IsEmpty) return Enumerable.Range(0, entries.Count);
        bool Unreachable(int i)
        {
            try { return _unreachable.ContainsKey(_clients.EndpointFor(entries[i].Region).ToString()); }
            catch (KmsConfigurationException) { return false; }
        }
        return Enumerable.Range(0, entries.Count).OrderBy(i => Unreachable(i) ? 1 : 0).ToList();
    }

    /// <summary>An entry's outcome; a RAM refusal also says what to grant, since any one entry's grant would do.</summary>
    private static string Describe(KeyProviderException e)
        => e.InnerException is KmsException k
            ? $"{e.Error}: {k.Code}" + (k.RequiredPermission is { } needed ? $", needs {needed}" : "")
            : e.Error.ToString();

    private static string RegionText(string region) => region.Length == 0 ? "region not recorded" : $"region {region}";

    /// <summary>Key ids from a file are untrusted: shown cut short, never more than 200 characters.</summary>
    private static string Display(string keyId) => keyId.Length <= 200 ? keyId : keyId[..200] + "…";

    /// <summary>
    /// The entry for a key wrapped by <paramref name="client"/>: the region recorded is the region of the endpoint
    /// that wrapped it (for the home client: the configured region, else its endpoint's, else the one in the ARN).
    /// </summary>
    private WrappedDataKey Entry(KmsClient client, string requestedKeyId, string keyId, string keyVersionId, string ciphertextBlob)
    {
        string region = ReferenceEquals(client, _clients.Home)
            ? _options.Region ?? client.Endpoint.RegionId ?? KmsRegionalClients.RegionOfKey(keyId) ?? KmsRegionalClients.RegionOfKey(requestedKeyId) ?? ""
            : KmsRegionalClients.RegionOfKey(requestedKeyId)!;
        return new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, keyId, keyVersionId, region, ciphertextBlob);
    }

    private async Task<bool> IsAllowedAsync(string keyId, CancellationToken cancellationToken)
    {
        if (_allowed is null) return true;
        KmsKeyReference candidate;
        try { candidate = KmsKeyReference.Parse(keyId); }
        catch (ArgumentException) { return false; }
        var allowed = await ResolveAllowListAsync(cancellationToken).ConfigureAwait(false);
        return allowed.Any(a => a.Matches(candidate));
    }

    /// <summary>
    /// Entries name keys by id or ARN, never by alias, so aliases in the allow-list are resolved (once) to the key
    /// they point to. An alias that does not exist simply allows nothing.
    /// </summary>
    private async Task<List<KmsKeyReference>> ResolveAllowListAsync(CancellationToken cancellationToken)
    {
        if (_resolvedAllowed is not null) return _resolvedAllowed;
        await _aliasLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_resolvedAllowed is not null) return _resolvedAllowed;
            var resolved = new List<KmsKeyReference>();
            foreach (var reference in _allowed!)
            {
                resolved.Add(reference);
                if (!reference.IsAlias) continue;
                try
                {
                    var key = await _clients.ForRegion(reference.Region).DescribeKeyAsync(reference.Original, cancellationToken).ConfigureAwait(false);
                    resolved.Add(KmsKeyReference.Parse(key.KeyId));
                    if (!string.IsNullOrEmpty(key.Arn)) resolved.Add(KmsKeyReference.Parse(key.Arn));
                }
                catch (KmsException e) when (KmsErrorClassifier.IsNotFound(e.Code))
                {
                }
                catch (KmsConfigurationException)
                {
                    // An alias ARN of a region no endpoint is known for: it allows nothing that can be reached anyway.
                }
                catch (Exception e) when (e is KmsException or CredentialsException)
                {
                    throw Map(e, $"resolve the allowed alias '{reference.Original}'");
                }
            }
            return _resolvedAllowed = resolved;
        }
        finally
        {
            _aliasLock.Release();
        }
    }

    /// <summary>Maps a KMS or credentials failure to the provider-neutral error the format code handles.</summary>
    internal static KeyProviderException Map(Exception e, string what)
    {
        if (e is CredentialsException)
            return new KeyProviderException(KeyProviderError.Authentication, $"Could not {what}: no usable Alibaba Cloud credentials. {e.Message}", e);
        var k = (KmsException)e;
        KeyProviderError error;
        if (k.Kind is KmsErrorKind.Timeout or KmsErrorKind.Connection or KmsErrorKind.InvalidResponse) error = KeyProviderError.Unavailable;
        else if (KmsErrorClassifier.IsAuthentication(k.Code, k.HttpStatus)) error = KeyProviderError.Authentication;
        else if (KmsErrorClassifier.IsNotFound(k.Code)) error = KeyProviderError.NoMatchingKey;
        else if (KmsErrorClassifier.IsRetryable(k.Code, k.HttpStatus)) error = KeyProviderError.Unavailable;
        else error = KeyProviderError.Refused;
        return new KeyProviderException(error, $"Could not {what}: {k.Message}", k);
    }
}
