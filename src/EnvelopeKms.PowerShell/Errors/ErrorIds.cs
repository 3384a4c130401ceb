using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using static System.Management.Automation.ErrorCategory;

namespace EnvelopeKms.PowerShell.Errors;

/// <summary>
/// The catalogue of the module's error ids: every <see cref="ErrorRecord"/> the module writes carries one of these,
/// with the category given here. <see cref="ErrorMapper"/> finds the id of a core error from <see cref="ErrorId.MapsFrom"/>,
/// <see cref="PipelineEnd"/> decides from <see cref="ErrorId.Reach"/> which errors end a pipeline, and the tests check
/// that about_EnvelopeKms lists exactly these. Ids are part of the module's interface: never rename one lightly.
/// </summary>
public static class ErrorIds
{
    // First: static fields are initialised in the order they are written, and every Define below adds to it.
    private static List<ErrorId>? _defined = [];

    // Files that are not what they claim to be (core: EnvelopeError).
    public static readonly ErrorId EnvelopeNotRecognized = Define(nameof(EnvelopeNotRecognized), InvalidData, ErrorReach.Item,
        "The file is not of a format this module reads (EKMS, legacy, Encryption SDK).", EnvelopeError.NotEnvelope);
    public static readonly ErrorId EnvelopeBase64Encoded = Define(nameof(EnvelopeBase64Encoded), InvalidData, ErrorReach.Item,
        "The file is an EKMS file encoded as base64 text.", EnvelopeError.Base64Encoded);
    public static readonly ErrorId EnvelopeTextModeCorrupted = Define(nameof(EnvelopeTextModeCorrupted), InvalidData, ErrorReach.Item,
        "The file was an EKMS file whose line endings a text-mode transfer converted.", EnvelopeError.TextModeCorrupted);
    public static readonly ErrorId EnvelopeUnsupportedVersion = Define(nameof(EnvelopeUnsupportedVersion), InvalidData, ErrorReach.Item,
        "A format version this build does not read.", EnvelopeError.UnsupportedVersion);
    public static readonly ErrorId EnvelopeUnsupportedSuite = Define(nameof(EnvelopeUnsupportedSuite), InvalidData, ErrorReach.Item,
        "An algorithm suite this build does not know.", EnvelopeError.UnsupportedSuite);
    public static readonly ErrorId EnvelopeMalformedHeader = Define(nameof(EnvelopeMalformedHeader), InvalidData, ErrorReach.Item,
        "A header field is out of range, not canonical, or runs past the end.", EnvelopeError.MalformedHeader);
    public static readonly ErrorId EnvelopeLimitExceeded = Define(nameof(EnvelopeLimitExceeded), InvalidData, ErrorReach.Item,
        "A header claims more than the documented caps allow.", EnvelopeError.LimitExceeded);
    public static readonly ErrorId EnvelopeTruncated = Define(nameof(EnvelopeTruncated), InvalidData, ErrorReach.Item,
        "The file ends before its final frame.", EnvelopeError.Truncated);
    public static readonly ErrorId EnvelopeLegacyInvalid = Define(nameof(EnvelopeLegacyInvalid), InvalidData, ErrorReach.Item,
        "A legacy (documentation sample) file is malformed, too large, or does not authenticate.", EnvelopeError.LegacyInvalid);
    public static readonly ErrorId EnvelopeSdkMalformed = Define(nameof(EnvelopeSdkMalformed), InvalidData, ErrorReach.Item,
        "An Encryption SDK message is malformed.", EnvelopeError.SdkMalformed);
    public static readonly ErrorId EnvelopeSdkUnsupportedAlgorithm = Define(nameof(EnvelopeSdkUnsupportedAlgorithm), InvalidData, ErrorReach.Item,
        "An Encryption SDK message uses an algorithm this build does not read.", EnvelopeError.SdkUnsupportedAlgorithm);
    public static readonly ErrorId EnvelopeSdkMessageTooLarge = Define(nameof(EnvelopeSdkMessageTooLarge), LimitsExceeded, ErrorReach.Item,
        "An Encryption SDK message is larger than the most processed whole in memory.", EnvelopeError.SdkMessageTooLarge);
    public static readonly ErrorId EnvelopeConvertTooLarge = Define(nameof(EnvelopeConvertTooLarge), LimitsExceeded, ErrorReach.Item,
        "The file is larger than a conversion holds in memory.", EnvelopeError.ConvertTooLarge);
    public static readonly ErrorId EnvelopeConvertContextLost = Define(nameof(EnvelopeConvertContextLost), InvalidOperation, ErrorReach.Item,
        "The conversion would drop the file's encryption context.", EnvelopeError.ConvertContextLost);
    public static readonly ErrorId EnvelopeContextMismatch = Define(nameof(EnvelopeContextMismatch), SecurityError, ErrorReach.Item,
        "The required encryption context is not in the file.", EnvelopeError.ContextMismatch);
    public static readonly ErrorId EnvelopeKeyCommitmentMismatch = Define(nameof(EnvelopeKeyCommitmentMismatch), SecurityError, ErrorReach.Item,
        "The unwrapped data key does not match the file's key commitment.", EnvelopeError.KeyCommitmentMismatch);
    public static readonly ErrorId EnvelopeHeaderTampered = Define(nameof(EnvelopeHeaderTampered), SecurityError, ErrorReach.Item,
        "The header does not authenticate: it was changed.", EnvelopeError.HeaderTampered);
    public static readonly ErrorId EnvelopeAuthenticationFailed = Define(nameof(EnvelopeAuthenticationFailed), SecurityError, ErrorReach.Item,
        "A frame does not authenticate: the body was changed, reordered, spliced or extended.", EnvelopeError.FrameTampered);
    public static readonly ErrorId EnvelopeInvalid = Define(nameof(EnvelopeInvalid), InvalidData, ErrorReach.Item,
        "Any other problem with the file's content.", typeof(EnvelopeError), typeof(EnvelopeKeyUpdateError));

