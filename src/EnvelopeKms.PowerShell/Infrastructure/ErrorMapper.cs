using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Turns core exceptions into error records with stable error ids and the categories users filter on. Messages come
/// from the core, which keeps keys and secrets out of them.
/// </summary>
internal static class ErrorMapper
{
    public static ErrorRecord ToErrorRecord(Exception exception, object? target)
    {
        if (exception is AggregateException { InnerExceptions.Count: 1 } aggregate) exception = aggregate.InnerExceptions[0];
        var (id, category) = Classify(exception);
        return new ErrorRecord(exception, id, category, target);
    }

    public static (string Id, ErrorCategory Category) Classify(Exception exception) => exception switch
    {
        EnvelopeException e => e.Error switch
        {
            EnvelopeError.NotEnvelope => ("EnvelopeNotRecognized", ErrorCategory.InvalidData),
            EnvelopeError.Base64Encoded => ("EnvelopeBase64Encoded", ErrorCategory.InvalidData),
            EnvelopeError.TextModeCorrupted => ("EnvelopeTextModeCorrupted", ErrorCategory.InvalidData),
            EnvelopeError.UnsupportedVersion => ("EnvelopeUnsupportedVersion", ErrorCategory.InvalidData),
            EnvelopeError.UnsupportedSuite => ("EnvelopeUnsupportedSuite", ErrorCategory.InvalidData),
            EnvelopeError.MalformedHeader => ("EnvelopeMalformedHeader", ErrorCategory.InvalidData),
            EnvelopeError.LimitExceeded => ("EnvelopeLimitExceeded", ErrorCategory.InvalidData),
            EnvelopeError.Truncated => ("EnvelopeTruncated", ErrorCategory.InvalidData),
            EnvelopeError.LegacyInvalid => ("EnvelopeLegacyInvalid", ErrorCategory.InvalidData),
            EnvelopeError.SdkMalformed => ("EnvelopeSdkMalformed", ErrorCategory.InvalidData),
            EnvelopeError.SdkUnsupportedAlgorithm => ("EnvelopeSdkUnsupportedAlgorithm", ErrorCategory.InvalidData),
            EnvelopeError.SdkMessageTooLarge => ("EnvelopeSdkMessageTooLarge", ErrorCategory.LimitsExceeded),
            EnvelopeError.ConvertTooLarge => ("EnvelopeConvertTooLarge", ErrorCategory.LimitsExceeded),
            EnvelopeError.ConvertContextLost => ("EnvelopeConvertContextLost", ErrorCategory.InvalidOperation),
            EnvelopeError.ContextMismatch => ("EnvelopeContextMismatch", ErrorCategory.SecurityError),
            EnvelopeError.KeyCommitmentMismatch => ("EnvelopeKeyCommitmentMismatch", ErrorCategory.SecurityError),
            EnvelopeError.HeaderTampered => ("EnvelopeHeaderTampered", ErrorCategory.SecurityError),
            EnvelopeError.FrameTampered => ("EnvelopeAuthenticationFailed", ErrorCategory.SecurityError),
            _ => ("EnvelopeInvalid", ErrorCategory.InvalidData),
        },
        EnvelopeKeyUpdateException u => u.Error switch
        {
            EnvelopeKeyUpdateError.LastKeyRemoved => ("EnvelopeLastKeyRemoval", ErrorCategory.InvalidOperation),
            EnvelopeKeyUpdateError.KeyNotInFile => ("EnvelopeKeyNotInFile", ErrorCategory.ObjectNotFound),
            EnvelopeKeyUpdateError.TooManyKeys => ("EnvelopeTooManyKeys", ErrorCategory.LimitsExceeded),
            EnvelopeKeyUpdateError.UnsupportedFormat => ("EnvelopeUpdateUnsupportedFormat", ErrorCategory.InvalidData),
            EnvelopeKeyUpdateError.GenerationExhausted => ("EnvelopeGenerationExhausted", ErrorCategory.LimitsExceeded),
            _ => ("EnvelopeInvalid", ErrorCategory.InvalidData),
        },
        KeyProviderException { InnerException: KmsException kms } => Classify(kms),
        KeyProviderException e => e.Error switch
        {
            KeyProviderError.NoMatchingKey => ("KmsNoAllowedKey", ErrorCategory.SecurityError),
            KeyProviderError.Authentication => ("KmsAuthenticationFailed", ErrorCategory.AuthenticationError),
            KeyProviderError.Unavailable => ("KmsUnavailable", ErrorCategory.ConnectionError),
            KeyProviderError.InvalidDataKey => ("KmsInvalidDataKey", ErrorCategory.SecurityError),
            _ => ("KmsRefused", ErrorCategory.PermissionDenied),
        },
        KmsException kms => ClassifyKms(kms),
        CredentialsException => ("KmsCredentialsFailed", ErrorCategory.AuthenticationError),
        KmsConfigurationException => ("KmsConfigurationInvalid", ErrorCategory.InvalidArgument),
        DestinationExistsException => ("EnvelopeDestinationExists", ErrorCategory.ResourceExists),
        DestinationIsSourceException => ("EnvelopeDestinationIsSource", ErrorCategory.InvalidArgument),
        SourceNotRemovableException => ("EnvelopeSourceNotRemovable", ErrorCategory.InvalidOperation),
        FileNotFoundException or DirectoryNotFoundException => ("EnvelopeFileNotFound", ErrorCategory.ObjectNotFound),
        UnauthorizedAccessException => ("EnvelopeAccessDenied", ErrorCategory.PermissionDenied),
        OperationCanceledException => ("EnvelopeOperationStopped", ErrorCategory.OperationStopped),
        IOException => ("EnvelopeWriteFailed", ErrorCategory.WriteError),
        ArgumentException => ("EnvelopeInvalidArgument", ErrorCategory.InvalidArgument),
        _ => ("EnvelopeUnexpectedError", ErrorCategory.NotSpecified),
    };

