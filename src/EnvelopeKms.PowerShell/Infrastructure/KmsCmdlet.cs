using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;

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
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _retries = new(StringComparer.Ordinal);

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

    /// <summary>The KMS client for this invocation, created on first use.</summary>
    protected KmsClient Client => _client ??= CreateClient();

    private KmsClient CreateClient()
    {
        var settings = KmsConnectionResolver.Resolve(Region, Endpoint, ProfileName, Credential, ModuleState.Current.Connection);
        try
        {
            var client = KmsClientFactory.Create(settings);
            client.Retrying += (_, e) => _retries.AddOrUpdate($"{e.Operation}: {e.Error.Code}", 1, (_, n) => n + 1);
            WriteVerbose($"KMS endpoint {client.Endpoint} (region {client.Endpoint.RegionId ?? "not set"}), credentials from {client.CredentialsSource}.");
            return client;
        }
        catch (Exception e) when (e is KmsConfigurationException or CredentialsException or ArgumentException)
        {
            ThrowTerminatingError(new ErrorRecord(e, e is CredentialsException ? "KmsCredentialsNotFound" : "KmsConfigurationInvalid",
                ErrorCategory.InvalidArgument, null));
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
        string detail = _retries.IsEmpty ? "" : " (" + string.Join(", ", _retries.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")) + ")";
        WriteVerbose($"KMS retries: {_client.RetryCount}{detail}; at most {_client.Options.Retry.MaxAttempts} attempts per call.");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _client?.Dispose();
        base.Dispose(disposing);
    }
}
