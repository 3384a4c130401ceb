using System.Text;

namespace EnvelopeKms.Cloud.Signing;

/// <summary>
/// One request parameter. Ordinary values are strings; a secret value (the base64 text of a plaintext data key)
/// is carried as UTF-8 bytes owned by the caller, so that signing and form encoding never turn it into a string.
/// </summary>
public readonly struct AcsParameter
{
    private readonly string? _text;
    private readonly ReadOnlyMemory<byte> _secretUtf8;

    private AcsParameter(string name, string? text, ReadOnlyMemory<byte> secretUtf8, bool isSecret)
    {
        Name = name;
        _text = text;
        _secretUtf8 = secretUtf8;
        IsSecret = isSecret;
    }

    public static AcsParameter Text(string name, string value) => new(name, value, default, false);

    /// <summary>A secret value as UTF-8 bytes; the bytes stay the caller's and must outlive the request.</summary>
    public static AcsParameter Secret(string name, ReadOnlyMemory<byte> utf8Value) => new(name, null, utf8Value, true);

    public string Name { get; }

    public bool IsSecret { get; }

    /// <summary>The value of a non-secret parameter.</summary>
    public string TextValue => _text ?? throw new InvalidOperationException($"Parameter '{Name}' is secret and has no text form.");

    internal void WriteEncodedValue(SensitiveByteBuffer destination)
    {
        if (IsSecret) AcsPercentEncoding.Encode(_secretUtf8.Span, destination);
        else AcsPercentEncoding.Encode(Encoding.UTF8.GetBytes(_text!), destination);
    }

    /// <summary>Parameter names are ordered by plain code point (ordinal), as the SDKs' <c>keys().sort()</c> does.</summary>
    internal static int CompareByName(AcsParameter a, AcsParameter b) => string.CompareOrdinal(a.Name, b.Name);

    public override string ToString() => IsSecret ? $"{Name}=<redacted>" : $"{Name}={_text}";
}