    private static (string, ErrorCategory) ClassifyKms(KmsException kms)
    {
        if (kms.Kind is KmsErrorKind.Timeout or KmsErrorKind.Connection) return ("KmsUnavailable", ErrorCategory.ConnectionError);
        if (kms.Kind == KmsErrorKind.InvalidResponse) return ("KmsInvalidResponse", ErrorCategory.ProtocolError);
        if (kms.IsClockSkew) return ("KmsClockSkew", ErrorCategory.AuthenticationError);
        string code = kms.Code;
        if (code.StartsWith("InvalidAccessKeyId", StringComparison.Ordinal) || code.StartsWith("SignatureDoesNotMatch", StringComparison.Ordinal)
            || code.Contains("SecurityToken", StringComparison.Ordinal) || code.StartsWith("IncompleteSignature", StringComparison.Ordinal))
            return ("KmsAuthenticationFailed", ErrorCategory.AuthenticationError);
        if (code.Contains("NotFound", StringComparison.Ordinal)) return ("KmsKeyNotFound", ErrorCategory.ObjectNotFound);
        if (code.EndsWith("AlreadyExists", StringComparison.Ordinal) || code.StartsWith("EntityAlreadyExists", StringComparison.Ordinal))
            return ("KmsAliasExists", ErrorCategory.ResourceExists);
        if (code.StartsWith("Rejected", StringComparison.Ordinal) || code.StartsWith("Forbidden", StringComparison.Ordinal))
            return ("KmsRefused", ErrorCategory.PermissionDenied);
        if (code.StartsWith("Invalid", StringComparison.Ordinal) || code.StartsWith("Missing", StringComparison.Ordinal))
            return ("KmsInvalidParameter", ErrorCategory.InvalidArgument);
        if (kms.IsRetryable) return ("KmsUnavailable", ErrorCategory.ConnectionError);
        return ("KmsError", ErrorCategory.NotSpecified);
    }
}
