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
    private readonly HashSet<string> _checkedDirectories = new(StringComparer.Ordinal);

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

    /// <summary>
    /// The key provider for reading files: only <paramref name="allowedKeyIds"/> (when given) may unwrap; one
    /// Decrypt per distinct wrapped key; a dead KMS fails the following files fast instead of each waiting out
    /// its retries.
    /// </summary>
    protected Keys.CachingDataKeyProvider CreateUnwrappingKeyProvider(string[]? allowedKeyIds)
        => new(new Keys.CircuitBreakingDataKeyProvider(
            new Kms.KmsDataKeyProvider(OpenRegionalClients(), new Kms.KmsDataKeyProviderOptions { AllowedKeyIds = allowedKeyIds, Trace = QueueVerbose })));

    /// <summary>
    /// The region of the KMS key that unwrapped a data key: the one its entry records, else (an entry with no
    /// region, always sent to this invocation's own endpoint) that endpoint's region.
    /// </summary>
    protected string? RegionOfUnwrap(Keys.WrappedDataKey? entry)
        => entry is null ? null : entry.Region.Length > 0 ? entry.Region : OpenClient().Endpoint.RegionId;

    /// <summary>Resolves a -Destination relative to the current location.</summary>
    protected string ResolveDestination(string destination) => SessionState.Path.GetUnresolvedProviderPathFromPSPath(destination);

    /// <summary>
    /// Before the first write into a directory: one warning listing temp files (<c>.&lt;name&gt;.&lt;32 hex&gt;.ekms-tmp</c>)
    /// that a killed run left there, with the command that removes the stale ones. Nothing is deleted automatically:
    /// a run still in progress (another process) has such files too.
    /// </summary>
    protected void WarnAboutLeftoverTempFiles(string destination)
    {
        string? directory = System.IO.Path.GetDirectoryName(destination);
        if (directory is null || !_checkedDirectories.Add(directory)) return;
        var found = EnvelopeKms.Files.EnvelopeFileOperations.FindTempFiles(directory);
        if (found.Count == 0) return;
        const int shown = 10;
        var now = DateTime.UtcNow;
        string list = string.Join(", ", found.Take(shown).Select(f => $"{f.Name} ({FormatAge(now - f.LastWriteTimeUtc)} old)"))
            + (found.Count > shown ? $" and {found.Count - shown} more" : "");
        string escaped = directory.Replace("'", "''");
        WriteWarning($"'{directory}' holds {found.Count} temp file(s) of an interrupted EnvelopeKms run (or of one still running): {list}. "
            + "They hold no usable output. Remove those no longer written to with: "
            + $"Get-ChildItem -LiteralPath '{escaped}' -Force -Filter '*.ekms-tmp' | Where-Object LastWriteTime -lt (Get-Date).AddMinutes(-10) | Remove-Item -Force");
    }

    private static string FormatAge(TimeSpan age)
        => age.TotalDays >= 1 ? $"{age.TotalDays:0} d" : age.TotalHours >= 1 ? $"{age.TotalHours:0} h" : age.TotalMinutes >= 1 ? $"{age.TotalMinutes:0} min" : $"{Math.Max(0, age.TotalSeconds):0} s";

    /// <summary>One summary line instead of a message per directory (Get-ChildItem -Recurse passes many).</summary>
    protected void WriteSkippedDirectorySummary() => FilePathResolver.WriteSkippedDirectorySummary(this, _skippedDirectories);
}