    // Key updates refused (core: EnvelopeKeyUpdateError).
    public static readonly ErrorId EnvelopeLastKeyRemoval = Define(nameof(EnvelopeLastKeyRemoval), InvalidOperation, ErrorReach.Item,
        "The change would leave the file with no wrapped key.", EnvelopeKeyUpdateError.LastKeyRemoved);
    public static readonly ErrorId EnvelopeKeyNotInFile = Define(nameof(EnvelopeKeyNotInFile), ObjectNotFound, ErrorReach.Item,
        "A key to remove has no wrapped copy in the file.", EnvelopeKeyUpdateError.KeyNotInFile);
    public static readonly ErrorId EnvelopeTooManyKeys = Define(nameof(EnvelopeTooManyKeys), InvalidArgument, ErrorReach.Item,
        // Item: a key update that would exceed the limit depends on the keys the file already has.
        "More KMS keys than one file may be wrapped under.", EnvelopeKeyUpdateError.TooManyKeys, FormatRule.TooManyKeys);
    public static readonly ErrorId EnvelopeUpdateUnsupportedFormat = Define(nameof(EnvelopeUpdateUnsupportedFormat), InvalidData, ErrorReach.Item,
        "The file's format has no key list to update.", EnvelopeKeyUpdateError.UnsupportedFormat);
    public static readonly ErrorId EnvelopeGenerationExhausted = Define(nameof(EnvelopeGenerationExhausted), LimitsExceeded, ErrorReach.Item,
        "The header's generation counter is at its maximum.", EnvelopeKeyUpdateError.GenerationExhausted);

