namespace EnvelopeKms.Files;

/// <summary>
/// A small file made ready before its data key arrives: its content read (<see cref="SmallFile"/>) and, when that
/// was possible, its output's temp file created (<see cref="PendingOutput"/>). Everything here needs no key, so a
/// batch does it while the KMS round trip is under way; what is left once the key arrives is the cryptography and
/// one write. Disposing it wipes the content and deletes an output that was not committed.
/// </summary>
public sealed class PreparedFile : IDisposable
{
    private PreparedFile(SmallFile input) => Input = input;

    public SmallFile Input { get; }

    /// <summary>The output created ahead, or null (not asked for, or it could not be created just then).</summary>
    public PendingOutput? Output { get; private set; }

    /// <summary>Reads <paramref name="path"/> whole if it is small (<see cref="SmallFile.TryRead"/>); null otherwise.</summary>
    public static PreparedFile? TryRead(string path) => SmallFile.TryRead(path) is { } input ? new PreparedFile(input) : null;

    /// <summary>
    /// Creates the output's temp file for <paramref name="destination"/> now. When that fails (the destination is taken,
    /// the folder cannot be written, too many open files) nothing is reported here: <see cref="Output"/> stays null
    /// and the file's ordinary path creates the output later, reporting any error properly.
    /// </summary>
    public void TryCreateOutput(string destination, bool overwrite)
    {
        if (Output is not null) throw new InvalidOperationException("The output was created already.");
        try
        {
            Output = PendingOutput.Create(Input.Path, destination, overwrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
        }
    }

    public void Dispose()
    {
        Output?.Dispose();
        Input.Dispose();
    }
}
