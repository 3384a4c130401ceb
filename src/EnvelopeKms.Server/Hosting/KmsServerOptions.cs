using EnvelopeKms.Server.Faults;

namespace EnvelopeKms.Server.Hosting;

/// <summary>How to run a <see cref="KmsServer"/>; the command-line flags map one to one onto these.</summary>
public sealed class KmsServerOptions
{
    /// <summary>The documented development pair used when no AccessKey is configured. Not a secret.</summary>
    public const string DefaultAccessKeyId = "testid";

    /// <summary>Secret of <see cref="DefaultAccessKeyId"/>, the one the reference's signature vectors use.</summary>
    public const string DefaultAccessKeySecret = "testsecret";

    /// <summary>Where state.json (keys, key material, aliases, issued STS credentials) lives. Required.</summary>
    public required string DataDirectory { get; set; }

    /// <summary>TCP port; 0 picks a free one (read it from the URI StartAsync returns).</summary>
    public int Port { get; set; }

    /// <summary>Address to bind; loopback unless you really mean to expose a dev server.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>AccessKeyId → AccessKeySecret. Empty means the default development pair.</summary>
    public Dictionary<string, string> AccessKeys { get; set; } = [];

    public string Region { get; set; } = "cn-hangzhou";

    /// <summary>The account id in ARNs and in KeyMetadata.Creator.</summary>
    public string AccountId { get; set; } = "1234567890123456";

    /// <summary>Lifetime of AssumeRole credentials when the request has no DurationSeconds.</summary>
    public TimeSpan StsDuration { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How far a request's timestamp may be from the server clock (the gateway's 15 minutes).</summary>
    public TimeSpan TimestampWindow { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Faults in effect from the start (also settable at run time through the control endpoint).</summary>
    public FaultSettings Faults { get; set; } = FaultSettings.None;

    /// <summary>Serve <c>/__control/*</c>. Off by default.</summary>
    public bool EnableControl { get; set; }

    /// <summary>
    /// When set, control calls must send it in <c>X-EnvelopeKms-Admin-Token</c>; when not set, control
    /// calls are accepted from loopback addresses only.
    /// </summary>
    public string? AdminToken { get; set; }

    /// <summary>
    /// A JSON file of RAM policies per AccessKeyId and per role ARN (see docs/local-kms-server.md, "RAM policies");
    /// re-read when it changes. Null: every accepted AccessKey may call every action, as before.
    /// </summary>
    public string? PolicyFile { get; set; }

    /// <summary>The clock; tests substitute one they can move to expire tokens and timestamps.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    internal IReadOnlyDictionary<string, string> EffectiveAccessKeys() =>
        AccessKeys.Count > 0 ? AccessKeys : new Dictionary<string, string> { [DefaultAccessKeyId] = DefaultAccessKeySecret };
}
