namespace EnvelopeKms.Kms;

/// <summary>
/// What a failed KMS call means for whoever made it, from <see cref="KmsErrorClassifier.Classify"/>: the one place
/// where error codes are sorted, so the key provider, the retry loop and the module's error ids cannot disagree.
/// </summary>
public enum KmsErrorClass
{
    /// <summary>KMS could not be reached, timed out, or kept failing with a temporary error.</summary>
    Unavailable,
    /// <summary>KMS answered with something that is not the documented JSON.</summary>
    InvalidResponse,
    /// <summary>The request's timestamp is too far from KMS's clock.</summary>
    ClockSkew,
    /// <summary>The caller's identity was rejected: AccessKey, signature, security token, service not enabled.</summary>
    Authentication,
    /// <summary>The key, alias or key version does not exist or is not visible to the caller.</summary>
    NotFound,
    /// <summary>The alias (or other entity) to create exists already.</summary>
    AlreadyExists,
    /// <summary>KMS refused the operation: a disabled key, a key pending deletion, a denied permission.</summary>
    Refused,
    /// <summary>A parameter is missing or invalid.</summary>
    InvalidRequest,
    /// <summary>Anything else.</summary>
    Other,
}

/// <summary>
/// Sorts KMS error codes into the classes the client and the key provider act on. Codes come from the reference
/// (§3): gateway codes shared by all Alibaba Cloud products and the KMS-specific ones.
/// </summary>
public static class KmsErrorClassifier
{
    private static readonly HashSet<string> TransientCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "Throttling", "Rejected.Throttling", "ServiceUnavailableTemporary",
        "SerivceUnavailableTemporary", // the older docs' spelling
        "InternalFailure", "InternalError", "ServiceUnavailable",
        // The nonce collided; the retry carries a new nonce and a new signature, so it is safe.
        "SignatureNonceUsed",
    };

    private static readonly HashSet<string> ClockSkewCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "InvalidTimeStamp.Expired", "RequestTimeTooSkewed", "InvalidTimestamp.Expired",
    };

    private static readonly HashSet<string> NotFoundCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "Forbidden.KeyNotFound", "Forbidden.AliasNotFound", "Forbidden.KeyVersionNotFound", "Forbidden.ResourceNotFound",
    };

    /// <summary>
    /// RAM refused the call: the caller is authenticated but no policy allows this action on this resource. KMS
    /// answers 403 <c>Forbidden.NoPermission</c> (its common error table); <c>Forbidden.RAM</c> and
    /// <c>NoPermission</c> are the gateway's spellings in other Alibaba Cloud products.
    /// </summary>
    public static bool IsPermissionDenied(string code)
        => code.Equals("Forbidden.NoPermission", StringComparison.OrdinalIgnoreCase)
           || code.Equals("Forbidden.RAM", StringComparison.OrdinalIgnoreCase)
           || code.Equals("NoPermission", StringComparison.OrdinalIgnoreCase);

    public static bool IsThrottling(string code)
        => code.Equals("Throttling", StringComparison.OrdinalIgnoreCase)
           || code.StartsWith("Throttling.", StringComparison.OrdinalIgnoreCase)
           || code.Equals("Rejected.Throttling", StringComparison.OrdinalIgnoreCase);

    public static bool IsClockSkew(string code) => ClockSkewCodes.Contains(code);

    /// <summary>The STS token expired while cached: refresh the credentials once and try again.</summary>
    public static bool IsExpiredSecurityToken(string code)
        => code.Equals("InvalidSecurityToken.Expired", StringComparison.OrdinalIgnoreCase)
           || code.Equals("SecurityTokenExpired", StringComparison.OrdinalIgnoreCase)
           || code.Equals("InvalidAccessKeyId.Expired", StringComparison.OrdinalIgnoreCase);

    /// <summary>The caller's identity was rejected: AccessKey, signature, token or timestamp.</summary>
    public static bool IsAuthentication(string code, int? httpStatus)
        => httpStatus == 401
           || code.StartsWith("InvalidAccessKeyId", StringComparison.OrdinalIgnoreCase)
           || code.StartsWith("InvalidSecurityToken", StringComparison.OrdinalIgnoreCase)
           || code.StartsWith("InvalidTimeStamp", StringComparison.OrdinalIgnoreCase)
           || code.Equals("SignatureDoesNotMatch", StringComparison.OrdinalIgnoreCase)
           || code.Equals("IncompleteSignature", StringComparison.OrdinalIgnoreCase)
           || code.Equals("Forbidden.AccessKey", StringComparison.OrdinalIgnoreCase)
           || code.Equals("Forbidden.KmsServiceNotEnabled", StringComparison.OrdinalIgnoreCase)
           || IsClockSkew(code) || IsExpiredSecurityToken(code);

    /// <summary>The key (or alias, or version) does not exist or is not visible to the caller.</summary>
    public static bool IsNotFound(string code) => NotFoundCodes.Contains(code);

    /// <summary>
    /// Worth another attempt: throttling, a temporary service failure, any 5xx, a timeout or a connection failure.
    /// Never authentication, parameter, not-found or key-state errors, which will fail the same way again.
    /// </summary>
    public static bool IsRetryable(KmsException e) => e.Kind switch
    {
        KmsErrorKind.Timeout => true,
        KmsErrorKind.Connection => e.InnerException is not System.Security.Authentication.AuthenticationException,
        KmsErrorKind.InvalidResponse => e.HttpStatus >= 500,
        _ => IsRetryable(e.Code, e.HttpStatus),
    };

    /// <summary>
    /// The class of a failed call. Order matters: a clock skew is also an authentication failure, and a throttled
    /// call that ran out of retries (<c>Rejected.Throttling</c>) is reported as refused, as KMS words it.
    /// </summary>
    public static KmsErrorClass Classify(KmsException e)
    {
        if (e.Kind is KmsErrorKind.Timeout or KmsErrorKind.Connection) return KmsErrorClass.Unavailable;
        if (e.Kind == KmsErrorKind.InvalidResponse) return KmsErrorClass.InvalidResponse;
        string code = e.Code;
        if (IsClockSkew(code)) return KmsErrorClass.ClockSkew;
        if (IsAuthentication(code, e.HttpStatus)) return KmsErrorClass.Authentication;
        if (IsNotFound(code)) return KmsErrorClass.NotFound;
        if (code.EndsWith("AlreadyExists", StringComparison.OrdinalIgnoreCase) || code.StartsWith("EntityAlreadyExists", StringComparison.OrdinalIgnoreCase))
            return KmsErrorClass.AlreadyExists;
        if (IsPermissionDenied(code) || code.StartsWith("Rejected", StringComparison.OrdinalIgnoreCase) || code.StartsWith("Forbidden", StringComparison.OrdinalIgnoreCase))
            return KmsErrorClass.Refused;
        if (code.StartsWith("Invalid", StringComparison.OrdinalIgnoreCase) || code.StartsWith("Missing", StringComparison.OrdinalIgnoreCase))
            return KmsErrorClass.InvalidRequest;
        return IsRetryable(code, e.HttpStatus) ? KmsErrorClass.Unavailable : KmsErrorClass.Other;
    }

    public static bool IsRetryable(string code, int? httpStatus)
    {
        if (IsAuthentication(code, httpStatus) || IsNotFound(code)) return false;
        return IsThrottling(code) || TransientCodes.Contains(code) || httpStatus >= 500;
    }
}
