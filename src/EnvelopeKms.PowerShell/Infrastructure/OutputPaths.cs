using System.Management.Automation;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Where a writing cmdlet puts each output: -Destination as a file (one input only) or a folder (ending in a
/// separator, or existing; created when missing), else beside each source; plus the one warning per destination
/// folder about temp files a killed run left there.
/// </summary>
internal sealed class OutputPaths
{
    private readonly PSCmdlet _cmdlet;
    private readonly string? _given;
    private readonly string? _file;
    private readonly string? _directory;
    private readonly HashSet<string> _checkedDirectories = new(StringComparer.Ordinal);
    private int _inputs;

    /// <summary>Resolves -Destination against the current location; from BeginProcessing (it may create the folder, under ShouldProcess).</summary>
    public OutputPaths(PSCmdlet cmdlet, string? destination)
    {
        _cmdlet = cmdlet;
        _given = destination;
        if (destination is null) return;
        string resolved = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(destination);
        bool endsWithSeparator = destination.EndsWith('/') || destination.EndsWith(Path.DirectorySeparatorChar);
        if (Directory.Exists(resolved) || endsWithSeparator)
        {
            if (!Directory.Exists(resolved) && cmdlet.ShouldProcess(resolved, "Create destination directory")) Directory.CreateDirectory(resolved);
            _directory = resolved;
        }
        else _file = resolved;
    }

    /// <summary>True when -Destination was given.</summary>
    public bool Given => _given is not null;

    /// <summary>
    /// The output path for <paramref name="source"/>: -Destination when it names a file (one input only: a second
    /// input ends the command), else <paramref name="outputName"/> in the -Destination folder or beside the source;
    /// null when there is no name.
    /// </summary>
    public string? For(string source, string? outputName, Action beforeTerminating)
    {
        if (_file is not null)
        {
            if (++_inputs > 1)
            {
                beforeTerminating();
                var e = new ArgumentException($"-Destination '{_given}' names a file, but more than one file was given. Give a folder instead.");
                _cmdlet.ThrowTerminatingError(ErrorIds.EnvelopeDestinationNotDirectory.ToRecord(e, _given));
            }
            return _file;
        }
        if (outputName is null) return null;
        return Path.Combine(_directory ?? Path.GetDirectoryName(source)!, outputName);
    }

    /// <summary>
    /// Before the first write into a directory: one warning listing temp files (<c>.&lt;name&gt;.&lt;32 hex&gt;.ekms-tmp</c>)
    /// that a killed run left there, with the command that removes the stale ones. Nothing is deleted automatically:
    /// a run still in progress (another process) has such files too.
    /// </summary>
    public void WarnAboutLeftoverTempFiles(string destination)
    {
        string? directory = Path.GetDirectoryName(destination);
        if (directory is null || !_checkedDirectories.Add(directory)) return;
        var found = Files.EnvelopeFileOperations.FindTempFiles(directory);
        if (found.Count == 0) return;
        const int shown = 10;
        var now = DateTime.UtcNow;
        string list = string.Join(", ", found.Take(shown).Select(f => $"{f.Name} ({FormatAge(now - f.LastWriteTimeUtc)} old)"))
            + (found.Count > shown ? $" and {found.Count - shown} more" : "");
        string escaped = directory.Replace("'", "''");
        _cmdlet.WriteWarning($"'{directory}' holds {found.Count} temp file(s) of an interrupted EnvelopeKms run (or of one still running): {list}. "
            + "They hold no usable output. Remove those no longer written to with: "
            + $"Get-ChildItem -LiteralPath '{escaped}' -Force -Filter '*.ekms-tmp' | Where-Object LastWriteTime -lt (Get-Date).AddMinutes(-10) | Remove-Item -Force");
    }

    private static string FormatAge(TimeSpan age)
        => age.TotalDays >= 1 ? $"{age.TotalDays:0} d" : age.TotalHours >= 1 ? $"{age.TotalHours:0} h" : age.TotalMinutes >= 1 ? $"{age.TotalMinutes:0} min" : $"{Math.Max(0, age.TotalSeconds):0} s";
}
