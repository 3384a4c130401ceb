using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EnvelopeKms.Kms;

/// <summary>
/// Reads KMS JSON responses. Ordinary responses go through <see cref="JsonSerializer"/>; responses that carry a
/// plaintext key are walked with <see cref="Utf8JsonReader"/> so that the base64 <c>Plaintext</c> is decoded from
/// the response's UTF-8 bytes into a pinned array without ever becoming a string.
/// </summary>
internal static class KmsResponseReader
{
    internal static readonly JsonSerializerOptions Options = new()
    {
        PropertyNameCaseInsensitive = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        Converters = { new LenientDateTimeOffsetConverter() },
    };

    public static T Deserialize<T>(string action, ReadOnlySpan<byte> body) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(body, Options) ?? throw Invalid(action, "the body is JSON null");
        }
        catch (JsonException e)
        {
            throw Invalid(action, $"the body is not the documented JSON ({e.Message})", e);
        }
    }

    /// <summary>
    /// Reads the top-level string fields of a response that carries <c>Plaintext</c>. The plaintext is returned
    /// decoded and pinned; every scratch buffer that held its base64 text is wiped.
    /// </summary>
    public static (Dictionary<string, string> Fields, KmsPlaintext? Plaintext) ReadWithPlaintext(string action, ReadOnlySpan<byte> body)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        KmsPlaintext? plaintext = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw Invalid(action, "the body is not a JSON object");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isPlaintext = reader.ValueTextEquals("Plaintext"u8);
                string? name = isPlaintext ? null : reader.GetString();
                reader.Read();
                if (reader.TokenType != JsonTokenType.String) { reader.Skip(); continue; }
                if (isPlaintext)
                {
                    plaintext?.Dispose();
                    plaintext = DecodeBase64Secret(action, ref reader);
                }
                else
                {
                    fields[name!] = reader.GetString()!;
                }
            }
            return (fields, plaintext);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // Utf8JsonReader.GetString throws InvalidOperationException, not JsonException, for a name or value
            // that is not valid UTF-8: still a response that is not JSON.
            plaintext?.Dispose();
            throw Invalid(action, "the body is not valid JSON", e);
        }
        catch
        {
            plaintext?.Dispose();
            throw;
        }
    }

    private static KmsPlaintext DecodeBase64Secret(string action, ref Utf8JsonReader reader)
    {
        int escapedLength = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        // Unescaping never lengthens a JSON string, so the escaped length bounds the UTF-8 text.
        var text = Keys.SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(Math.Max(1, escapedLength), pinned: true));
        try
        {
            int textLength = reader.CopyString(text);
            var decoded = Keys.SecretBuffers.Track(GC.AllocateArray<byte>(Math.Max(1, Base64.GetMaxDecodedFromUtf8Length(textLength)), pinned: true));
            var status = Base64.DecodeFromUtf8(text.AsSpan(0, textLength), decoded, out _, out int written);
            if (status != OperationStatus.Done)
            {
                CryptographicOperations.ZeroMemory(decoded);
                throw Invalid(action, "its Plaintext is not valid base64");
            }
            return new KmsPlaintext(decoded, written);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(text);
        }
    }

    public static string Required(string action, Dictionary<string, string> fields, string name)
        => fields.TryGetValue(name, out var v) && v.Length > 0 ? v : throw Invalid(action, $"it has no {name}");

    public static KmsException Invalid(string action, string what, Exception? inner = null)
        => new(action, KmsErrorKind.InvalidResponse, KmsException.InvalidResponseCode, $"KMS {action} returned an unusable response: {what}.", inner: inner);

    /// <summary>KMS writes absent dates as "" (DeleteDate, MaterialExpireTime); those become null.</summary>
    private sealed class LenientDateTimeOffsetConverter : JsonConverter<DateTimeOffset?>
    {
        public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.Null) return null;
            var s = reader.GetString();
            if (string.IsNullOrWhiteSpace(s)) return null;
            return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var d)
                ? d
                : throw new JsonException($"'{s}' is not a date.");
        }

        public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
        {
            if (value is { } v) writer.WriteStringValue(v.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            else writer.WriteNullValue();
        }
    }
}

/// <summary>Wire shapes of KMS responses (lists are XML-style wrapped: <c>{"Keys":{"Key":[...]}}</c>).</summary>
internal static class KmsWire
{
    internal sealed class KeyMetadataResponse { public KeyMetadata? KeyMetadata { get; init; } public string? RequestId { get; init; } }
    internal sealed class EmptyResponse { public string? RequestId { get; init; } }
    internal sealed class KeyList { public List<KeySummary>? Key { get; init; } }
    internal sealed class AliasList { public List<AliasMetadata>? Alias { get; init; } }
    internal sealed class TagList { public List<ResourceTag>? Tag { get; init; } }

    internal abstract class Paged
    {
        public int TotalCount { get; init; }
        public int PageNumber { get; init; }
        public int PageSize { get; init; }
        public string? RequestId { get; init; }
    }

    internal sealed class ListKeysResponse : Paged { public KeyList? Keys { get; init; } }
    internal sealed class ListAliasesResponse : Paged { public AliasList? Aliases { get; init; } }
    internal sealed class ListResourceTagsResponse { public TagList? Tags { get; init; } public string? RequestId { get; init; } }
}
