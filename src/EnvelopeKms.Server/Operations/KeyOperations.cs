using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, ScheduleKeyDeletion,
/// CancelKeyDeletion, with the state machine of reference §2 ("Impact of CMK states").
/// Only symmetric software keys (Aliyun_AES_256) exist here: the server has no asymmetric or
/// HSM-backed keys, and rejects those requests instead of pretending.
/// </summary>
internal sealed partial class KeyOperations(KmsStateStore store, KeyResolver resolver, ServiceIdentity identity, TimeProvider time)
{
    private const int MaxDescriptionLength = 8192;

    public void Register(OperationRegistry registry)
    {
        registry.Add(OperationRegistry.KmsVersion, "CreateKey", CreateKey);
        registry.Add(OperationRegistry.KmsVersion, "DescribeKey", DescribeKey);
        registry.Add(OperationRegistry.KmsVersion, "ListKeys", ListKeys);
        registry.Add(OperationRegistry.KmsVersion, "EnableKey", EnableKey);
        registry.Add(OperationRegistry.KmsVersion, "DisableKey", DisableKey);
        registry.Add(OperationRegistry.KmsVersion, "ScheduleKeyDeletion", ScheduleKeyDeletion);
        registry.Add(OperationRegistry.KmsVersion, "CancelKeyDeletion", CancelKeyDeletion);
    }

    private JsonObject CreateKey(KmsRequest request)
    {
        var description = request.Optional("Description") ?? string.Empty;
        if (description.Length > MaxDescriptionLength)
        {
            throw KmsErrors.InvalidParameter("Description");
        }
        if ((request.Optional("KeySpec") ?? "Aliyun_AES_256") != "Aliyun_AES_256")
        {
            throw KmsErrors.InvalidParameter("KeySpec");
        }
        if ((request.Optional("KeyUsage") ?? "ENCRYPT/DECRYPT") != "ENCRYPT/DECRYPT")
        {
            throw KmsErrors.InvalidParameter("KeyUsage");
        }
        switch (request.Optional("Origin") ?? "Aliyun_KMS")
        {
            case "Aliyun_KMS": break;
            case "EXTERNAL": throw KmsErrors.UnsupportedOrigin();
            default: throw KmsErrors.InvalidParameter("Origin");
        }
        switch (request.Optional("ProtectionLevel") ?? "SOFTWARE")
        {
            case "SOFTWARE": break;
            case "HSM": throw KmsErrors.UnsupportedProtectionLevel();
            default: throw KmsErrors.InvalidParameter("ProtectionLevel");
        }
        var rotation = request.OptionalBool("EnableAutomaticRotation");
        long? rotationSeconds = request.Optional("RotationInterval") is { } interval ? ParseRotationInterval(interval) : null;
        if (rotation && rotationSeconds is null)
        {
            throw KmsErrors.MissingParameter("RotationInterval");
        }
        var tags = request.Optional("Tags") is { } tagJson ? TagOperations.ParseTags(tagJson, "Tags") : [];

        var now = Now();
        var key = new KeyRecord
        {
            KeyId = Guid.NewGuid().ToString("D"),
            Description = description,
            CreationDate = now,
            AutomaticRotation = rotation,
            RotationIntervalSeconds = rotation ? rotationSeconds : null,
            PrimaryKeyVersionId = Guid.NewGuid().ToString("D"),
            Tags = tags,
        };
        key.Versions.Add(new KeyVersionRecord
        {
            KeyVersionId = key.PrimaryKeyVersionId,
            CreationDate = now,
            Material = RandomNumberGenerator.GetBytes(32),
        });
        store.Mutate(state =>
        {
            state.Keys.Add(key);
            return key;
        });
        return new JsonObject { ["KeyMetadata"] = Metadata(key, includeDeletionProtection: false) };
    }

    private JsonObject DescribeKey(KmsRequest request)
    {
        var keyId = request.Required("KeyId");
        return store.Read(state => new JsonObject { ["KeyMetadata"] = Metadata(resolver.Resolve(state, keyId), includeDeletionProtection: true) });
    }

    private JsonObject ListKeys(KmsRequest request)
    {
        var filters = ParseFilters(request.Optional("Filters"));
        var keys = store.Read(state => state.Keys
            .Where(k => filters.All(f => f.Values.Contains(FilterField(k, f.Key))))
            .Select(k => k.KeyId)
            .ToList());
        return Paging.Page(request, keys, "Keys", "Key", id => new JsonObject { ["KeyId"] = id, ["KeyArn"] = identity.KeyArn(id) });
    }

    private JsonObject EnableKey(KmsRequest request) => ChangeState(request, key =>
    {
        if (key.KeyState == KeyStates.PendingDeletion)
        {
            throw KmsErrors.StateModifiedFailed();
        }
        key.KeyState = KeyStates.Enabled;
    });

    private JsonObject DisableKey(KmsRequest request) => ChangeState(request, key =>
    {
        if (key.KeyState == KeyStates.PendingDeletion)
        {
            throw KmsErrors.StateModifiedFailed();
        }
        key.KeyState = KeyStates.Disabled;
    });

