using System.Buffers;
using System.Buffers.Text;
using System.Text;
using EnvelopeKms.Format;

namespace EnvelopeKms.Legacy;

/// <summary>
/// Parses the four-line legacy format as its bytes arrive, checking every byte against the shape of its line before
/// anything is decoded or kept. A file that only starts like a legacy file (a base64 line, then anything else: a
/// sparse file's zeros, binary data) is refused at the first byte that does not fit, having cost at most the longest
/// short line; the ciphertext buffer grows only with base64 actually read, never from a file's length, up to what
/// <see cref="LegacyEnvelope.MaxFileSize"/> can hold. (Reading the file whole and decoding it as text cost 1.4 GB
/// for a 256 MiB sparse file.)
/// </summary>
/// <remarks>
/// Each line is base64 (<c>A–Z a–z 0–9 + /</c>, then at most two <c>=</c>), optionally followed by spaces, tabs or
/// a CR, and ends with LF (the last may end at the end of the file); after the fourth line only such whitespace and
/// empty lines may follow.
/// </remarks>
internal sealed class LegacyEnvelopeReader
{
    private const int ShortLineMax = 24;          // a 16-byte nonce or tag: 24 base64 characters
    private const int DecodeChunk = 64 * 1024;    // base64 characters of the ciphertext decoded at once (a multiple of 4)
    private const int MaxCiphertext = (int)(LegacyEnvelope.MaxFileSize / 4 * 3);
    private static readonly SearchValues<byte> Base64Letters = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"u8);

    private int _line;          // 0 CiphertextBlob, 1 nonce, 2 ciphertext, 3 tag, 4 after the tag
    private bool _trailing;     // after the line's base64: only spaces, tabs and CR until LF
    private int _padding;       // '=' read in this line
    private long _total;
    private readonly byte[] _text = new byte[Math.Max(EnvelopeFormat.MaxCiphertextBlobLength, DecodeChunk)];
    private int _textLength;
    private string? _blob;
    private byte[]? _nonce;
    private byte[] _ciphertext = [];
    private int _ciphertextLength;
    private byte[]? _tag;

    /// <summary>Takes the next bytes of the file; throws <see cref="EnvelopeError.LegacyInvalid"/> at the first one that does not fit.</summary>
    public void Feed(ReadOnlySpan<byte> data)
    {
        _total += data.Length;
        if (_total > LegacyEnvelope.MaxFileSize)
            throw Invalid($"The file is larger than {LegacyEnvelope.MaxFileSize / (1024 * 1024)} MiB, the most the legacy format handles (it is processed whole in memory).");
        int i = 0;
        while (i < data.Length)
        {
            if (_line == 2 && !_trailing && _padding == 0)
            {
                // The ciphertext line: take a run of base64 letters at once.
                int run = data[i..].IndexOfAnyExcept(Base64Letters);
                if (run < 0) run = data.Length - i;
                AppendCiphertextText(data.Slice(i, run));
                i += run;
                if (i == data.Length) break;
            }
            Take(data[i++]);
        }
    }

    /// <summary>The end of the file: the envelope, once all four lines have been read.</summary>
    public LegacyEnvelope Finish()
    {
        if (_line == 3) EndLine(); // the tag line may end at the end of the file
        if (_line < 4)
        {
            int lines = _line + (_textLength > 0 || (_line == 2 && _ciphertextLength > 0) ? 1 : 0);
            throw Invalid($"A legacy envelope file has four base64 lines (CiphertextBlob, nonce, ciphertext, tag); this file has {lines}.");
        }
        return new LegacyEnvelope(_blob!, _nonce!, _ciphertext, _ciphertextLength, _tag!);
    }

