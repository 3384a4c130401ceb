using System.Text.Json;

namespace EnvelopeKms.Server.Auth;

/// <summary>Allow or Deny; a matching Deny wins over any Allow.</summary>
internal enum RamEffect
{
    Allow,
    Deny,
}

/// <summary>
/// One statement of a RAM policy: an effect, the actions and resources it covers (patterns with <c>*</c> and
/// <c>?</c>) and an optional condition block.
/// </summary>
internal sealed class RamStatement(RamEffect effect, IReadOnlyList<string> actions, IReadOnlyList<string> resources, RamCondition condition)
{
    public RamEffect Effect { get; } = effect;

    public IReadOnlyList<string> Actions { get; } = actions;

    public IReadOnlyList<string> Resources { get; } = resources;

    public RamCondition Condition { get; } = condition;

    /// <summary>Actions are case-insensitive in RAM (<c>kms:decrypt</c> is <c>kms:Decrypt</c>); resources are not.</summary>
    public bool Covers(string action, string resource, RamRequestContext context) =>
        Actions.Any(pattern => RamWildcard.Matches(pattern, action, ignoreCase: true))
        && Resources.Any(pattern => RamWildcard.Matches(pattern, resource, ignoreCase: false))
        && Condition.IsSatisfiedBy(context);
}

/// <summary>
/// A RAM policy document, <c>{"Version":"1","Statement":[{"Effect","Action","Resource","Condition"?}]}</c>, as the
/// RAM console takes it. Parsing is strict: an element the evaluator would not honour (NotAction, a condition
/// operator it does not know, ...) is an error rather than something silently ignored, because an ignored Deny or
/// condition would make a rehearsal more permissive than the real thing.
/// </summary>
internal sealed class RamPolicy(IReadOnlyList<RamStatement> statements)
{
    public IReadOnlyList<RamStatement> Statements { get; } = statements;

    /// <summary>Parses one policy document; <paramref name="where"/> names it in errors (file and principal).</summary>
    public static RamPolicy Parse(JsonElement document, string where)
    {
        if (document.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(where, "a policy must be a JSON object with Version and Statement");
        }
        foreach (var property in document.EnumerateObject())
        {
            if (property.Name is not ("Version" or "Statement"))
            {
                throw Invalid(where, $"unknown policy element '{property.Name}'");
            }
        }
        if (!document.TryGetProperty("Version", out var version) || version.ValueKind != JsonValueKind.String || version.GetString() != "1")
        {
            throw Invalid(where, "Version must be \"1\"");
        }
        if (!document.TryGetProperty("Statement", out var statementList) || statementList.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(where, "Statement must be an array");
        }
        var statements = new List<RamStatement>();
        var index = 0;
        foreach (var statement in statementList.EnumerateArray())
        {
            index++;
            statements.Add(ParseStatement(statement, $"{where}, statement {index}"));
        }
        return new RamPolicy(statements);
    }

    private static RamStatement ParseStatement(JsonElement statement, string where)
    {
        if (statement.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(where, "a statement must be a JSON object");
        }
        foreach (var property in statement.EnumerateObject())
        {
            if (property.Name is not ("Effect" or "Action" or "Resource" or "Condition" or "Sid"))
            {
                throw Invalid(where, $"unsupported statement element '{property.Name}' (this server evaluates Effect, Action, Resource and Condition)");
            }
        }
        var effect = statement.TryGetProperty("Effect", out var effectText) && effectText.ValueKind == JsonValueKind.String
            ? effectText.GetString() switch
            {
                "Allow" => RamEffect.Allow,
                "Deny" => RamEffect.Deny,
                _ => throw Invalid(where, "Effect must be \"Allow\" or \"Deny\""),
            }
            : throw Invalid(where, "Effect is required");
        var actions = StringOrArray(statement, "Action", where);
        var resources = StringOrArray(statement, "Resource", where);
        var condition = statement.TryGetProperty("Condition", out var conditionBlock)
            ? RamCondition.Parse(conditionBlock, where)
            : RamCondition.None;
        return new RamStatement(effect, actions, resources, condition);
    }

    internal static IReadOnlyList<string> StringOrArray(JsonElement parent, string name, string where)
    {
        if (!parent.TryGetProperty(name, out var value))
        {
            throw Invalid(where, $"{name} is required");
        }
        IReadOnlyList<string>? values = value.ValueKind switch
        {
            JsonValueKind.String => [value.GetString()!],
            JsonValueKind.Array when value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String) =>
                value.EnumerateArray().Select(v => v.GetString()!).ToList(),
            _ => null,
        };
        if (values is null || values.Count == 0 || values.Any(v => v.Length == 0))
        {
            throw Invalid(where, $"{name} must be a non-empty string or array of strings");
        }
        return values;
    }

    internal static InvalidDataException Invalid(string where, string what) => new($"{where}: {what}.");
}

/// <summary>
/// <c>*</c> (any run of characters, including none) and <c>?</c> (one character) patterns, the wildcards RAM
/// accepts in Action and Resource.
/// </summary>
internal static class RamWildcard
{
    public static bool Matches(string pattern, string value, bool ignoreCase)
    {
        // Iterative glob match with backtracking to the last '*': linear for the patterns policies use.
        int p = 0, v = 0, star = -1, afterStar = 0;
        while (v < value.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || Same(pattern[p], value[v], ignoreCase)))
            {
                p++;
                v++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                afterStar = v;
            }
            else if (star >= 0)
            {
                p = star + 1;
                v = ++afterStar;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }

    private static bool Same(char a, char b, bool ignoreCase) =>
        a == b || (ignoreCase && char.ToUpperInvariant(a) == char.ToUpperInvariant(b));
}
