using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Base of the cmdlets that read files without KMS (Get-EnvelopeFileInfo): -Path / -LiteralPath as Get-FileHash
/// takes them, resolved by a <see cref="FileInput"/>.
/// </summary>
/// <remarks>
/// Derived cmdlets make LiteralPath their default parameter set: an object with both Path and PSPath properties
/// (this module's own results) then binds to -LiteralPath, so names with brackets survive the pipeline, while a
/// piped or positional string still binds to -Path, the only set that takes it. <see cref="KmsFileCmdlet"/>
/// declares the same two parameters for the cmdlets that also call KMS: C# has one base class, and a third level
/// would only be there to share two declarations.
/// </remarks>
public abstract class EnvelopeFileCmdlet : EnvelopeCmdlet
{
    protected const string PathSet = FileInput.PathSet;
    protected const string LiteralPathSet = FileInput.LiteralPathSet;

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

    private protected FileInput Input { get; }

    protected EnvelopeFileCmdlet() => Input = new FileInput(this);

    /// <summary>Resolves the current record's paths to existing files, writing errors for the rest.</summary>
    protected List<string> ResolveInputFiles()
        => Input.Resolve(ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet);
}
