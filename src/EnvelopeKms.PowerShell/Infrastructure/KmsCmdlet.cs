using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Base of every cmdlet that calls KMS: the same -Region, -Endpoint, -ProfileName and -Credential parameters on all
/// of them (so <c>$PSDefaultParameterValues['*:Region']</c>, or one entry per noun pattern such as
/// <c>'*-Kms*:Region'</c> and <c>'*-EnvelopeFile:Region'</c>, covers them), resolved in the order
/// bound parameter → Connect-Kms default → environment → profile files → instance metadata.
/// </summary>
public abstract class KmsCmdlet : EnvelopeCmdlet
{
    private KmsClient? _client;
    private KmsConnectionSettings? _settings;
    private KmsRegionalClients? _regional;
    private readonly object _regionalLock = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _retries = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _pendingVerbose = new();

    /// <summary>Region id, e.g. cn-hangzhou (endpoint https://kms.cn-hangzhou.aliyuncs.com).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Region { get; set; }

    /// <summary>An explicit endpoint URL: a KMS instance, a VPC endpoint, or the local KMS server.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Endpoint { get; set; }

    /// <summary>A profile of the aliyun CLI (~/.aliyun/config.json) or ~/.alibabacloud/credentials.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ProfileName { get; set; }

    /// <summary>AccessKey id as user name and AccessKey secret as password.</summary>
    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    /// <summary>
    /// The KMS client for this invocation, created on the first call (which may write verbose output or end the
    /// command with a terminating error, so make it on the pipeline thread). A method, not a property: it has effects.
    /// </summary>
    protected KmsClient OpenClient() => _client ??= CreateClient();

    /// <summary>
    /// The KMS clients of this invocation by region: <see cref="OpenClient"/>'s for its own region, and for a key ARN
    /// or a wrapped key of another region that region's endpoint (Connect-Kms -RegionEndpoint, else the public one),
    /// with the same credentials. Created on the first call; make that call on the pipeline thread.
    /// </summary>
    protected KmsRegionalClients OpenRegionalClients()
    {
        if (_regional is not null) return _regional;
        var home = OpenClient();
        lock (_regionalLock)
        {
            if (_regional is not null) return _regional;
            try
            {
                _regional = KmsClientFactory.CreateRegionalClients(_settings!, home, regional =>
                {
                    regional.Retrying += CountRetry;
                    QueueVerbose($"KMS endpoint {regional.Endpoint} for region {regional.Endpoint.RegionId}, credentials from {regional.CredentialsSource}.");
                });
            }
            catch (KmsConfigurationException e)
            {
                ThrowTerminatingError(ErrorIds.KmsConfigurationInvalid.ToRecord(e, null));
            }
            return _regional!;
        }
    }

    private void CountRetry(object? sender, KmsRetryEventArgs e) => _retries.AddOrUpdate($"{e.Operation}: {e.Error.Code}", 1, (_, n) => n + 1);

    /// <summary>A verbose line from a worker thread, written on the pipeline thread by <see cref="WriteQueuedVerbose"/>.</summary>
    protected void QueueVerbose(string message) => _pendingVerbose.Enqueue(message);

    /// <summary>Writes the verbose lines queued by workers. Pipeline thread only.</summary>
    protected void WriteQueuedVerbose()
    {
        while (_pendingVerbose.TryDequeue(out var message)) WriteVerbose(message);
    }

    private KmsClient CreateClient()
    {
        var settings = KmsConnectionResolver.Resolve(Region, Endpoint, ProfileName, Credential, ModuleState.Current.Connection);
        try
        {
            var client = KmsClientFactory.Create(settings);
            _settings = settings;
            client.Retrying += CountRetry;
            WriteVerbose($"KMS endpoint {client.Endpoint} (region {client.Endpoint.RegionId ?? "not set"}), credentials from {client.CredentialsSource}.");
            return client;
        }
        catch (Exception e) when (e is KmsConfigurationException or CredentialsException or ArgumentException)
        {
            // Credentials are the same failure whether found missing here or later in a call: one id for both.
            var id = e is CredentialsException ? ErrorIds.KmsCredentialsFailed : ErrorIds.KmsConfigurationInvalid;
            ThrowTerminatingError(id.ToRecord(e, null));
            throw; // not reached
        }
    }

    /// <summary>
    /// One verbose line with the retries this invocation's KMS client made, by operation and error code, e.g.
    /// <c>KMS retries: 12 (Decrypt: Throttling.User 7, Decrypt: InternalFailure 5).</c> Nothing when no client was made.
    /// </summary>
    protected void WriteRetrySummary()
    {
        if (_client is null) return;
        WriteQueuedVerbose();
        string detail = _retries.IsEmpty ? "" : " (" + string.Join(", ", _retries.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")) + ")";
        long retries = _regional?.RetryCount ?? _client.RetryCount;
        WriteVerbose($"KMS retries: {retries}{detail}; at most {_client.Options.Retry.MaxAttempts} attempts per call.");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _regional?.Dispose();
            _client?.Dispose();
        }
        base.Dispose(disposing);
    }
}
