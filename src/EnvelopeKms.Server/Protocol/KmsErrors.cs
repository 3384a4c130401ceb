namespace EnvelopeKms.Server.Protocol;

/// <summary>
/// The error codes, messages and HTTP statuses of the real service, taken from the
/// project reference (shared/reference/alibaba-kms-api.md §3). Clients branch on these codes,
/// so they must match the real gateway byte for byte.
/// </summary>
internal static class KmsErrors
{
    public const string SignatureMismatchPrefix =
        "Specified signature is not matched with our calculation. server string to sign is:";

    // Gateway / authentication errors (common to every POP product).
    public static KmsException AccessKeyNotFound() =>
        new(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.");

    public static KmsException SignatureDoesNotMatch(string serverStringToSign) =>
        new(400, "SignatureDoesNotMatch", SignatureMismatchPrefix + serverStringToSign);

    public static KmsException SignatureNonceUsed() =>
        new(400, "SignatureNonceUsed", "Specified signature nonce was used already.");

    public static KmsException TimestampExpired() =>
        new(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.");

    public static KmsException TimestampFormat() =>
        new(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.");

    public static KmsException IncompleteSignature() =>
        new(400, "IncompleteSignature", "The request signature does not conform to Alibaba Cloud standards.");

    public static KmsException SecurityTokenExpired() =>
        new(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.");

    public static KmsException SecurityTokenMalformed() =>
        new(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.");

    public static KmsException SecurityTokenMismatch() =>
        new(400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.");

    public static KmsException ActionNotFound() =>
        new(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.");

    public static KmsException InvalidVersion() =>
        new(400, "InvalidVersion", "Specified parameter Version is not valid.");

    public static KmsException UnsupportedHttpMethod() =>
        new(403, "UnsupportedHTTPMethod", "This http method is not supported.");

    /// <summary>
    /// A RAM denial: the code, status and message of KMS's common error table ("Forbidden.NoPermission", 403,
    /// "This operation is forbidden by permission system."), with the AccessDeniedDetail object the POP gateway
    /// adds and the SDKs read (AuthAction, NoPermissionType, ...).
    /// </summary>
    public static KmsException NoPermission(System.Text.Json.Nodes.JsonObject accessDeniedDetail) =>
        new(403, "Forbidden.NoPermission", "This operation is forbidden by permission system.") { AccessDeniedDetail = accessDeniedDetail };

    // Parameter errors.
    public static KmsException MissingParameter(string name) =>
        new(400, "MissingParameter", $"The parameter \"{name}\" is needed but not provided.");

    public static KmsException InvalidParameter(string name) =>
        new(400, "InvalidParameter", $"The specified parameter \"{name}\" is not valid.");

    // Resource and state errors.
    public static KmsException KeyNotFound() =>
        new(404, "Forbidden.KeyNotFound", "The specified Key is not found.");

    public static KmsException AliasNotFound() =>
        new(404, "Forbidden.AliasNotFound", "The specified Alias is not found.");

    public static KmsException AliasAlreadyExists() =>
        new(400, "AliasAlreadyExists", "AliasName Already Exists.");

    public static KmsException LimitExceeded() =>
        new(400, "Rejected.LimitExceeded", "The request was rejected because user create resource limit was exceeded.");

    public static KmsException UnsupportedOrigin() =>
        new(400, "Unsupported.Origin", "The specified Origin is not supported.");

    public static KmsException UnsupportedProtectionLevel() =>
        new(400, "Unsupported.ProtectionLevel", "The specified ProtectionLevel is not supported.");

    /// <summary><c>Rejected.Disabled</c>, <c>Rejected.PendingDeletion</c>, ... (409).</summary>
    public static KmsException RejectedByState(string keyState) =>
        new(409, "Rejected." + keyState, $"The request was rejected because the key state is {keyState}.");

    public static KmsException StateModifiedFailed() =>
        new(409, "Rejected.StateModifiedFailed", "Keystate modified failed.");

    public static KmsException DryRunSucceeded() =>
        new(400, "DryRunOperationError", "Request would have succeeded, but DryRun flag is set.");

    // Service-side failures, used by fault injection as well.
    public static KmsException InternalFailure() =>
        new(500, "InternalFailure", "Internal Failure.");

    public static KmsException ServiceUnavailable() =>
        new(503, "ServiceUnavailableTemporary", "Service Unavailable Temporary.");

    /// <summary>Throttling answers; which one a fault produces is configurable (reference §8 item 3).</summary>
    public static KmsException Throttled(string code) => code switch
    {
        "Throttling" => new(400, "Throttling", "Request was denied due to request throttling."),
        "Rejected.Throttling" => new(429, "Rejected.Throttling", "The QPS upper limit is exceeded."),
        _ => new(400, "Throttling.User", "Request was denied due to user flow control."),
    };
}
