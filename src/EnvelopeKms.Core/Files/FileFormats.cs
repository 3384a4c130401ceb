using EnvelopeKms.Format;

namespace EnvelopeKms.Files;

/// <summary>The file formats, by name and by content: where callers get "the format of this file".</summary>
public static class FileFormats
{
    // The -Format / -To values. Constants, so that a cmdlet's ValidateSet can list them.
    public const string EkmsName = "EKMS";
    public const string LegacyName = "Legacy";
    public const string AlibabaSdkName = "AlibabaSdk";
    public const string AlibabaSdkStreamName = "AlibabaSdkStream";

    public static FileFormat Ekms { get; } = new EkmsFileFormat();
    public static FileFormat Legacy { get; } = new LegacyFileFormat();
    public static FileFormat AlibabaSdk { get; } = new AlibabaSdkFileFormat(EnvelopeKms.AlibabaSdk.AlibabaSdkLayout.Asn1);
    public static FileFormat AlibabaSdkStream { get; } = new AlibabaSdkFileFormat(EnvelopeKms.AlibabaSdk.AlibabaSdkLayout.Stream);

    /// <summary>Every format, in the order content is matched against them.</summary>
    public static IReadOnlyList<FileFormat> All { get; } = [Ekms, AlibabaSdk, AlibabaSdkStream, Legacy];

    /// <summary>Bytes of a file's start that <see cref="Detect"/> looks at.</summary>
    public const int PrefixLength = 64;

    /// <summary>The format named <paramref name="name"/> (case-insensitive).</summary>
    public static FileFormat FromName(string name)
        => All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
           ?? throw new ArgumentException($"'{name}' is not a file format (EKMS, Legacy, AlibabaSdk, AlibabaSdkStream).", nameof(name));

    public static FileFormat FromId(EnvelopeFileFormat id)
        => All.FirstOrDefault(f => f.Id == id) ?? throw new ArgumentException($"{id} is not a file format.", nameof(id));

    /// <summary>The format a file starting with <paramref name="prefix"/> is in, or null for none this library reads.</summary>
    public static FileFormat? Detect(ReadOnlySpan<byte> prefix)
    {
        if (prefix.StartsWith(EnvelopeFormat.Magic)) return Ekms;
        // A base64-encoded EKMS file also looks like a base64 line (legacy); the EKMS reader explains that case.
        if (prefix.StartsWith("iUVLTQ0K"u8)) return null;
        switch (EnvelopeKms.AlibabaSdk.AlibabaSdkFormat.Detect(prefix))
        {
            case EnvelopeKms.AlibabaSdk.AlibabaSdkLayout.Asn1: return AlibabaSdk;
            case EnvelopeKms.AlibabaSdk.AlibabaSdkLayout.Stream: return AlibabaSdkStream;
        }
        return LegacyFileFormat.Matches(prefix) ? Legacy : null;
    }

    /// <summary>
    /// The format of the file at <paramref name="path"/>, to read it: the one its content shows, else EKMS, whose
    /// reader says precisely what is wrong with a file of no known format (not an envelope file, base64-encoded,
    /// line endings converted).
    /// </summary>
    public static async Task<FileFormat> OfFileAsync(string path, CancellationToken cancellationToken = default)
        => await DetectAsync(path, cancellationToken).ConfigureAwait(false) ?? Ekms;

    /// <summary>The format of a small file read whole, as <see cref="OfFileAsync"/> decides it.</summary>
    public static FileFormat OfContent(SmallFile file) => Detect(file.Content[..Math.Min(PrefixLength, file.Length)]) ?? Ekms;

    /// <summary>The format the file's content shows, or null for none this library reads.</summary>
    public static async Task<FileFormat?> DetectAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        var prefix = new byte[PrefixLength];
        int n = await input.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return Detect(prefix.AsSpan(0, n));
    }

    /// <summary>
    /// The format the file's content shows, synchronously, for a quick check on the pipeline thread: null for none,
    /// and for a file that cannot be opened or read (the real operation reports the real error).
    /// </summary>
    public static FileFormat? TryDetect(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            Span<byte> prefix = stackalloc byte[PrefixLength];
            int n = stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
            return Detect(prefix[..n]);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
