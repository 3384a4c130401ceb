namespace EnvelopeKms.Kms;

/// <summary>What kind of failure a <see cref="KmsException"/> reports.</summary>
public enum KmsErrorKind
{
    /// <summary>KMS answered with an error body (<see cref="KmsException.Code"/> is the service's code).</summary>
    Service,
    /// <summary>An attempt did not complete within the per-attempt timeout.</summary>
    Timeout,
    /// <summary>The connection could not be made or broke (DNS, refused, reset, TLS).</summary>
    Connection,
    /// <summary>KMS answered with something that is not the documented JSON.</summary>
    InvalidResponse,
}

/// <summary>
/// A failed KMS call. The message is built only from the operation, the error code, the service's message (with any
/// echoed string to sign removed) and ids; it never contains credentials or key material.
/// </summary>
public sealed class KmsException : Exception
{
    public KmsException(string operation, KmsErrorKind kind, string code, string message, int? httpStatus = null,
        string? requestId = null, string? serviceMessage = null, Exception? inner = null)
        : base(message, inner)
    {
        Operation = operation;
        Kind = kind;
        Code = code;
        HttpStatus = httpStatus;
        RequestId = requestId;
        ServiceMessage = serviceMessage;
    }

    /// <summary>The API action, e.g. <c>GenerateDataKey</c>.</summary>
    public string Operation { get; }

    public KmsErrorKind Kind { get; }

    /// <summary>The service's error code (e.g. <c>Forbidden.KeyNotFound</c>), or <c>Client.Timeout</c>,
    /// <c>Client.ConnectionFailure</c>, <c>Client.InvalidResponse</c> for failures on this side.</summary>
    public string Code { get; }

    public int? HttpStatus { get; }

    public string? RequestId { get; }

    /// <summary>The service's own message, sanitised.</summary>
    public string? ServiceMessage { get; }

    /// <summary>How many attempts were made before giving up.</summary>
    public int Attempts { get; internal set; } = 1;

    /// <summary>
    /// For <c>SignatureDoesNotMatch</c>: the string this client signed, when it contains nothing secret
    /// (V3 always; V1 only without a security token or secret parameter). Compare it with the server's.
    /// </summary>
    public string? ClientStringToSign { get; internal set; }

    /// <summary>
    /// For a RAM denial (<see cref="KmsErrorClassifier.IsPermissionDenied"/>): the action and resources the call
    /// needed, which the message also states ("this needs kms:Decrypt on acs:kms:…").
    /// </summary>
    public KmsRequiredPermission? RequiredPermission { get; internal set; }

    public bool IsRetryable => KmsErrorClassifier.IsRetryable(this);

    public bool IsClockSkew => Kind == KmsErrorKind.Service && KmsErrorClassifier.IsClockSkew(Code);

    public const string TimeoutCode = "Client.Timeout";
    public const string ConnectionFailureCode = "Client.ConnectionFailure";
    public const string InvalidResponseCode = "Client.InvalidResponse";
}
