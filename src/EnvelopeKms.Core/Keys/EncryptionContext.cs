using System.Collections;
using System.Text;
using System.Text.Json;

namespace EnvelopeKms.Keys;

/// <summary>
/// An encryption context: a map of UTF-8 strings that is authenticated in the file header and sent to KMS as the
/// <c>EncryptionContext</c> of <c>GenerateDataKey</c> and <c>Decrypt</c>. Entries are kept sorted by the UTF-8
/// bytes of their keys, which is also the canonical order of the binary encoding (docs/format.md §4).
/// </summary>
public sealed class EncryptionContext : IReadOnlyDictionary<string, string>
{
    /// <summary>Keys starting with this prefix are reserved for the format itself.</summary>
    public const string ReservedPrefix = "ekms:";

    /// <summary>Largest encoded context (its length field is 16 bits).</summary>
    public const int MaxEncodedLength = ushort.MaxValue;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly KeyValuePair<string, string>[] _entries;

    public static EncryptionContext Empty { get; } = new(Array.Empty<KeyValuePair<string, string>>());

    private EncryptionContext(KeyValuePair<string, string>[] sortedEntries) => _entries = sortedEntries;

    /// <summary>Builds a context from caller-supplied pairs, checking keys, values and size.</summary>
    public static EncryptionContext Create(IEnumerable<KeyValuePair<string, string>>? pairs) => Create(pairs, allowReserved: false);

    /// <summary>
    /// Builds a context read from a file of another format (the Alibaba Cloud Encryption SDK's): the same checks as
    /// <see cref="Create(IEnumerable{KeyValuePair{string, string}}?)"/>, except that keys with the reserved prefix are
    /// accepted (only writers refuse them). Throws <see cref="ArgumentException"/> on an invalid pair.
    /// </summary>
    internal static EncryptionContext CreateFromFile(IEnumerable<KeyValuePair<string, string>> pairs) => Create(pairs, allowReserved: true);

    private static EncryptionContext Create(IEnumerable<KeyValuePair<string, string>>? pairs, bool allowReserved)
    {
        if (pairs is null) return Empty;
        var list = new List<KeyValuePair<string, string>>();
        foreach (var pair in pairs)
        {
            if (string.IsNullOrEmpty(pair.Key))
                throw new ArgumentException("Encryption context keys must not be empty.");
            if (pair.Value is null)
                throw new ArgumentException($"Encryption context key '{pair.Key}' has no value.");
            if (!allowReserved && pair.Key.StartsWith(ReservedPrefix, StringComparison.Ordinal))
                throw new ArgumentException($"Encryption context keys starting with '{ReservedPrefix}' are reserved.");
            EnsureEncodable(pair.Key);
            EnsureEncodable(pair.Value);
            list.Add(pair);
        }
        var entries = list.ToArray();
        Array.Sort(entries, static (a, b) => CompareUtf8(a.Key, b.Key));
        for (int i = 1; i < entries.Length; i++)
        {
            if (CompareUtf8(entries[i - 1].Key, entries[i].Key) == 0)
                throw new ArgumentException($"Encryption context key '{entries[i].Key}' appears twice.");
        }
        var context = new EncryptionContext(entries);
        if (context.GetEncodedLength() > MaxEncodedLength)
            throw new ArgumentException($"The encryption context encodes to more than {MaxEncodedLength} bytes.");
        return context;
    }

    /// <summary>Compares two strings by their UTF-8 bytes (which differs from UTF-16 ordinal order above U+FFFF).</summary>
    public static int CompareUtf8(string a, string b)
    {
        var bytesA = Encoding.UTF8.GetBytes(a);
        var bytesB = Encoding.UTF8.GetBytes(b);
        return bytesA.AsSpan().SequenceCompareTo(bytesB);
    }

