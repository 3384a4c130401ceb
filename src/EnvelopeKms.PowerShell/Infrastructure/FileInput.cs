using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// The -Path / -LiteralPath input of one invocation, on <see cref="FilePathResolver"/> (Get-FileHash's rules):
/// resolves each record's paths to existing files, writing errors for the rest, and sums up the directories
/// skipped (Get-ChildItem -Recurse passes many) in one warning at the end.
/// </summary>
internal sealed class FileInput(PSCmdlet cmdlet)
{
    public const string PathSet = "Path";
    public const string LiteralPathSet = "LiteralPath";
    private int _skippedDirectories;

    /// <summary>The files the current record names. Pipeline thread only.</summary>
    public List<string> Resolve(string[] paths, bool literal)
        => FilePathResolver.Resolve(cmdlet, paths, literal, ref _skippedDirectories);

    /// <summary>One summary line instead of a message per directory.</summary>
    public void WriteSkippedDirectorySummary() => FilePathResolver.WriteSkippedDirectorySummary(cmdlet, _skippedDirectories);
}
