using EnvelopeKms.Credentials;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Kms;

public sealed class KmsDataKeyProviderOptions
{
    /// <summary>
    /// When set, only entries wrapped under these keys (ids, ARNs or aliases) are sent to KMS, and a data key that
    /// KMS unwrapped with any other key is rejected. Aliases are resolved once with DescribeKey.
    /// </summary>
    public IReadOnlyList<string>? AllowedKeyIds { get; init; }

    /// <summary>The region written into new entries; defaults to the endpoint's region.</summary>
    public string? Region { get; init; }

    /// <summary>
    /// For decryption: the client to use for an entry recorded in another region than the main client's (files
    /// wrapped under keys of several regions). Returning null, or leaving this unset, uses the main client.
    /// </summary>
    public Func<string, KmsClient?>? ClientForRegion { get; init; }
}

/// <summary>
/// The <see cref="IDataKeyProvider"/> backed by Alibaba Cloud KMS: GenerateDataKey under the first key, Encrypt of
/// that same data key under each further key; Decrypt of the first allowed entry that KMS will unwrap.
/// </summary>
public sealed class KmsDataKeyProvider : IDataKeyProvider, IDataKeyWrapper
{
    private readonly KmsClient _client;
    private readonly KmsDataKeyProviderOptions _options;
    private readonly List<KmsKeyReference>? _allowed;
    private readonly SemaphoreSlim _aliasLock = new(1, 1);
    private List<KmsKeyReference>? _resolvedAllowed;

    public KmsDataKeyProvider(KmsClient client, KmsDataKeyProviderOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? new KmsDataKeyProviderOptions();
        _allowed = _options.AllowedKeyIds?.Select(KmsKeyReference.Parse).ToList();
    }

    public async Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
    {
        if (keyIds is null || keyIds.Count == 0) throw new ArgumentException("At least one KMS key is needed.", nameof(keyIds));
        ArgumentNullException.ThrowIfNull(context);
        GenerateDataKeyResult generated;
        try
        {
            generated = await _client.GenerateDataKeyAsync(keyIds[0], DataKey.KeyLength, keySpec: null, context, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KmsException or CredentialsException)
        {
            throw Map(e, $"generate a data key under '{keyIds[0]}'");
        }
        using (generated)
        {
            if (generated.Plaintext.Length != DataKey.KeyLength)
            {
                throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                    $"KMS returned a {generated.Plaintext.Length}-byte data key for '{keyIds[0]}'; {DataKey.KeyLength} bytes were requested.");
            }
            var entries = new List<WrappedDataKey> { Entry(generated.KeyId, generated.KeyVersionId, generated.CiphertextBlob) };
            foreach (var keyId in keyIds.Skip(1))
            {
                try
                {
                    var wrapped = await _client.EncryptAsync(keyId, generated.Plaintext.Memory, context, cancellationToken).ConfigureAwait(false);
                    entries.Add(Entry(wrapped.KeyId, wrapped.KeyVersionId, wrapped.CiphertextBlob));
                }
                catch (Exception e) when (e is KmsException or CredentialsException)
                {
                    throw Map(e, $"wrap the data key under the additional key '{keyId}'");
                }
            }
            return new DataKey(generated.Plaintext.Span, entries, generated.KeyId);
        }
    }

