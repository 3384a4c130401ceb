using System.Collections.Concurrent;
using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// One invocation's KMS connection, made in BeginProcessing from the settings <see cref="KmsConnectionResolver"/>
/// resolved (bound parameter → Connect-Kms default → environment → profile files → instance metadata). Making the
/// object calls nothing; the clients are made by the explicit <see cref="Open"/> and <see cref="OpenRegional"/>,
/// on the pipeline thread (they may write verbose output or end the command), and only when a command really needs
/// KMS, so -WhatIf makes no client at all. Workers talk to the pipeline only through <see cref="QueueVerbose"/>.
/// </summary>
internal sealed class KmsConnection : IDisposable
{
    private readonly Cmdlet _cmdlet;
    private readonly KmsConnectionSettings _settings;
    private KmsClient? _client;
    private KmsRegionalClients? _regional;
    private readonly ConcurrentDictionary<string, int> _retries = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _pendingVerbose = new();

    public KmsConnection(Cmdlet cmdlet, KmsConnectionSettings settings)
    {
        _cmdlet = cmdlet;
        _settings = settings;
    }

    /// <summary>The invocation's own client (made on the first call). Pipeline thread only.</summary>
    public KmsClient Open()
    {
        if (_client is not null) return _client;
        try
        {
            var client = KmsClientFactory.Create(_settings);
            client.Retrying += CountRetry;
            _cmdlet.WriteVerbose($"KMS endpoint {client.Endpoint} (region {client.Endpoint.RegionId ?? "not set"}), credentials from {client.CredentialsSource}.");
            return _client = client;
        }
        catch (Exception e) when (e is KmsConfigurationException or CredentialsException or ArgumentException)
        {
            // Credentials are the same failure whether found missing here or later in a call: one id for both.
            var id = e is CredentialsException ? ErrorIds.KmsCredentialsFailed : ErrorIds.KmsConfigurationInvalid;
            _cmdlet.ThrowTerminatingError(id.ToRecord(e, null));
            throw; // not reached
        }
    }

    /// <summary>
    /// The clients by region: <see cref="Open"/>'s for its own region, and for a key ARN or a wrapped key of another
    /// region that region's endpoint (Connect-Kms -RegionEndpoint, else the public one), with the same credentials.
    /// Made on the first call. Pipeline thread only.
    /// </summary>
    public KmsRegionalClients OpenRegional()
    {
        if (_regional is not null) return _regional;
        var home = Open();
        try
        {
            _regional = KmsClientFactory.CreateRegionalClients(_settings, home, regional =>
            {
                regional.Retrying += CountRetry;
                QueueVerbose($"KMS endpoint {regional.Endpoint} for region {regional.Endpoint.RegionId}, credentials from {regional.CredentialsSource}.");
            });
        }
        catch (KmsConfigurationException e)
        {
            _cmdlet.ThrowTerminatingError(ErrorIds.KmsConfigurationInvalid.ToRecord(e, null));
        }
        return _regional!;
    }

    /// <summary>
    /// The region of the KMS key that unwrapped a data key: the one its entry records, else (an entry with no
    /// region, always sent to this invocation's own endpoint) that endpoint's region.
    /// </summary>
    public string? RegionOfUnwrap(Keys.WrappedDataKey? entry)
        => entry is null ? null : entry.Region.Length > 0 ? entry.Region : Open().Endpoint.RegionId;

    /// <summary>
    /// The key provider for reading files: only <paramref name="allowedKeyIds"/> (when given) may unwrap; one
    /// Decrypt per distinct wrapped key; a dead KMS fails the following files fast instead of each waiting out its
    /// retries. Pipeline thread only (it opens the clients).
    /// </summary>
    public Keys.CachingDataKeyProvider CreateUnwrappingKeyProvider(string[]? allowedKeyIds)
        => new(new Keys.CircuitBreakingDataKeyProvider(
            new KmsDataKeyProvider(OpenRegional(), new KmsDataKeyProviderOptions { AllowedKeyIds = allowedKeyIds, Trace = QueueVerbose })));

    private void CountRetry(object? sender, KmsRetryEventArgs e) => _retries.AddOrUpdate($"{e.Operation}: {e.Error.Code}", 1, (_, n) => n + 1);

    /// <summary>A verbose line from a worker thread, written on the pipeline thread by <see cref="WriteQueuedVerbose"/>.</summary>
    public void QueueVerbose(string message) => _pendingVerbose.Enqueue(message);

    /// <summary>Writes the verbose lines queued by workers. Pipeline thread only.</summary>
    public void WriteQueuedVerbose()
    {
        while (_pendingVerbose.TryDequeue(out var message)) _cmdlet.WriteVerbose(message);
    }

    /// <summary>
    /// One verbose line with the retries this invocation's KMS clients made, by operation and error code, e.g.
    /// <c>KMS retries: 12 (Decrypt: Throttling.User 7, Decrypt: InternalFailure 5).</c> Nothing when no client was made.
    /// </summary>
    public void WriteRetrySummary()
    {
        if (_client is null) return;
        WriteQueuedVerbose();
        string detail = _retries.IsEmpty ? "" : " (" + string.Join(", ", _retries.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")) + ")";
        long retries = _regional?.RetryCount ?? _client.RetryCount;
        _cmdlet.WriteVerbose($"KMS retries: {retries}{detail}; at most {_client.Options.Retry.MaxAttempts} attempts per call.");
    }

    public void Dispose()
    {
        _regional?.Dispose();
        _client?.Dispose();
    }
}
