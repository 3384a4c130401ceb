using System.Text;
using System.Text.Json;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Kms;

/// <summary>Encodes an encryption context as the JSON object string KMS expects in <c>EncryptionContext</c>.</summary>
internal static class KmsEncryptionContextJson
{
    /// <summary>Null for an absent or empty context (the parameter is then not sent).</summary>
    public static string? ToJson(IReadOnlyDictionary<string, string>? context)
    {
        if (context is null || context.Count == 0) return null;
        if (context is EncryptionContext canonical) return canonical.ToKmsJson();
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in context.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                ArgumentNullException.ThrowIfNull(value, $"encryption context value of '{key}'");
                writer.WriteString(key, value);
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static string TagsToJson(IReadOnlyDictionary<string, string> tags)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var (key, value) in tags.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                writer.WriteStartObject();
                writer.WriteString("TagKey", key);
                writer.WriteString("TagValue", value);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static string StringsToJson(IEnumerable<string> values) => JsonSerializer.Serialize(values.ToArray());
}