    // KMS and the key provider (core: KeyProviderError, KmsErrorClass).
    public static readonly ErrorId KmsNoAllowedKey = Define(nameof(KmsNoAllowedKey), SecurityError, ErrorReach.Key,
        "No wrapped key of the file is under an allowed KMS key, or none could be unwrapped.", KeyProviderError.NoMatchingKey);
    public static readonly ErrorId KmsAuthenticationFailed = Define(nameof(KmsAuthenticationFailed), AuthenticationError, ErrorReach.Command,
        "KMS rejected the caller's identity: AccessKey, signature, security token, or KMS not enabled.",
        KeyProviderError.Authentication, KmsErrorClass.Authentication);
    public static readonly ErrorId KmsClockSkew = Define(nameof(KmsClockSkew), AuthenticationError, ErrorReach.Command,
        "The request's timestamp is too far from KMS's clock.", KmsErrorClass.ClockSkew);
    public static readonly ErrorId KmsUnavailable = Define(nameof(KmsUnavailable), ConnectionError, ErrorReach.Service,
        "KMS could not be reached, timed out, or kept failing after the retries.", KeyProviderError.Unavailable, KmsErrorClass.Unavailable);
    public static readonly ErrorId KmsRefused = Define(nameof(KmsRefused), PermissionDenied, ErrorReach.Key,
        "KMS refused: a disabled key, a key pending deletion, a denied permission, the wrong context.",
        KeyProviderError.Refused, typeof(KeyProviderError), KmsErrorClass.Refused);
    public static readonly ErrorId KmsKeyNotFound = Define(nameof(KmsKeyNotFound), ObjectNotFound, ErrorReach.Key,
        "The KMS key, alias or key version does not exist or is not visible.", KmsErrorClass.NotFound);
    public static readonly ErrorId KmsInvalidParameter = Define(nameof(KmsInvalidParameter), InvalidArgument, ErrorReach.Key,
        "KMS found a parameter missing or invalid.", KmsErrorClass.InvalidRequest);
    public static readonly ErrorId KmsInvalidDataKey = Define(nameof(KmsInvalidDataKey), SecurityError, ErrorReach.Item,
        "KMS returned a data key of the wrong length, or for a key not allowed.", KeyProviderError.InvalidDataKey);
    public static readonly ErrorId KmsInvalidResponse = Define(nameof(KmsInvalidResponse), ProtocolError, ErrorReach.Item,
        "KMS answered with something that is not the documented JSON.", KmsErrorClass.InvalidResponse);
    public static readonly ErrorId KmsAliasExists = Define(nameof(KmsAliasExists), ResourceExists, ErrorReach.Item,
        "The alias exists already.", KmsErrorClass.AlreadyExists);
    public static readonly ErrorId KmsError = Define(nameof(KmsError), NotSpecified, ErrorReach.Item,
        "Any other KMS error; the message has KMS's code and request id.", KmsErrorClass.Other);
    public static readonly ErrorId KmsCredentialsFailed = Define(nameof(KmsCredentialsFailed), AuthenticationError, ErrorReach.Command,
        "No usable Alibaba Cloud credentials: none found, or their source failed.", typeof(CredentialsException));
    public static readonly ErrorId KmsConfigurationInvalid = Define(nameof(KmsConfigurationInvalid), InvalidArgument, ErrorReach.Command,
        "The KMS connection is misconfigured: no region, a bad endpoint, http without -AllowInsecureHttp.", typeof(KmsConfigurationException));

    // The file system (core: exception types).
    public static readonly ErrorId EnvelopeDestinationExists = Define(nameof(EnvelopeDestinationExists), ResourceExists, ErrorReach.Item,
        "The output exists and -Force was not given.", typeof(DestinationExistsException));
    public static readonly ErrorId EnvelopeDestinationIsSource = Define(nameof(EnvelopeDestinationIsSource), InvalidArgument, ErrorReach.Item,
        "The destination is the source file itself (the same file, reached by another path or link).", typeof(DestinationIsSourceException));
    public static readonly ErrorId EnvelopeSourceNotRemovable = Define(nameof(EnvelopeSourceNotRemovable), InvalidOperation, ErrorReach.Item,
        "-RemoveSource on a symbolic link or a file with other hard links: removing its name would leave the plaintext.", typeof(SourceNotRemovableException));
    public static readonly ErrorId EnvelopeFileNotFound = Define(nameof(EnvelopeFileNotFound), ObjectNotFound, ErrorReach.Item,
        "The file or its folder does not exist.", typeof(FileNotFoundException), typeof(DirectoryNotFoundException));
    public static readonly ErrorId EnvelopeAccessDenied = Define(nameof(EnvelopeAccessDenied), PermissionDenied, ErrorReach.Item,
        "The file system refused access to the file or its folder.", typeof(UnauthorizedAccessException));
    public static readonly ErrorId EnvelopeWriteFailed = Define(nameof(EnvelopeWriteFailed), WriteError, ErrorReach.Item,
        "An I/O error in a command that writes files (disk full, a read-only folder, a failing device).", typeof(IOException));
    public static readonly ErrorId EnvelopeReadFailed = Define(nameof(EnvelopeReadFailed), ReadError, ErrorReach.Item,
        "An I/O error in a command that only reads files (Get-EnvelopeFileInfo, Test-EnvelopeFile).");
    public static readonly ErrorId EnvelopeOperationStopped = Define(nameof(EnvelopeOperationStopped), OperationStopped, ErrorReach.Item,
        "The file was not finished because the command was stopped.", typeof(OperationCanceledException));
    public static readonly ErrorId EnvelopeInvalidArgument = Define(nameof(EnvelopeInvalidArgument), InvalidArgument, ErrorReach.Item,
        "A value given to the command is not valid.", typeof(ArgumentException));
    public static readonly ErrorId EnvelopeUnexpectedError = Define(nameof(EnvelopeUnexpectedError), NotSpecified, ErrorReach.Item,
        "An error the module does not expect; please report it.", typeof(Exception));