    private JsonObject ScheduleKeyDeletion(KmsRequest request)
    {
        var days = request.OptionalInt("PendingWindowInDays", 7, 366) ?? throw KmsErrors.MissingParameter("PendingWindowInDays");
        return ChangeState(request, key =>
        {
            if (key.KeyState == KeyStates.PendingDeletion)
            {
                throw KmsErrors.StateModifiedFailed();
            }
            key.KeyState = KeyStates.PendingDeletion;
            key.DeleteDate = Now().AddDays(days);
        });
    }

    private JsonObject CancelKeyDeletion(KmsRequest request) => ChangeState(request, key =>
    {
        if (key.KeyState != KeyStates.PendingDeletion)
        {
            throw KmsErrors.StateModifiedFailed();
        }
        key.KeyState = KeyStates.Enabled;
        key.DeleteDate = null;
    });

    private JsonObject ChangeState(KmsRequest request, Action<KeyRecord> change)
    {
        var keyId = request.Required("KeyId");
        store.Mutate(state =>
        {
            change(resolver.Resolve(state, keyId));
            return 0;
        });
        return [];
    }

    /// <summary>KeyMetadata as the real service shapes it: empty strings, not nulls, for unset dates.</summary>
    private JsonObject Metadata(KeyRecord key, bool includeDeletionProtection)
    {
        var metadata = new JsonObject
        {
            ["Arn"] = identity.KeyArn(key.KeyId),
            ["AutomaticRotation"] = key.AutomaticRotation ? "Enabled" : "Disabled",
            ["CreationDate"] = Format(key.CreationDate),
            ["Creator"] = identity.AccountId,
            ["DeleteDate"] = key.DeleteDate is { } deleteDate ? Format(deleteDate) : string.Empty,
            ["Description"] = key.Description,
            ["KeyId"] = key.KeyId,
            ["KeySpec"] = key.KeySpec,
            ["KeyState"] = key.KeyState,
            ["KeyUsage"] = key.KeyUsage,
            ["LastRotationDate"] = Format(key.Versions.Max(v => v.CreationDate)),
            ["MaterialExpireTime"] = string.Empty,
            ["Origin"] = key.Origin,
            ["PrimaryKeyVersion"] = key.PrimaryKeyVersionId,
            ["ProtectionLevel"] = key.ProtectionLevel,
        };
        if (key.AutomaticRotation && key.RotationIntervalSeconds is { } seconds)
        {
            metadata["RotationInterval"] = seconds.ToString(CultureInfo.InvariantCulture) + "s";
            metadata["NextRotationDate"] = Format(key.Versions.Max(v => v.CreationDate).AddSeconds(seconds));
        }
        if (includeDeletionProtection)
        {
            metadata["DeletionProtection"] = "Disabled";
        }
        return metadata;
    }

    /// <summary><c>integer[d|h|m|s]</c> between 7 and 730 days, as seconds.</summary>
    private static long ParseRotationInterval(string text)
    {
        var match = RotationIntervalPattern().Match(text);
        if (!match.Success || !long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            throw KmsErrors.InvalidParameter("RotationInterval");
        }
        var seconds = match.Groups[2].Value switch
        {
            "d" => amount * 86400,
            "h" => amount * 3600,
            "m" => amount * 60,
            _ => amount,
        };
        if (amount > 1_000_000_000 || seconds < 7 * 86400 || seconds > 730 * 86400)
        {
            throw KmsErrors.InvalidParameter("RotationInterval");
        }
        return seconds;
    }

    private static List<(string Key, HashSet<string> Values)> ParseFilters(string? json)
    {
        if (json is null)
        {
            return [];
        }
        string[] supported = ["KeyState", "KeySpec", "KeyUsage", "ProtectionLevel"];
        try
        {
            var parsed = JsonSerializer.Deserialize<List<FilterJson>>(json) ?? throw KmsErrors.InvalidParameter("Filters");
            return parsed.Select(f => f.Key is { } key && supported.Contains(key) && f.Values is { Count: > 0 } values
                ? (key, values.ToHashSet(StringComparer.Ordinal))
                : throw KmsErrors.InvalidParameter("Filters")).ToList();
        }
        catch (JsonException)
        {
            throw KmsErrors.InvalidParameter("Filters");
        }
    }

    private static string FilterField(KeyRecord key, string field) => field switch
    {
        "KeyState" => key.KeyState,
        "KeySpec" => key.KeySpec,
        "KeyUsage" => key.KeyUsage,
        _ => key.ProtectionLevel,
    };

    private DateTimeOffset Now() => DateTimeOffset.FromUnixTimeSeconds(time.GetUtcNow().ToUnixTimeSeconds());

    internal static string Format(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^([0-9]+)([dhms])\z")]
    private static partial Regex RotationIntervalPattern();

    private sealed record FilterJson(string? Key, List<string>? Values);
}
