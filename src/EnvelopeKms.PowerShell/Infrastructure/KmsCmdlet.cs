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
/// The connection is a <see cref="KmsConnection"/> made in BeginProcessing; derived cmdlets begin in <see cref="Begin"/>.
/// </summary>
public abstract class KmsCmdlet : EnvelopeCmdlet
{
    private KmsConnection? _connection;

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

    /// <summary>This invocation's KMS connection (made in BeginProcessing; opening a client is an explicit call on it).</summary>
    private protected KmsConnection Kms => _connection ?? throw new InvalidOperationException("BeginProcessing has not run.");

    /// <summary>Makes the connection (no KMS call, no client yet), then runs the cmdlet's own <see cref="Begin"/>.</summary>
    protected sealed override void BeginProcessing()
    {
        _connection = new KmsConnection(this, KmsConnectionResolver.Resolve(Region, Endpoint, ProfileName, Credential, ModuleState.Current.Connection));
        Begin();
    }

    /// <summary>The cmdlet's BeginProcessing, after the connection is made.</summary>
    protected virtual void Begin()
    {
    }

    /// <summary>The KMS client for this invocation, made on the first call. A method: it may write verbose output or end the command.</summary>
    protected KmsClient OpenClient() => Kms.Open();

    /// <summary>Runs one KMS call for <paramref name="target"/>, writing a non-terminating error on failure.</summary>
    protected bool TryRun(object target, Func<CancellationToken, Task> call)
    {
        try
        {
            Run(call);
            return true;
        }
        catch (Exception e) when (e is KmsException or ArgumentException or CredentialsException or KmsConfigurationException)
        {
            var record = ErrorMapper.ToErrorRecord(e, target);
            // Credentials, clock and configuration problems fail every call alike: stop once.
            if (PipelineEnd.SharedSession.Ends(ErrorMapper.IdOf(e)))
                ThrowTerminatingError(record);
            WriteError(record);
            return false;
        }
    }

    /// <summary>Writes a key's metadata, remembering it for Tab completion.</summary>
    protected void Emit(KeyMetadata key)
    {
        ModuleState.Current.RememberKey(key.KeyId, key.Description);
        WriteObject(key);
    }

    /// <summary>
    /// One state change per key (Enable-, Disable-, Remove-, Restore-KmsKey), each confirmed, with the key's
    /// metadata afterwards when <paramref name="passThru"/>.
    /// </summary>
    protected void ChangeKeyStates(string[] keyIds, string action, bool passThru, Func<string, CancellationToken, Task> change)
    {
        foreach (var id in keyIds)
        {
            if (!ShouldProcess(id, action)) continue;
            if (!TryRun(id, ct => change(id, ct))) continue;
            WriteVerbose($"{action}: {id}.");
            if (passThru)
            {
                KeyMetadata? key = null;
                if (TryRun(id, async ct => key = await OpenClient().DescribeKeyAsync(id, ct).ConfigureAwait(false))) Emit(key!);
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _connection?.Dispose();
        base.Dispose(disposing);
    }
}