    // Requests a format's rules refuse (core: FormatRule), and what the cmdlets refuse themselves.
    public static readonly ErrorId EnvelopeContextInvalid = Define(nameof(EnvelopeContextInvalid), InvalidArgument, ErrorReach.Command,
        "-EncryptionContext is not valid for the format (empty names or values, too large).", FormatRule.ContextTooLarge);
    public static readonly ErrorId EnvelopeLegacyNoContext = Define(nameof(EnvelopeLegacyNoContext), InvalidArgument, ErrorReach.Command,
        "An encryption context for the legacy format, which has none.", FormatRule.NoContext);
    public static readonly ErrorId EnvelopeLegacyOneKey = Define(nameof(EnvelopeLegacyOneKey), InvalidArgument, ErrorReach.Command,
        "More than one KMS key for the legacy format, which holds one wrapped key.", FormatRule.OneKey);
    public static readonly ErrorId EnvelopeDuplicateKeyId = Define(nameof(EnvelopeDuplicateKeyId), InvalidArgument, ErrorReach.Command,
        "Two -KeyId values name the same KMS key, which an Encryption SDK message cannot hold.");
    public static readonly ErrorId EnvelopeKeyChangeMissing = Define(nameof(EnvelopeKeyChangeMissing), InvalidArgument, ErrorReach.Command,
        "Update-EnvelopeFileKey was given no key to add, remove or set.");
    public static readonly ErrorId EnvelopeDestinationNotDirectory = Define(nameof(EnvelopeDestinationNotDirectory), InvalidArgument, ErrorReach.Command,
        "-Destination names a file, but more than one file was given.");
    public static readonly ErrorId EnvelopeDestinationRequired = Define(nameof(EnvelopeDestinationRequired), InvalidArgument, ErrorReach.Item,
        "The output name cannot be told from the input name; give -Destination.");
    public static readonly ErrorId EnvelopeConvertSameFormat = Define(nameof(EnvelopeConvertSameFormat), InvalidOperation, ErrorReach.Item,
        "The file is already in the format to convert to.");
    public static readonly ErrorId EnvelopePathInvalid = Define(nameof(EnvelopePathInvalid), InvalidArgument, ErrorReach.Item,
        "A path that cannot be resolved.");
    public static readonly ErrorId EnvelopePathNotFileSystem = Define(nameof(EnvelopePathNotFileSystem), InvalidArgument, ErrorReach.Item,
        "A path of a provider other than the file system.");
    public static readonly ErrorId KmsCaCertificateNotFound = Define(nameof(KmsCaCertificateNotFound), ObjectNotFound, ErrorReach.Command,
        "The -CaCertificatePath file does not exist.");
    public static readonly ErrorId KmsAliasNotFound = Define(nameof(KmsAliasNotFound), ObjectNotFound, ErrorReach.Item,
        "No KMS alias of that name.");
    public static readonly ErrorId KmsSecretSize = Define(nameof(KmsSecretSize), InvalidArgument, ErrorReach.Item,
        "A secret larger than KMS Encrypt takes.");

    private static readonly IReadOnlyList<ErrorId> Everything = Seal();
    private static readonly Dictionary<object, ErrorId> ByCoreError = Index();

    /// <summary>Every id, in the order above.</summary>
    public static IReadOnlyList<ErrorId> All => Everything;

    /// <summary>
    /// The id for a core error: an enum value (else its enum type's fallback), or an exception type (else the
    /// nearest base type listed; <see cref="Exception"/> is).
    /// </summary>
    public static ErrorId ForCoreError(object coreError)
    {
        if (ByCoreError.TryGetValue(coreError, out var id)) return id;
        if (coreError is Enum && ByCoreError.TryGetValue(coreError.GetType(), out id)) return id;
        for (var type = coreError as Type; type is not null; type = type.BaseType)
        {
            if (ByCoreError.TryGetValue(type, out id)) return id;
        }
        return EnvelopeUnexpectedError;
    }

    private static ErrorId Define(string name, ErrorCategory category, ErrorReach reach, string meaning, params object[] mapsFrom)
    {
        var id = new ErrorId(name, category, reach, meaning, mapsFrom);
        _defined!.Add(id);
        return id;
    }

    private static IReadOnlyList<ErrorId> Seal()
    {
        var all = _defined!.AsReadOnly();
        _defined = null;
        return all;
    }

    private static Dictionary<object, ErrorId> Index()
    {
        var index = new Dictionary<object, ErrorId>();
        foreach (var id in Everything)
        {
            foreach (var from in id.MapsFrom)
            {
                // Each core error maps to one id: a second claim is a mistake in this file, found at type load.
                if (!index.TryAdd(from, id)) throw new InvalidOperationException($"{from} maps to both {index[from]} and {id}.");
            }
        }
        return index;
    }
}
