using System.Text.Json;
using System.Text.Json.Nodes;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// TagResource, UntagResource, ListResourceTags for keys. Tags arrive as JSON
/// (<c>[{"TagKey":"k","TagValue":"v"}]</c>, <c>["k1","k2"]</c>); at most 10 per key. Secrets and
/// certificates do not exist on this server, so SecretName/CertificateId are rejected.
/// </summary>
internal sealed class TagOperations(KmsStateStore store, KeyResolver resolver)
{
    public const int MaxTagsPerResource = 10;

    public void Register(OperationRegistry registry)
    {
        registry.Add(OperationRegistry.KmsVersion, "TagResource", TagResource);
        registry.Add(OperationRegistry.KmsVersion, "UntagResource", UntagResource);
        registry.Add(OperationRegistry.KmsVersion, "ListResourceTags", ListResourceTags);
    }

    private JsonObject TagResource(KmsRequest request)
    {
        var keyId = RequiredKeyId(request);
        var tags = ParseTags(request.Required("Tags"), "Tags");
        store.Mutate(state =>
        {
            var key = resolver.Resolve(state, keyId);
            var merged = key.Tags.Select(t => new TagRecord { TagKey = t.TagKey, TagValue = t.TagValue }).ToList();
            foreach (var tag in tags)
            {
                if (merged.FirstOrDefault(t => t.TagKey == tag.TagKey) is { } existing)
                {
                    existing.TagValue = tag.TagValue;
                }
                else
                {
                    merged.Add(tag);
                }
            }
            if (merged.Count > MaxTagsPerResource)
            {
                throw KmsErrors.LimitExceeded();
            }
            key.Tags = merged;
            return 0;
        });
        return [];
    }

    private JsonObject UntagResource(KmsRequest request)
    {
        var keyId = RequiredKeyId(request);
        List<string> tagKeys;
        try
        {
            tagKeys = JsonSerializer.Deserialize<List<string>>(request.Required("TagKeys")) ?? throw KmsErrors.InvalidParameter("TagKeys");
        }
        catch (JsonException)
        {
            throw KmsErrors.InvalidParameter("TagKeys");
        }
        if (tagKeys.Count == 0 || tagKeys.Any(string.IsNullOrEmpty))
        {
            throw KmsErrors.InvalidParameter("TagKeys");
        }
        store.Mutate(state => resolver.Resolve(state, keyId).Tags.RemoveAll(t => tagKeys.Contains(t.TagKey)));
        return [];
    }

    private JsonObject ListResourceTags(KmsRequest request)
    {
        var keyId = request.Required("KeyId");
        return store.Read(state =>
        {
            var key = resolver.Resolve(state, keyId);
            var tags = new JsonArray();
            foreach (var tag in key.Tags)
            {
                tags.Add(new JsonObject { ["KeyId"] = key.KeyId, ["TagKey"] = tag.TagKey, ["TagValue"] = tag.TagValue });
            }
            return new JsonObject { ["Tags"] = new JsonObject { ["Tag"] = tags } };
        });
    }

    private static string RequiredKeyId(KmsRequest request)
    {
        if (request.Optional("SecretName") is not null)
        {
            throw KmsErrors.InvalidParameter("SecretName");
        }
        if (request.Optional("CertificateId") is not null)
        {
            throw KmsErrors.InvalidParameter("CertificateId");
        }
        return request.Required("KeyId");
    }

    /// <summary>
    /// Parses <c>[{"TagKey":..,"TagValue":..}]</c>: keys 1–128 characters and not under the reserved
    /// <c>acs:</c>/<c>aliyun</c> prefixes, values up to 256 characters, no key twice.
    /// </summary>
    public static List<TagRecord> ParseTags(string json, string parameterName)
    {
        List<TagJson>? parsed;
        try
        {
            parsed = JsonSerializer.Deserialize<List<TagJson>>(json);
        }
        catch (JsonException)
        {
            throw KmsErrors.InvalidParameter(parameterName);
        }
        if (parsed is null || parsed.Count == 0 || parsed.Count > MaxTagsPerResource)
        {
            throw KmsErrors.InvalidParameter(parameterName);
        }
        var tags = new List<TagRecord>();
        foreach (var tag in parsed)
        {
            if (tag.TagKey is not { Length: >= 1 and <= 128 } key || tag.TagValue is not { Length: <= 256 } value
                || key.StartsWith("acs:", StringComparison.OrdinalIgnoreCase) || key.StartsWith("aliyun", StringComparison.OrdinalIgnoreCase)
                || tags.Any(t => t.TagKey == key))
            {
                throw KmsErrors.InvalidParameter(parameterName);
            }
            tags.Add(new TagRecord { TagKey = key, TagValue = value });
        }
        return tags;
    }

    private sealed record TagJson(string? TagKey, string? TagValue);
}
