using System.Text.Json;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Crypto;

/// <summary>
/// EncryptionContext rules (reference §2): a JSON object whose values are all strings, at most
/// 8192 characters. Two contexts are equal when their maps are equal, so the canonical form
/// used as AAD sorts the keys and re-serializes: order and whitespace do not matter.
/// </summary>
internal static class EncryptionContextParser
{
    public const int MaxLength = 8192;

    /// <summary>Parses the parameter; absent or empty means the empty context.</summary>
    public static SortedDictionary<string, string> Parse(string? json, string parameterName)
    {
        var context = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(json))
        {
            return context;
        }
        if (json.Length > MaxLength)
        {
            throw KmsErrors.InvalidParameter(parameterName);
        }
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw KmsErrors.InvalidParameter(parameterName);
            }
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String || !context.TryAdd(property.Name, property.Value.GetString()!))
                {
                    throw KmsErrors.InvalidParameter(parameterName);
                }
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: GetString on a name or value holding a lone surrogate escape ("\ud800").
            throw KmsErrors.InvalidParameter(parameterName);
        }
        return context;
    }

    /// <summary>Deterministic bytes of a context: sorted keys, compact JSON, UTF-8.</summary>
    public static byte[] Canonical(SortedDictionary<string, string> context)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in context)
            {
                writer.WriteString(key, value);
            }
            writer.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
