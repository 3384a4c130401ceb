using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Base of the cmdlets that read files and call KMS (Protect-, Unprotect-, Convert-, Test-EnvelopeFile): -Path /
/// -LiteralPath as <see cref="EnvelopeFileCmdlet"/> declares them, and the KMS connection parameters as
/// <see cref="KmsCmdlet"/> declares them, each pair of declarations delegating to the one helper that does the work
/// (<see cref="FileInput"/>, <see cref="KmsConnection"/>). Update-EnvelopeFileKey is a <see cref="KmsCmdlet"/> with
/// its own path parameters, which belong to four parameter sets.
/// </summary>
public abstract class KmsFileCmdlet : EnvelopeCmdlet
{
    protected const string PathSet = FileInput.PathSet;
    protected const string LiteralPathSet = FileInput.LiteralPathSet;
    private KmsConnection? _connection;

    /// <summary>Files to process; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Files to process, taken exactly as written.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

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

    private protected FileInput Input { get; }

    protected KmsFileCmdlet() => Input = new FileInput(this);

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

    /// <summary>Resolves the current record's paths to existing files, writing errors for the rest.</summary>
    protected List<string> ResolveInputFiles()
        => Input.Resolve(ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _connection?.Dispose();
        base.Dispose(disposing);
    }
}
