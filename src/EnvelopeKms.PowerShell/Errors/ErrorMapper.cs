using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;

namespace EnvelopeKms.PowerShell.Errors;

/// <summary>
/// Turns core exceptions into error records with the ids and categories of <see cref="ErrorIds"/>. Messages come
/// from the core, which keeps keys and secrets out of them; the record keeps the exception as thrown.
/// </summary>
internal static class ErrorMapper
{
    /// <param name="access">
    /// What the command does with files: a command that only reads (<see cref="FileAccess.Read"/>) reports an I/O
    /// error as <see cref="ErrorIds.EnvelopeReadFailed"/> rather than as a write failure.
    /// </param>
    public static ErrorRecord ToErrorRecord(Exception exception, object? target, FileAccess access = FileAccess.ReadWrite)
    {
        if (exception is AggregateException { InnerExceptions.Count: 1 } aggregate) exception = aggregate.InnerExceptions[0];
        var record = IdOf(exception, access).ToRecord(exception, target);
        if (PowerShellHint(exception) is { } hint) record.ErrorDetails = new ErrorDetails($"{exception.Message} {hint}") { RecommendedAction = hint };
        return record;
    }

    /// <summary>
    /// What to do about an error in this module's terms (a parameter, a cmdlet), for the errors whose remedy is one.
    /// The core's messages speak of the operation only; the hint goes into the record's details, which PowerShell
    /// shows in place of the exception's message.
    /// </summary>
    internal static string? PowerShellHint(Exception exception)
    {
        if (exception is KeyProviderException { InnerException: KmsException inner }) exception = inner;
        return exception switch
        {
            DestinationExistsException => "Use -Force to overwrite it.",
            EnvelopeKeyUpdateException { Error: EnvelopeKeyUpdateError.UnsupportedFormat } => "Use Unprotect-EnvelopeFile, then Protect-EnvelopeFile.",
            KmsException { Kind: KmsErrorKind.Connection, InnerException: System.Security.Authentication.AuthenticationException } =>
                "Give the CA certificate with Connect-Kms -CaCertificatePath.",
            _ => null,
        };
    }

    /// <summary>The remedy for a v2 file read through one header slot because the other was damaged or stale.</summary>
    internal const string SlotProblemHint = "Update-EnvelopeFileKey rewrites both slots.";

    /// <summary>The catalogue entry for <paramref name="exception"/>.</summary>
    public static ErrorId IdOf(Exception exception, FileAccess access = FileAccess.ReadWrite)
    {
        if (exception is AggregateException { InnerExceptions.Count: 1 } aggregate) exception = aggregate.InnerExceptions[0];
        // A key provider that failed in a KMS call: the KMS error says more than the provider's summary of it.
        if (exception is KeyProviderException { InnerException: KmsException inner }) exception = inner;
        object coreError = exception switch
        {
            EnvelopeException e => e.Error,
            EnvelopeKeyUpdateException e => e.Error,
            KeyProviderException e => e.Error,
            KmsException e => KmsErrorClassifier.Classify(e),
            FormatRuleException e => e.Rule,
            _ => exception.GetType(),
        };
        var id = ErrorIds.ForCoreError(coreError);
        return id == ErrorIds.EnvelopeWriteFailed && access == FileAccess.Read ? ErrorIds.EnvelopeReadFailed : id;
    }
}
