using System.Security.Cryptography;

namespace EnvelopeKms.Kms;

/// <summary>A key's metadata as CreateKey and DescribeKey return it. Dates that KMS sends as "" are null.</summary>
public sealed class KeyMetadata
{
    public string KeyId { get; init; } = "";
    public string? Arn { get; init; }
    public string? AutomaticRotation { get; init; }
    public DateTimeOffset? CreationDate { get; init; }
    public string? Creator { get; init; }
    public DateTimeOffset? DeleteDate { get; init; }
    public string? Description { get; init; }
    public string? KeySpec { get; init; }
    public string? KeyState { get; init; }
    public string? KeyUsage { get; init; }
    public DateTimeOffset? LastRotationDate { get; init; }
    public DateTimeOffset? MaterialExpireTime { get; init; }
    public DateTimeOffset? NextRotationDate { get; init; }
    public string? Origin { get; init; }
    public string? PrimaryKeyVersion { get; init; }
    public string? ProtectionLevel { get; init; }
    /// <summary>Seconds with an <c>s</c> suffix, e.g. <c>31536000s</c>.</summary>
    public string? RotationInterval { get; init; }
    public string? DKMSInstanceId { get; init; }
    public string? DeletionProtection { get; init; }
    public string? DeletionProtectionDescription { get; init; }
}

/// <summary>An entry of ListKeys.</summary>
public sealed class KeySummary
{
    public string KeyId { get; init; } = "";
    public string? KeyArn { get; init; }
}

public sealed class AliasMetadata
{
    public string AliasName { get; init; } = "";
    public string? AliasArn { get; init; }
    public string KeyId { get; init; } = "";
}

public sealed class ResourceTag
{
    public string? KeyId { get; init; }
    public string TagKey { get; init; } = "";
    public string TagValue { get; init; } = "";
}

/// <summary>One page of a list operation.</summary>
public sealed class KmsPage<T>
{
    public required IReadOnlyList<T> Items { get; init; }
    public int TotalCount { get; init; }
    public int PageNumber { get; init; }
    public int PageSize { get; init; }
    public string? RequestId { get; init; }
}

/// <summary>Parameters of CreateKey; null ones are not sent and KMS applies its defaults.</summary>
public sealed class CreateKeyRequest
{
    public string? Description { get; init; }
    /// <summary><c>Aliyun_AES_256</c> (KMS default), <c>Aliyun_SM4</c>, <c>RSA_2048</c>, …</summary>
    public string? KeySpec { get; init; }
    /// <summary><c>ENCRYPT/DECRYPT</c> or <c>SIGN/VERIFY</c>.</summary>
    public string? KeyUsage { get; init; }
    /// <summary><c>Aliyun_KMS</c> or <c>EXTERNAL</c>.</summary>
    public string? Origin { get; init; }
    /// <summary><c>SOFTWARE</c> or <c>HSM</c>.</summary>
    public string? ProtectionLevel { get; init; }
    public bool? EnableAutomaticRotation { get; init; }
    /// <summary><c>integer[d|h|m|s]</c>, e.g. <c>365d</c>; required with rotation.</summary>
    public string? RotationInterval { get; init; }
    public string? DKMSInstanceId { get; init; }
    public IReadOnlyDictionary<string, string>? Tags { get; init; }
}

/// <summary>The answer of Encrypt, ReEncrypt and GenerateDataKeyWithoutPlaintext.</summary>
public sealed class CiphertextResult
{
    /// <summary>The key KMS used (an id, or an ARN for some callers), resolved when an alias was sent.</summary>
    public string KeyId { get; init; } = "";
    public string KeyVersionId { get; init; } = "";
    /// <summary>The base64 ciphertext exactly as KMS returned it.</summary>
    public string CiphertextBlob { get; init; } = "";
    public string? RequestId { get; init; }
}

/// <summary>
/// Plaintext key bytes decoded straight from the response bytes into a pinned array. Dispose wipes them.
/// </summary>
public sealed class KmsPlaintext : IDisposable
{
    private readonly byte[] _buffer;
    private readonly int _length;
    private bool _disposed;

    internal KmsPlaintext(byte[] pinnedBuffer, int length)
    {
        _buffer = pinnedBuffer;
        _length = length;
    }

    public int Length => _length;

    public ReadOnlySpan<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _buffer.AsSpan(0, _length);
        }
    }

    /// <summary>The same bytes as memory, for passing to <see cref="KmsClient.EncryptAsync"/> without a copy.</summary>
    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _buffer.AsMemory(0, _length);
        }
    }

    internal byte[] BufferForTests => _buffer;

    public void Dispose()
    {
        if (_disposed) return;
        CryptographicOperations.ZeroMemory(_buffer);
        _disposed = true;
    }

    public override string ToString() => $"<{_length} secret bytes>";
}

/// <summary>The answer of GenerateDataKey. Dispose wipes the plaintext.</summary>
public sealed class GenerateDataKeyResult : IDisposable
{
    public required string KeyId { get; init; }
    public required string KeyVersionId { get; init; }
    public required string CiphertextBlob { get; init; }
    public string? RequestId { get; init; }
    public required KmsPlaintext Plaintext { get; init; }
    public void Dispose() => Plaintext.Dispose();
}

/// <summary>The answer of Decrypt. Dispose wipes the plaintext.</summary>
public sealed class DecryptResult : IDisposable
{
    public required string KeyId { get; init; }
    public required string KeyVersionId { get; init; }
    public string? RequestId { get; init; }
    public required KmsPlaintext Plaintext { get; init; }
    public void Dispose() => Plaintext.Dispose();
}
