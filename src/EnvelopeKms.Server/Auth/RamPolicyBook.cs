using System.Text.Json;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// The policies attached to each principal, read from the <c>--policy-file</c>:
/// <code>
/// {
///   "AccessKeys": { "writer-ak": { "Version": "1", "Statement": [ ... ] } },
///   "Roles": { "acs:ram::1234567890123456:role/rotation": [ { policy }, { policy } ] }
/// }
/// </code>
/// The file is read by <see cref="RamPolicyFile"/>. A principal maps to one policy document or an array of them (several attached policies). An AccessKeyId or
/// role that the file does not name is not restricted, like the Alibaba Cloud account's own AccessKey, so a file
/// can restrict only the principals a test is about.
/// </summary>
internal sealed class RamPolicyBook
{
    private readonly Dictionary<string, IReadOnlyList<RamPolicy>> accessKeys;
    private readonly Dictionary<string, IReadOnlyList<RamPolicy>> roles;

    private RamPolicyBook(Dictionary<string, IReadOnlyList<RamPolicy>> accessKeys, Dictionary<string, IReadOnlyList<RamPolicy>> roles)
    {
        this.accessKeys = accessKeys;
        this.roles = roles;
    }

    /// <summary>The policies of a long-term AccessKey; null when it is not restricted.</summary>
    public IReadOnlyList<RamPolicy>? ForAccessKey(string accessKeyId) => accessKeys.GetValueOrDefault(accessKeyId);

    /// <summary>The policies of a role (by ARN, case-insensitive as RAM role names are); null when not restricted.</summary>
    public IReadOnlyList<RamPolicy>? ForRole(string roleArn) => roles.GetValueOrDefault(roleArn);

    /// <summary>Parses and checks a whole policy file; any error names <paramref name="source"/> and the principal.</summary>
    public static RamPolicyBook Parse(byte[] utf8Json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({error.Message}).");
        }
        using (document)
        {
            return Parse(document.RootElement, source);
        }
    }

    internal static RamPolicyBook Parse(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw RamPolicy.Invalid(source, "the policy file must be a JSON object with \"AccessKeys\" and/or \"Roles\"");
        }
        var accessKeys = new Dictionary<string, IReadOnlyList<RamPolicy>>(StringComparer.Ordinal);
        var roles = new Dictionary<string, IReadOnlyList<RamPolicy>>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in root.EnumerateObject())
        {
            var target = section.Name switch
            {
                "AccessKeys" => accessKeys,
                "Roles" => roles,
                _ => throw RamPolicy.Invalid(source, $"unknown section '{section.Name}' (expected \"AccessKeys\" or \"Roles\")"),
            };
            if (section.Value.ValueKind != JsonValueKind.Object)
            {
                throw RamPolicy.Invalid(source, $"\"{section.Name}\" must map principals to policies");
            }
            foreach (var principal in section.Value.EnumerateObject())
            {
                if (section.Name == "Roles" && !principal.Name.StartsWith("acs:ram::", StringComparison.Ordinal))
                {
                    throw RamPolicy.Invalid(source, $"role '{principal.Name}' must be a role ARN, acs:ram::<account>:role/<name>");
                }
                var where = $"{source}: {section.Name}['{principal.Name}']";
                IReadOnlyList<RamPolicy> policies = principal.Value.ValueKind == JsonValueKind.Array
                    ? principal.Value.EnumerateArray().Select((p, i) => RamPolicy.Parse(p, $"{where}[{i}]")).ToList()
                    : [RamPolicy.Parse(principal.Value, where)];
                if (!target.TryAdd(principal.Name, policies))
                {
                    throw RamPolicy.Invalid(source, $"{section.Name} names '{principal.Name}' twice");
                }
            }
        }
        return new RamPolicyBook(accessKeys, roles);
    }
}