    private void Take(byte b)
    {
        if (b == (byte)'\n')
        {
            if (_line < 4) EndLine();
            return;
        }
        if (b is (byte)' ' or (byte)'\t' or (byte)'\r')
        {
            _trailing = true;
            return;
        }
        if (_line == 4) throw Invalid("The legacy file has more than four lines (CiphertextBlob, nonce, ciphertext, tag).");
        if (_trailing) throw Invalid($"The legacy file's {Ordinal(_line)} line has characters after its whitespace.");
        if (b == (byte)'=')
        {
            if (++_padding > 2) throw NotBase64();
        }
        else if (!Base64Letters.Contains(b) || _padding > 0) throw NotBase64();
        if (_line == 2)
        {
            AppendCiphertextText([b]);
            return;
        }
        int max = _line == 0 ? EnvelopeFormat.MaxCiphertextBlobLength : ShortLineMax;
        if (_textLength == max) throw NotBase64();
        _text[_textLength++] = b;
    }

    private void AppendCiphertextText(ReadOnlySpan<byte> letters)
    {
        while (letters.Length > 0)
        {
            if (_textLength == DecodeChunk) DecodeText();
            int n = Math.Min(letters.Length, DecodeChunk - _textLength);
            letters[..n].CopyTo(_text.AsSpan(_textLength));
            _textLength += n;
            letters = letters[n..];
        }
    }

    /// <summary>Decodes the ciphertext characters held (whole quartets; a padded one ends the line), growing the buffer with what arrived.</summary>
    private void DecodeText()
    {
        int needed = _ciphertextLength + _textLength / 4 * 3 - _padding; // padding is held only in the last quartet
        if (needed > _ciphertext.Length)
        {
            int size = (int)Math.Min(Math.Max(2L * _ciphertext.Length, Math.Max(needed, DecodeChunk)), MaxCiphertext);
            if (size < needed) throw Invalid($"The legacy file's ciphertext is larger than the legacy format handles.");
            Array.Resize(ref _ciphertext, size);
        }
        var status = Base64.DecodeFromUtf8(_text.AsSpan(0, _textLength), _ciphertext.AsSpan(_ciphertextLength), out int consumed, out int written, isFinalBlock: true);
        if (status != OperationStatus.Done || consumed != _textLength) throw NotBase64();
        _ciphertextLength += written;
        _textLength = 0;
    }

    private void EndLine()
    {
        switch (_line)
        {
            case 0:
                if (_textLength == 0) throw Invalid("The legacy file's first line is not a base64 CiphertextBlob.");
                string blob = Encoding.ASCII.GetString(_text, 0, _textLength);
                if (!IsBase64(_text.AsSpan(0, _textLength))) throw Invalid("The legacy file's first line is not a base64 CiphertextBlob.");
                _blob = blob;
                break;
            case 1:
                _nonce = DecodeShort($"The legacy file's second line is not a base64 {LegacyEnvelope.NonceSize}-byte nonce.");
                break;
            case 2:
                DecodeText();
                break;
            case 3:
                _tag = DecodeShort($"The legacy file's fourth line is not a base64 {LegacyEnvelope.TagSize}-byte tag.");
                break;
        }
        _line++;
        _textLength = 0;
        _padding = 0;
        _trailing = false;
    }

    private byte[] DecodeShort(string error)
    {
        var bytes = new byte[16];
        var status = Base64.DecodeFromUtf8(_text.AsSpan(0, _textLength), bytes, out int consumed, out int written, isFinalBlock: true);
        if (status != OperationStatus.Done || consumed != _textLength || written != 16) throw Invalid(error);
        return bytes;
    }

    private static bool IsBase64(ReadOnlySpan<byte> text) => text.Length % 4 == 0 && Base64.IsValid(text);

    private EnvelopeException NotBase64() => Invalid(_line switch
    {
        0 => "The legacy file's first line is not a base64 CiphertextBlob.",
        1 => $"The legacy file's second line is not a base64 {LegacyEnvelope.NonceSize}-byte nonce.",
        2 => "The legacy file's third line is not base64 ciphertext.",
        _ => $"The legacy file's fourth line is not a base64 {LegacyEnvelope.TagSize}-byte tag.",
    });

    private static string Ordinal(int line) => line switch { 0 => "first", 1 => "second", 2 => "third", _ => "fourth" };

    private static EnvelopeException Invalid(string message) => new(EnvelopeError.LegacyInvalid, message);
}
