using System.Text.Json;

namespace EnvelopeKms.Server.Store;

/// <summary>
/// The persisted state behind one lock. Every read and mutation runs under the lock; a mutation
/// rewrites state.json atomically before the lock is released, so a successful response means
/// the change survives a restart. Operations validate before they change anything, so an
/// exception from a mutation leaves the in-memory state as it was.
/// </summary>
internal sealed class KmsStateStore
{
    public const string StateFileName = "state.json";

    private static readonly JsonSerializerOptions FileJson = new() { WriteIndented = true };

    private readonly Lock gate = new();
    private readonly string stateFile;
    private readonly TimeProvider time;
    private readonly KmsState state;

    public KmsStateStore(string dataDirectory, TimeProvider time)
    {
        this.time = time;
        AtomicFile.EnsureOwnerOnlyDirectory(dataDirectory);
        stateFile = Path.Combine(dataDirectory, StateFileName);
        state = File.Exists(stateFile) ? Load(stateFile) : new KmsState();
        if (state.FormatVersion != 1)
        {
            throw new InvalidDataException($"{stateFile} has format version {state.FormatVersion}; this server reads version 1.");
        }
    }

    private static KmsState Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<KmsState>(File.ReadAllText(path), FileJson)
                ?? throw new InvalidDataException($"{path} is empty.");
        }
        catch (JsonException error)
        {
            // Refuse to start rather than overwrite a damaged file with an empty state.
            throw new InvalidDataException($"{path} is not a valid state file: {error.Message}", error);
        }
    }

    public T Read<T>(Func<KmsState, T> read)
    {
        lock (gate)
        {
            PurgeDue();
            return read(state);
        }
    }

    public T Mutate<T>(Func<KmsState, T> mutate)
    {
        lock (gate)
        {
            PurgeDue();
            var result = mutate(state);
            Save();
            return result;
        }
    }

    /// <summary>
    /// Removes keys whose deletion window has passed (with their aliases) and expired temporary
    /// credentials. Done lazily on access rather than by a timer: nobody can observe the
    /// difference, and it keeps the store free of background threads.
    /// </summary>
    private void PurgeDue()
    {
        var now = time.GetUtcNow();
        var deleted = state.Keys.Where(k => k.DeleteDate is { } due && due <= now).Select(k => k.KeyId).ToHashSet();
        var removedKeys = state.Keys.RemoveAll(k => deleted.Contains(k.KeyId));
        var removedAliases = state.Aliases.RemoveAll(a => deleted.Contains(a.KeyId));
        var removedCredentials = state.StsCredentials.RemoveAll(c => c.Expiration <= now - TimeSpan.FromDays(1));
        if (removedKeys + removedAliases + removedCredentials > 0)
        {
            Save();
        }
    }

    private void Save() => AtomicFile.WriteAllText(stateFile, JsonSerializer.Serialize(state, FileJson));
}
