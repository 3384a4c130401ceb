using System.Runtime.InteropServices;
using System.Security;
using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// SecureString ↔ UTF-8 bytes without the text ever becoming a managed string: through unmanaged memory that is
/// zeroed and freed, into byte and char arrays that the callers wipe.
/// </summary>
internal static class SecureStrings
{
    /// <summary>The UTF-8 bytes of <paramref name="value"/> in a pinned array; the caller wipes it.</summary>
    public static unsafe byte[] ToUtf8(SecureString value)
    {
        IntPtr unmanaged = Marshal.SecureStringToGlobalAllocUnicode(value);
        try
        {
            var chars = new ReadOnlySpan<char>((void*)unmanaged, value.Length);
            var bytes = GC.AllocateArray<byte>(Encoding.UTF8.GetByteCount(chars), pinned: true);
            Encoding.UTF8.GetBytes(chars, bytes);
            return bytes;
        }
        finally
        {
            Marshal.ZeroFreeGlobalAllocUnicode(unmanaged);
        }
    }

    /// <summary>A read-only SecureString holding the UTF-8 text of <paramref name="utf8"/>.</summary>
    public static SecureString FromUtf8(ReadOnlySpan<byte> utf8)
    {
        var chars = GC.AllocateArray<char>(Encoding.UTF8.GetCharCount(utf8), pinned: true);
        try
        {
            int n = Encoding.UTF8.GetChars(utf8, chars);
            var secure = new SecureString();
            for (int i = 0; i < n; i++) secure.AppendChar(chars[i]);
            secure.MakeReadOnly();
            return secure;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(chars.AsSpan()));
        }
    }
}
