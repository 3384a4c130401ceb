using System.Text;

namespace EnvelopeKms.Cloud.Signing;

/// <summary>
/// The percent-encoding both Alibaba Cloud signatures use (RFC 3986 unreserved set): <c>A–Z a–z 0–9 - _ . ~</c>
/// stay as they are, every other UTF-8 byte becomes <c>%XY</c> with upper-case hex, so a space is <c>%20</c>,
/// <c>*</c> is <c>%2A</c> and <c>+</c> is <c>%2B</c>. It works on bytes so that a secret value (a base64 data key)
/// can be encoded without ever becoming a .NET string.
/// </summary>
public static class AcsPercentEncoding
{
    private static ReadOnlySpan<byte> Hex => "0123456789ABCDEF"u8;

    public static bool IsUnreserved(byte b)
        => (b >= (byte)'A' && b <= (byte)'Z') || (b >= (byte)'a' && b <= (byte)'z') || (b >= (byte)'0' && b <= (byte)'9')
           || b == (byte)'-' || b == (byte)'_' || b == (byte)'.' || b == (byte)'~';

    /// <summary>Encodes a (non-secret) string.</summary>
    public static string Encode(string value)
    {
        using var buffer = new SensitiveByteBuffer(value.Length * 3 + 16);
        Encode(Encoding.UTF8.GetBytes(value), buffer);
        return Encoding.ASCII.GetString(buffer.WrittenSpan);
    }

    internal static void Encode(ReadOnlySpan<byte> utf8, SensitiveByteBuffer destination)
    {
        foreach (byte b in utf8)
        {
            if (IsUnreserved(b))
            {
                destination.Append(b);
            }
            else
            {
                var span = destination.GetSpan(3);
                span[0] = (byte)'%';
                span[1] = Hex[b >> 4];
                span[2] = Hex[b & 0xF];
                destination.Advance(3);
            }
        }
    }
}
