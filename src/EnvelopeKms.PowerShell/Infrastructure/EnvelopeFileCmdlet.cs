using System.Management.Automation;
using Microsoft.PowerShell.Commands;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// The -Path / -LiteralPath handling of Get-FileHash: wildcards on -Path, none on -LiteralPath (which binds from
/// Get-ChildItem through PSPath, so names with brackets work), FileSystem provider only, paths resolved against
/// the session's current location rather than the process's.
/// </summary>
/// <remarks>
/// Derived cmdlets make LiteralPath their default parameter set: an object with both Path and PSPath properties
/// (this module's own results) then binds to -LiteralPath, so names with brackets survive the pipeline, while a
/// piped or positional string still binds to -Path, the only set that takes it.
/// </remarks>
public abstract class EnvelopeFileCmdlet : KmsCmdlet
{
    protected const string PathSet = "Path";
    protected const string LiteralPathSet = "LiteralPath";
    private int _skippedDirectories;

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

    /// <summary>Resolves the current record's paths to existing files, writing errors for the rest.</summary>
    protected IEnumerable<string> ResolveInputFiles()
        => FilePathResolver.Resolve(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, ref _skippedDirectories);

    /// <summary>Resolves a -Destination relative to the current location.</summary>
    protected string ResolveDestination(string destination) => SessionState.Path.GetUnresolvedProviderPathFromPSPath(destination);

    /// <summary>One summary line instead of a message per directory (Get-ChildItem -Recurse passes many).</summary>
    protected void WriteSkippedDirectorySummary() => FilePathResolver.WriteSkippedDirectorySummary(this, _skippedDirectories);
}
