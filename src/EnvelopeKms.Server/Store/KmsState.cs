namespace EnvelopeKms.Server.Store;

/// <summary>Everything the server persists, serialized as one JSON document (state.json).</summary>
internal sealed class KmsState
{
    /// <summary>Bumped when the file layout changes incompatibly.</summary>
    public int FormatVersion { get; set; } = 1;

    public List<KeyRecord> Keys { get; set; } = [];

    public List<AliasRecord> Aliases { get; set; } = [];

    /// <summary>Temporary credentials issued by AssumeRole, kept until they expire.</summary>
    public List<StsCredentialRecord> StsCredentials { get; set; } = [];
}

internal static class KeyStates
{
    public const string Enabled = "Enabled";
    public const string Disabled = "Disabled";
    public const string PendingDeletion = "PendingDeletion";
}

/// <summary>A customer master key (CMK) and its versions.</summary>
internal sealed class KeyRecord
{
    public required string KeyId { get; set; }

    public string Description { get; set; } = string.Empty;

    public string KeySpec { get; set; } = "Aliyun_AES_256";

    public string KeyUsage { get; set; } = "ENCRYPT/DECRYPT";

    public string Origin { get; set; } = "Aliyun_KMS";

    public string ProtectionLevel { get; set; } = "SOFTWARE";

    public string KeyState { get; set; } = KeyStates.Enabled;

    public DateTimeOffset CreationDate { get; set; }

    /// <summary>Set while the key is PendingDeletion: when it will be removed.</summary>
    public DateTimeOffset? DeleteDate { get; set; }

    public bool AutomaticRotation { get; set; }

    public long? RotationIntervalSeconds { get; set; }

    public required string PrimaryKeyVersionId { get; set; }

    public List<KeyVersionRecord> Versions { get; set; } = [];

    /// <summary>Tags in the order they were first set.</summary>
    public List<TagRecord> Tags { get; set; } = [];
}

/// <summary>
/// One version of a key. <see cref="Material"/> is the raw 32-byte AES key, stored in the data
/// directory in the clear (base64 in JSON): this server is for development and tests only.
/// </summary>
internal sealed class KeyVersionRecord
{
    public required string KeyVersionId { get; set; }

    public DateTimeOffset CreationDate { get; set; }

    public required byte[] Material { get; set; }
}

internal sealed class TagRecord
{
    public required string TagKey { get; set; }

    public required string TagValue { get; set; }
}

internal sealed class AliasRecord
{
    public required string AliasName { get; set; }

    public required string KeyId { get; set; }
}

internal sealed class StsCredentialRecord
{
    public required string AccessKeyId { get; set; }

    public required string AccessKeySecret { get; set; }

    public required string SecurityToken { get; set; }

    public DateTimeOffset Expiration { get; set; }

    public required string RoleArn { get; set; }

    public required string RoleSessionName { get; set; }
}
