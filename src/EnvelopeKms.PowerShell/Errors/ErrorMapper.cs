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
        return IdOf(exception, access).ToRecord(exception, target);
    }

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
            _ => exception.GetType(),
        };
        var id = ErrorIds.ForCoreError(coreError);
        return id == ErrorIds.EnvelopeWriteFailed && access == FileAccess.Read ? ErrorIds.EnvelopeReadFailed : id;
    }
}
