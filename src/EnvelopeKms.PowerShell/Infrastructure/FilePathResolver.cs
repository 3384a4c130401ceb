using System.Management.Automation;
using Microsoft.PowerShell.Commands;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>Get-FileHash's path rules, shared by every cmdlet that takes -Path / -LiteralPath.</summary>
internal static class FilePathResolver
{
    /// <summary>Resolves the current record's paths to existing files, writing errors for the rest.</summary>
    public static List<string> Resolve(PSCmdlet cmdlet, string[] paths, bool literal, ref int skippedDirectories)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            List<string> resolved = [];
            try
            {
                if (literal)
                {
                    resolved.Add(cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out var provider, out _));
                    if (!IsFileSystem(cmdlet, provider, path)) continue;
                }
                else
                {
                    resolved.AddRange(cmdlet.GetResolvedProviderPathFromPSPath(path, out var provider));
                    if (!IsFileSystem(cmdlet, provider, path)) continue;
                }
            }
            catch (ItemNotFoundException e)
            {
                if (!WildcardPattern.ContainsWildcardCharacters(path) || literal)
                    cmdlet.WriteError(ErrorIds.EnvelopeFileNotFound.ToRecord(new FileNotFoundException(e.Message, path), path));
                continue;
            }
            catch (Exception e) when (e is ProviderNotFoundException or System.Management.Automation.DriveNotFoundException or NotSupportedException or ArgumentException)
            {
                cmdlet.WriteError(ErrorIds.EnvelopePathInvalid.ToRecord(e, path));
                continue;
            }
            foreach (var file in resolved)
            {
                if (Directory.Exists(file))
                {
                    skippedDirectories++;
                    cmdlet.WriteVerbose($"Skipping directory '{file}': this cmdlet works on files.");
                    continue;
                }
                if (!File.Exists(file))
                {
                    cmdlet.WriteError(ErrorIds.EnvelopeFileNotFound.ToRecord(new FileNotFoundException($"Cannot find the file '{file}'.", file), file));
                    continue;
                }
                files.Add(file);
            }
        }
        return files;
    }

    private static bool IsFileSystem(PSCmdlet cmdlet, ProviderInfo provider, string path)
    {
        if (provider.ImplementingType == typeof(FileSystemProvider)) return true;
        cmdlet.WriteError(ErrorIds.EnvelopePathNotFileSystem.ToRecord(new ArgumentException($"'{path}' is not a file system path; only files can be processed."), path));
        return false;
    }

    public static void WriteSkippedDirectorySummary(PSCmdlet cmdlet, int skipped)
    {
        if (skipped > 0)
            cmdlet.WriteWarning($"Skipped {skipped} director{(skipped == 1 ? "y" : "ies")}: {cmdlet.MyInvocation.MyCommand.Name} works on files (use Get-ChildItem -Recurse -File).");
    }
}
