using System.Text;

namespace EnvelopeKms.Server.Protocol;

/// <summary>
/// The percent-encoding both Alibaba Cloud signatures use (RFC 3986 unreserved set kept,
/// everything else <c>%XY</c> upper-case over UTF-8, space as <c>%20</c>), and the lenient
/// form decoding the server applies before re-encoding (clients leave <c>*</c> and <c>~</c> raw,
/// and form-urlencoding turns <c>+</c> into a space).
/// </summary>
internal static class PercentEncoding
{
    private const string HexDigits = "0123456789ABCDEF";

    public static string Encode(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var builder = new StringBuilder(bytes.Length * 3);
        foreach (var b in bytes)
        {
            if (IsUnreserved(b))
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(HexDigits[b >> 4]).Append(HexDigits[b & 0xF]);
            }
        }
        return builder.ToString();
    }

    /// <summary>Decodes one form/query component: <c>+</c> is a space, <c>%XY</c> a byte, UTF-8 overall.</summary>
    public static string DecodeComponent(string component)
    {
        if (component.IndexOfAny(['%', '+']) < 0)
        {
            return component;
        }
        var bytes = new List<byte>(component.Length);
        for (var i = 0; i < component.Length; i++)
        {
            var c = component[i];
            if (c == '+')
            {
                bytes.Add((byte)' ');
            }
            else if (c == '%' && i + 2 < component.Length && IsHex(component[i + 1]) && IsHex(component[i + 2]))
            {
                bytes.Add(Convert.ToByte(component.Substring(i + 1, 2), 16));
                i += 2;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < component.Length)
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(component.Substring(i, 2)));
                i++;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Splits <c>a=1&amp;b=2</c> (no leading <c>?</c>) into decoded pairs, in order.</summary>
    public static List<KeyValuePair<string, string>> ParsePairs(string encoded)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var part in encoded.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            var name = eq < 0 ? part : part[..eq];
            var value = eq < 0 ? string.Empty : part[(eq + 1)..];
            pairs.Add(new(DecodeComponent(name), DecodeComponent(value)));
        }
        return pairs;
    }

    private static bool IsUnreserved(byte b) =>
        b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~';

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);
}
