using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>Defaults set by Connect-Kms for one runspace.</summary>
public sealed class KmsConnectionDefaults
{
    public string? Region { get; init; }
    public string? Endpoint { get; init; }
    public string? ProfileName { get; init; }
    public PSCredential? Credential { get; init; }
    public string? CaCertificatePath { get; init; }
    public bool AllowInsecureHttp { get; init; }
    /// <summary>Region id → endpoint URL (-RegionEndpoint); the CA certificate and the http opt-in apply to these too.</summary>
    public IReadOnlyDictionary<string, string>? RegionEndpoints { get; init; }
    /// <summary>Tries per KMS call, the first included; null keeps the client's default (5).</summary>
    public int? MaxAttempts { get; init; }
}

/// <summary>
/// Module state kept per runspace (PSOpenAD's pattern): safe under ForEach-Object -Parallel and runspace pools,
/// where a static field would leak defaults between runspaces.
/// </summary>
internal sealed class ModuleState
{
    private static readonly ConditionalWeakTable<Runspace, ModuleState> States = new();
    private static readonly ModuleState NoRunspace = new();

    public static ModuleState Current
    {
        get
        {
            var runspace = Runspace.DefaultRunspace;
            return runspace is null ? NoRunspace : States.GetValue(runspace, _ => new ModuleState());
        }
    }

    public KmsConnectionDefaults? Connection { get; set; }

    /// <summary>Aliases and key ids seen in this session: what Tab completes from (never a KMS call).</summary>
    public ConcurrentDictionary<string, string> KnownAliases { get; } = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentDictionary<string, string> KnownKeyIds { get; } = new(StringComparer.OrdinalIgnoreCase);

    public void RememberKey(string? keyId, string? description = null)
    {
        if (!string.IsNullOrEmpty(keyId)) KnownKeyIds[keyId] = description ?? keyId;
    }

    public void RememberAlias(string? alias, string? keyId)
    {
        if (!string.IsNullOrEmpty(alias)) KnownAliases[alias] = keyId ?? string.Empty;
    }
}
