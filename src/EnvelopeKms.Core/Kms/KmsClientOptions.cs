using EnvelopeKms.Credentials;

namespace EnvelopeKms.Kms;

public enum KmsSignatureVersion
{
    /// <summary><c>ACS3-HMAC-SHA256</c>, what current SDKs send: parameters in the query, headers signed.</summary>
    V3,
    /// <summary><c>HMAC-SHA1</c> RPC signature, what the aliyun CLI and older SDKs send.</summary>
    V1,
}

/// <summary>How V1 requests carry their parameters (V3 always uses POST with a query).</summary>
public enum KmsV1Transport
{
    /// <summary>Everything, the signature included, in a form-encoded POST body.</summary>
    FormPost,
    /// <summary>Everything in the query of a GET. Requests carrying a secret still use a form POST.</summary>
    QueryGet,
}

/// <summary>Retry policy: exponential backoff with full jitter, <c>delay = random(0, min(MaxDelay, BaseDelay·2^(n-1)))</c>.</summary>
public sealed class KmsRetryOptions
{
    /// <summary>Total tries including the first (1 disables retries). The Encryption SDK uses 5.</summary>
    public int MaxAttempts { get; init; } = 5;

    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    internal void Validate()
    {
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), "At least one attempt is needed.");
        if (BaseDelay < TimeSpan.Zero || MaxDelay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(BaseDelay), "Delays must not be negative.");
    }
}

public sealed class KmsClientOptions
{
    public required KmsEndpoint Endpoint { get; init; }

    public required ICredentialsProvider Credentials { get; init; }

    public KmsSignatureVersion SignatureVersion { get; init; } = KmsSignatureVersion.V3;

    public KmsV1Transport V1Transport { get; init; } = KmsV1Transport.FormPost;

    /// <summary>Allow plain http to a non-loopback host. Off by default; meant for test networks only.</summary>
    public bool AllowInsecureHttp { get; init; }

    public KmsRetryOptions Retry { get; init; } = new();

    /// <summary>Limit for one HTTP attempt (connect, send, read); a timed-out attempt is retried.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock for request timestamps and for waiting between retries (tests inject their own).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public string UserAgent { get; init; } = "EnvelopeKms/0.1 (.NET)";
}
