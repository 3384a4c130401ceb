namespace EnvelopeKms.Files;

/// <summary>A source that removing its name would not remove: a symbolic link, or a file with other hard links.</summary>
public sealed class SourceNotRemovableException(string message) : IOException(message);

/// <summary>
/// Removing a source after encrypting it (-RemoveSource) is meant to leave no plaintext behind. Deleting a name does
/// that only when the name is the file's one and only link: for a symbolic link it deletes the link and leaves the
/// plaintext at its target; for a file with other hard links the plaintext stays readable through them. Such sources
/// are refused before anything is written, and checked again just before the removal.
/// </summary>
public static class SourceRemoval
{
    /// <summary>Throws <see cref="SourceNotRemovableException"/> when deleting <paramref name="source"/> would leave its content on disk.</summary>
    public static void CheckRemovable(string source)
    {
        source = Path.GetFullPath(source);
        string? target = new FileInfo(source).LinkTarget;
        if (target is not null)
            throw new SourceNotRemovableException($"'{source}' is a symbolic link to '{target}': removing it would delete only the link and leave the plaintext at its target. Give the target itself, or encrypt without -RemoveSource.");
        if (FileIdentity.TryGet(source, followLinks: false, out var identity) && identity.LinkCount > 1)
            throw new SourceNotRemovableException($"'{source}' has {identity.LinkCount - 1} other hard link(s): removing it would delete only this name and the plaintext would stay readable through the others. Remove the other links first, or encrypt without -RemoveSource.");
    }

    /// <summary>
    /// Deletes <paramref name="source"/> after its encrypted copy <paramref name="output"/> was verified, checking
    /// again first (a link may have been made since the first check); the error then says what was kept.
    /// </summary>
    public static void Remove(string source, string output)
    {
        try
        {
            CheckRemovable(source);
        }
        catch (SourceNotRemovableException e)
        {
            throw new SourceNotRemovableException($"'{output}' was written and verified, but the source was not removed: {e.Message}");
        }
        File.Delete(source);
    }
}
