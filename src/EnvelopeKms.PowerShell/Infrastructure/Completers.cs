using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>Completes KMS key ids and aliases from those seen in this session: Tab never calls KMS.</summary>
public sealed class KmsKeyCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var state = ModuleState.Current;
        var candidates = state.KnownAliases.Keys.Concat(state.KnownKeyIds.Keys).Distinct(StringComparer.OrdinalIgnoreCase);
        return Complete(candidates, wordToComplete);
    }

    internal static IEnumerable<CompletionResult> Complete(IEnumerable<string> candidates, string wordToComplete)
    {
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        foreach (var candidate in candidates.Where(pattern.IsMatch).OrderBy(c => c, StringComparer.OrdinalIgnoreCase))
        {
            string text = candidate.IndexOfAny([' ', '\'', '"', '$', '`', '(', ')', '{', '}', ';', ',']) >= 0 ? $"'{candidate.Replace("'", "''")}'" : candidate;
            yield return new CompletionResult(text, candidate, CompletionResultType.ParameterValue, candidate);
        }
    }
}

/// <summary>Completes alias names seen in this session.</summary>
public sealed class KmsAliasCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
        => KmsKeyCompleter.Complete(ModuleState.Current.KnownAliases.Keys, wordToComplete);
}
