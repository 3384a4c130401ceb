using System.Security.Cryptography;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Tests;

/// <summary>
/// A key provider for format tests: it wraps data keys by remembering them under a random blob name, the way a KMS
/// would, and counts calls. (The real Alibaba KMS provider is tested against the local KMS server.)
/// </summary>
internal sealed class InMemoryKeyProvider : IDataKeyProvider, IDataKeyWrapper
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> _keys = new();
    public int GenerateCalls;
    public int DecryptCalls;
    public int EncryptCalls;
    public int ResolveCalls;

    /// <summary>Aliases this fake KMS knows: alias name → key id.</summary>
    public Dictionary<string, string> Aliases { get; } = new(StringComparer.Ordinal);

    /// <summary>Key ids whose Encrypt this fake KMS refuses (a disabled key).</summary>
    public HashSet<string> Refused { get; } = new(StringComparer.Ordinal);

    public Task<WrappedDataKey> WrapDataKeyAsync(string keyId, DataKey dataKey, EncryptionContext context, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref EncryptCalls);
        if (Refused.Contains(keyId)) throw new KeyProviderException(KeyProviderError.Refused, $"Key '{keyId}' is disabled.");
        string resolved = Aliases.TryGetValue(keyId, out var target) ? target : keyId;
        return Task.FromResult(Add(Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)), dataKey.Plaintext.ToArray(), resolved));
    }

    public Task<IReadOnlyList<string>> ResolveKeyReferenceAsync(string keyReference, CancellationToken cancellationToken)
    {
        if (!keyReference.StartsWith("alias/", StringComparison.Ordinal)) return Task.FromResult<IReadOnlyList<string>>([keyReference]);
        Interlocked.Increment(ref ResolveCalls);
        return Task.FromResult<IReadOnlyList<string>>(Aliases.TryGetValue(keyReference, out var target) ? [target] : []);
    }

    /// <summary>Registers a fixed key under a blob name (known-answer tests).</summary>
    public WrappedDataKey Add(string blob, byte[] key, string keyId = "key-1")
    {
        _keys[blob] = key;
        return new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, keyId, "v1", "cn-test", blob);
    }

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref GenerateCalls);
        var key = RandomNumberGenerator.GetBytes(32);
        var entries = keyIds.Select(id => Add(Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)), key, id)).ToList();
        return Task.FromResult(new DataKey(key, entries, keyIds[0]));
    }

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref DecryptCalls);
        foreach (var entry in entries)
        {
            if (_keys.TryGetValue(entry.CiphertextBlob, out var key))
                return Task.FromResult(new DataKey(key, entries, entry.KeyId) { UnwrappedFrom = entry });
        }
        throw new KeyProviderException(KeyProviderError.NoMatchingKey, "No entry could be unwrapped.");
    }

    public DataKey NewKey(params string[] keyIds) => GenerateDataKeyAsync(keyIds.Length == 0 ? ["key-1"] : keyIds, EncryptionContext.Empty, default).Result;
}

/// <summary>A read-only stream that hands out at most one byte per read and cannot seek.</summary>
internal sealed class TrickleStream(byte[] data) : Stream
{
    private int _position;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_position >= data.Length || count == 0) return 0;
        buffer[offset] = data[_position++];
        return 1;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>A temp directory removed at the end of a test.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ekms-test-" + Guid.NewGuid().ToString("N")));
    public string Path { get; }
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

internal static class Bytes
{
    public static byte[] Random(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static byte[] Hex(string hex) => Convert.FromHexString(hex);
}