    public async Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(context);
        var failures = new List<(WrappedDataKey Entry, KeyProviderException Error)>();
        int skipped = 0;
        foreach (var entry in entries)
        {
            if (entry.ProviderId != WrappedDataKey.AlibabaKmsProvider || !await IsAllowedAsync(entry.KeyId, cancellationToken).ConfigureAwait(false))
            {
                skipped++; // not ours, or not allowed: no KMS call at all
                continue;
            }
            DecryptResult decrypted;
            try
            {
                decrypted = await ClientFor(entry).DecryptAsync(entry.CiphertextBlob, context, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KmsException or CredentialsException)
            {
                var mapped = Map(e, $"unwrap the data key of '{entry.KeyId}'");
                // Bad credentials fail the same way for every entry; stop instead of repeating the call.
                if (mapped.Error == KeyProviderError.Authentication) throw mapped;
                failures.Add((entry, mapped));
                continue;
            }
            using (decrypted)
            {
                if (!await IsAllowedAsync(decrypted.KeyId, cancellationToken).ConfigureAwait(false))
                {
                    throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                        $"The entry for '{entry.KeyId}' was unwrapped by KMS key '{decrypted.KeyId}', which is not in the allowed keys; the file header may have been tampered with.");
                }
                if (decrypted.Plaintext.Length != DataKey.KeyLength)
                {
                    throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                        $"KMS unwrapped a {decrypted.Plaintext.Length}-byte data key from the entry for '{entry.KeyId}'; the format needs {DataKey.KeyLength} bytes.");
                }
                return new DataKey(decrypted.Plaintext.Span, entries, decrypted.KeyId) { UnwrappedFrom = entry };
            }
        }

        if (failures.Count == 0)
        {
            throw new KeyProviderException(KeyProviderError.NoMatchingKey, skipped == 0
                ? "The file has no wrapped data key."
                : $"None of the {entries.Count} wrapped data keys is for an allowed Alibaba Cloud KMS key.");
        }
        // Report the most actionable failure: a refusal (state, permission, context) over an outage over not-found.
        var worst = failures.Select(f => f.Error).OrderBy(e => e.Error switch
        {
            KeyProviderError.Refused => 0,
            KeyProviderError.Unavailable => 1,
            _ => 2,
        }).First();
        var summary = string.Join("; ", failures.Select(f => $"'{f.Entry.KeyId}': {(f.Error.InnerException as KmsException)?.Code ?? f.Error.Error.ToString()}"));
        throw new KeyProviderException(worst.Error, $"No wrapped data key could be unwrapped ({summary}). {worst.Message}", worst.InnerException);
    }

    /// <summary>KMS Encrypt of an existing data key under another key (re-wrapping, Update-EnvelopeFileKey).</summary>
    public async Task<WrappedDataKey> WrapDataKeyAsync(string keyId, DataKey dataKey, EncryptionContext context, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        ArgumentNullException.ThrowIfNull(dataKey);
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            var wrapped = await _client.EncryptAsync(keyId, dataKey.PlaintextMemory, context, cancellationToken).ConfigureAwait(false);
            return Entry(wrapped.KeyId, wrapped.KeyVersionId, wrapped.CiphertextBlob);
        }
        catch (Exception e) when (e is KmsException or CredentialsException)
        {
            throw Map(e, $"wrap the data key under '{keyId}'");
        }
    }

    /// <summary>An alias resolves with DescribeKey to its key id and ARN; anything else names itself.</summary>
    public async Task<IReadOnlyList<string>> ResolveKeyReferenceAsync(string keyReference, CancellationToken cancellationToken)
    {
        var reference = KmsKeyReference.Parse(keyReference);
        if (!reference.IsAlias) return [reference.Original];
        try
        {
            var key = await _client.DescribeKeyAsync(reference.Original, cancellationToken).ConfigureAwait(false);
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

    private KmsClient ClientFor(WrappedDataKey entry)
    {
        var home = _options.Region ?? _client.Endpoint.RegionId;
        if (_options.ClientForRegion is null || entry.Region.Length == 0 || string.Equals(entry.Region, home, StringComparison.OrdinalIgnoreCase))
            return _client;
        return _options.ClientForRegion(entry.Region) ?? _client;
    }

    private WrappedDataKey Entry(string keyId, string keyVersionId, string ciphertextBlob)
    {
        var region = _options.Region ?? _client.Endpoint.RegionId ?? TryRegionOf(keyId) ?? "";
        return new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, keyId, keyVersionId, region, ciphertextBlob);
    }

    private static string? TryRegionOf(string keyId)
    {
        try { return KmsKeyReference.Parse(keyId).Region; }
        catch (ArgumentException) { return null; }
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
                    var key = await _client.DescribeKeyAsync(reference.Original, cancellationToken).ConfigureAwait(false);
                    resolved.Add(KmsKeyReference.Parse(key.KeyId));
                    if (!string.IsNullOrEmpty(key.Arn)) resolved.Add(KmsKeyReference.Parse(key.Arn));
                }
                catch (KmsException e) when (KmsErrorClassifier.IsNotFound(e.Code))
                {
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
