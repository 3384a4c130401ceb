using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// The <c>--policy-file</c>, re-read whenever its content changes (compared on every call: it is a few KB), so a
/// policy can be tightened or a key id filled in without restarting the server, the way a RAM policy change takes
/// effect on the next call. A file that is unreadable or invalid at start stops the server from starting; one that
/// becomes so later fails closed: every call is refused with InternalFailure (and a note on stderr) until it is
/// fixed, rather than falling back to "no policies", which would allow everything.
/// </summary>
internal sealed class RamPolicyFile
{
    private readonly string path;
    private readonly TextWriter notes;
    private readonly Lock gate = new();
    private byte[] loadedBytes;
    private RamPolicyBook? book;

    public RamPolicyFile(string path, TextWriter notes)
    {
        this.path = path;
        this.notes = notes;
        loadedBytes = File.ReadAllBytes(path);
        book = RamPolicyBook.Parse(loadedBytes, path);
    }

    /// <summary>The policies in force now; throws InternalFailure while the file is broken.</summary>
    public RamPolicyBook Current()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            lock (gate)
            {
                Broken($"cannot be read ({error.Message})");
            }
            throw KmsErrors.InternalFailure();
        }
        lock (gate)
        {
            if (!bytes.AsSpan().SequenceEqual(loadedBytes))
            {
                loadedBytes = bytes;
                try
                {
                    book = RamPolicyBook.Parse(bytes, path);
                    notes.WriteLine($"Policy file {path} reloaded.");
                }
                catch (InvalidDataException error)
                {
                    Broken(error.Message);
                }
            }
            return book ?? throw KmsErrors.InternalFailure();
        }
    }

    private void Broken(string why)
    {
        if (book is not null)
        {
            notes.WriteLine($"Policy file {path} is invalid, every call is refused until it is fixed: {why}");
        }
        book = null;
        // Forget the bytes so that the next read, even of the same content, is parsed again.
        loadedBytes = [];
    }
}