    private static void EnsureEncodable(string s)
    {
        try
        {
            if (StrictUtf8.GetByteCount(s) > ushort.MaxValue)
                throw new ArgumentException("An encryption context key or value is longer than 65535 UTF-8 bytes.");
        }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException("An encryption context key or value is not valid Unicode (lone surrogate).");
        }
    }

    /// <summary>
    /// Length of the canonical encoding: 0 for an empty context, else
    /// <c>count(2) || (keyLen(2) key valueLen(2) value)*</c>.
    /// </summary>
    public int GetEncodedLength()
    {
        if (_entries.Length == 0) return 0;
        int length = 2;
        foreach (var (key, value) in _entries)
            length += 4 + Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value);
        return length;
    }

    /// <summary>Writes the canonical encoding; <paramref name="destination"/> must be exactly <see cref="GetEncodedLength"/> long.</summary>
    public void Encode(Span<byte> destination)
    {
        if (_entries.Length == 0) return;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(destination, checked((ushort)_entries.Length));
        int offset = 2;
        foreach (var (key, value) in _entries)
        {
            offset += WriteString(destination[offset..], key);
            offset += WriteString(destination[offset..], value);
        }
    }

    private static int WriteString(Span<byte> destination, string s)
    {
        int n = Encoding.UTF8.GetBytes(s, destination[2..]);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)n);
        return 2 + n;
    }

    /// <summary>
    /// Parses a canonical encoding. Rejects a zero count, unsorted or duplicate keys, invalid UTF-8 and lengths
    /// that run past the end, so that one context has exactly one encoding.
    /// </summary>
    internal static bool TryDecode(ReadOnlySpan<byte> encoded, out EncryptionContext? context, out string? problem)
    {
        context = null;
        if (encoded.Length == 0) { context = Empty; problem = null; return true; }
        if (encoded.Length < 2) { problem = "the encryption context is shorter than its count field"; return false; }
        int count = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(encoded);
        if (count == 0) { problem = "a non-empty encryption context has a count of zero"; return false; }
        // Each entry takes at least 4 bytes, so the count is bounded by the bytes present before allocating.
        if (count > (encoded.Length - 2) / 4) { problem = "the encryption context count exceeds its length"; return false; }
        var entries = new KeyValuePair<string, string>[count];
        int offset = 2;
        for (int i = 0; i < count; i++)
        {
            if (!TryReadString(encoded, ref offset, out var key) || !TryReadString(encoded, ref offset, out var value))
            {
                problem = "an encryption context entry is malformed (bad length or invalid UTF-8)";
                return false;
            }
            if (key!.Length == 0) { problem = "an encryption context key is empty"; return false; }
            entries[i] = new(key, value!);
            if (i > 0 && CompareUtf8(entries[i - 1].Key, key) >= 0)
            {
                problem = "the encryption context is not in canonical order or has a duplicate key";
                return false;
            }
        }
        if (offset != encoded.Length) { problem = "the encryption context has bytes after its last entry"; return false; }
        context = new EncryptionContext(entries);
        problem = null;
        return true;
    }

    private static bool TryReadString(ReadOnlySpan<byte> data, ref int offset, out string? value)
    {
        value = null;
        if (data.Length - offset < 2) return false;
        int n = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(data[offset..]);
        offset += 2;
        if (data.Length - offset < n) return false;
        try { value = StrictUtf8.GetString(data.Slice(offset, n)); }
        catch (DecoderFallbackException) { return false; }
        offset += n;
        return true;
    }

    /// <summary>The context as the JSON object string KMS expects in <c>EncryptionContext</c>, or null when empty.</summary>
    public string? ToKmsJson()
    {
        if (_entries.Length == 0) return null;
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in _entries) writer.WriteString(key, value);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>True when every pair of <paramref name="required"/> is present here with the same value.</summary>
    public bool Contains(EncryptionContext required, out string? firstMismatch)
    {
        foreach (var (key, value) in required._entries)
        {
            if (!TryGetValue(key, out var actual) || !string.Equals(actual, value, StringComparison.Ordinal))
            {
                firstMismatch = key;
                return false;
            }
        }
        firstMismatch = null;
        return true;
    }

    public int Count => _entries.Length;
    public string this[string key] => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException(key);
    public IEnumerable<string> Keys => _entries.Select(e => e.Key);
    public IEnumerable<string> Values => _entries.Select(e => e.Value);
    public bool ContainsKey(string key) => TryGetValue(key, out _);

    public bool TryGetValue(string key, out string value)
    {
        foreach (var entry in _entries)
        {
            if (string.Equals(entry.Key, key, StringComparison.Ordinal)) { value = entry.Value; return true; }
        }
        value = null!;
        return false;
    }

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, string>>)_entries).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool ContentEquals(EncryptionContext other)
        => other.Count == Count && Contains(other, out _);

    public override string ToString() => string.Join(", ", _entries.Select(e => $"{e.Key}={e.Value}"));
}
