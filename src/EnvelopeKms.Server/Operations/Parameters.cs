using System.Globalization;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Operations;

/// <summary>Typed access to a request's parameters, failing with the service's parameter errors.</summary>
internal static class Parameters
{
    public static string Required(this KmsRequest request, string name) =>
        request.Parameter(name) is { } value && !string.IsNullOrWhiteSpace(value) ? value : throw KmsErrors.MissingParameter(name);

    public static string? Optional(this KmsRequest request, string name) =>
        request.Parameter(name) is { } value && value.Length > 0 ? value : null;

    public static int? OptionalInt(this KmsRequest request, string name, int min, int max)
    {
        if (request.Optional(name) is not { } text)
        {
            return null;
        }
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw KmsErrors.InvalidParameter(name);
        }
        return value;
    }

    public static bool OptionalBool(this KmsRequest request, string name) => request.Optional(name) switch
    {
        null => false,
        var text when text.Equals("true", StringComparison.OrdinalIgnoreCase) => true,
        var text when text.Equals("false", StringComparison.OrdinalIgnoreCase) => false,
        _ => throw KmsErrors.InvalidParameter(name),
    };

    /// <summary>Base64 input with surrounding whitespace trimmed (documented samples send a trailing newline).</summary>
    public static byte[] RequiredBase64(this KmsRequest request, string name)
    {
        var text = request.Required(name).Trim();
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw KmsErrors.InvalidParameter(name);
        }
    }
}
