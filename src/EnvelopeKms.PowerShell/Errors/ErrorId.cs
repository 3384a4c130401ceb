using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Errors;

/// <summary>
/// How far a failure reaches: how sure it is that the next file or call fails the same way. Ordered, so a command
/// can say "end the pipeline from this reach up" (<see cref="PipelineEnd"/>).
/// </summary>
public enum ErrorReach
{
    /// <summary>This file or call only: the next one may well succeed.</summary>
    Item,
    /// <summary>KMS cannot be reached: every call fails alike until it is back.</summary>
    Service,
    /// <summary>Every use of the same KMS key fails alike: it does not exist, is refused, or the request about it is invalid.</summary>
    Key,
    /// <summary>Every call of the command fails alike: credentials, clock, configuration, a parameter.</summary>
    Command,
}

/// <summary>
/// One stable error id of the module: the <see cref="ErrorRecord.FullyQualifiedErrorId"/> prefix users test, its
/// category, how far it reaches, and the core errors it is mapped from. Defined only in <see cref="ErrorIds"/>.
/// </summary>
public sealed class ErrorId
{
    internal ErrorId(string name, ErrorCategory category, ErrorReach reach, string meaning, object[] mapsFrom)
    {
        Name = name;
        Category = category;
        Reach = reach;
        Meaning = meaning;
        MapsFrom = mapsFrom;
    }

    public string Name { get; }

    public ErrorCategory Category { get; }

    public ErrorReach Reach { get; }

    /// <summary>One line for the help: what went wrong.</summary>
    public string Meaning { get; }

    /// <summary>
    /// The core errors this id stands for: values of the core's error enums (<c>EnvelopeError</c>,
    /// <c>EnvelopeKeyUpdateError</c>, <c>KeyProviderError</c>, <c>KmsErrorClass</c>), an enum type (any value of it
    /// not listed elsewhere), or an exception type (and the types derived from it). Empty for ids only the cmdlets raise.
    /// </summary>
    public IReadOnlyList<object> MapsFrom { get; }

    /// <summary>An error record for <paramref name="exception"/> under this id.</summary>
    public ErrorRecord ToRecord(Exception exception, object? target) => new(exception, Name, Category, target);

    public override string ToString() => Name;
}
