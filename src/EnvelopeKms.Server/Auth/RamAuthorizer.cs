using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using EnvelopeKms.Server.Crypto;
using EnvelopeKms.Server.Operations;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// Checks an authenticated call against the caller's RAM policies (<see cref="RamPolicyBook"/>): the action is
/// <c>kms:&lt;Action&gt;</c> (<c>sts:AssumeRole</c> for STS) and the resources are the ARNs the KMS
/// "Authorization information" page lists per operation (see <see cref="RequiredResources"/>). A refusal is
/// 403 <c>Forbidden.NoPermission</c> with an <c>AccessDeniedDetail</c> object, the shape the Alibaba Cloud SDKs
/// read from a RAM denial.
/// </summary>
internal sealed class RamAuthorizer(RamPolicyFile policies, KmsStateStore store, ServiceIdentity identity, TimeProvider time)
{
    public void Authorize(Caller caller, string version, string action, KmsRequest request, IPAddress? sourceIp, bool secureTransport)
    {
        var (attached, principalType, displayName) = PoliciesOf(caller, policies.Current());
        if (attached is null)
        {
            return;
        }
        var ramAction = (version == OperationRegistry.StsVersion ? "sts:" : "kms:") + action;
        var context = new RamRequestContext(sourceIp, secureTransport, time.GetUtcNow());
        foreach (var resource in RequiredResources(version, action, request))
        {
            var decision = RamPolicyEvaluator.Evaluate(attached, ramAction, resource, context);
            if (decision != RamDecision.Allowed)
            {
                throw KmsErrors.NoPermission(Detail(ramAction, resource, decision, principalType, displayName));
            }
        }
    }

    private (IReadOnlyList<RamPolicy>? Policies, string PrincipalType, string DisplayName) PoliciesOf(Caller caller, RamPolicyBook book)
    {
        if (!caller.IsTemporary)
        {
            return (book.ForAccessKey(caller.AccessKeyId), "SubUser", caller.AccessKeyId);
        }
        var session = store.Read(state => state.StsCredentials
            .Where(c => c.AccessKeyId == caller.AccessKeyId)
            .Select(c => (c.RoleArn, c.RoleSessionName))
            .FirstOrDefault());
        if (session.RoleArn is null)
        {
            return (null, "", "");
        }
        var roleName = session.RoleArn[(session.RoleArn.LastIndexOf('/') + 1)..];
        return (book.ForRole(session.RoleArn), "AssumedRoleUser", $"{roleName}:{session.RoleSessionName}");
    }

    /// <summary>
    /// The ARNs an operation is authorized on. Containers for ListKeys/CreateKey (<c>…:key</c>) and ListAliases
    /// (<c>…:alias</c>); the alias and the key for CreateAlias/UpdateAlias/DeleteAlias; the key for everything else.
    /// A KeyId given as an alias is authorized on the key it points to, as the operation acts on that key. When the
    /// resource cannot be named (a parameter missing, an unknown alias, a blob that is not ours) nothing is
    /// checked here and the operation answers its own MissingParameter / not-found / InvalidParameter.
    /// </summary>
    internal IEnumerable<string> RequiredResources(string version, string action, KmsRequest request)
    {
        if (version == OperationRegistry.StsVersion)
        {
            return request.Parameter("RoleArn") is { Length: > 0 } roleArn ? [roleArn] : [];
        }
        return action switch
        {
            "CreateKey" or "ListKeys" => [KeyContainer],
            "ListAliases" => [AliasContainer],
            "Decrypt" => KeyOfBlob(request.Parameter("CiphertextBlob")),
            "ReEncrypt" => KeyOfBlob(request.Parameter("CiphertextBlob")).Concat(KeyOf(request.Parameter("DestinationKeyId"))),
            "CreateAlias" or "UpdateAlias" => AliasArn(request.Parameter("AliasName")).Concat(KeyOf(request.Parameter("KeyId"))),
            "DeleteAlias" => AliasArn(request.Parameter("AliasName")).Concat(KeyOf(request.Parameter("AliasName"))),
            _ => KeyOf(request.Parameter("KeyId")),
        };
    }

    private string KeyContainer => $"acs:kms:{identity.Region}:{identity.AccountId}:key";

    private string AliasContainer => $"acs:kms:{identity.Region}:{identity.AccountId}:alias";

    private IEnumerable<string> AliasArn(string? aliasName) =>
        aliasName is { Length: > 0 } name ? [identity.AliasArn(name.Trim())] : [];

    /// <summary>The key ARN a KeyId parameter (id, alias, or ARN of either) stands for.</summary>
    private IEnumerable<string> KeyOf(string? keyIdParameter)
    {
        if (keyIdParameter is not { Length: > 0 })
        {
            return [];
        }
        var reference = keyIdParameter.Trim();
        var ownPrefix = $"acs:kms:{identity.Region}:{identity.AccountId}:";
        if (reference.StartsWith("acs:kms:", StringComparison.Ordinal))
        {
            if (!reference.StartsWith(ownPrefix, StringComparison.Ordinal) || reference.StartsWith(ownPrefix + "key/", StringComparison.Ordinal))
            {
                // A key ARN names itself (another region's or account's too: RAM evaluates it as written).
                return [reference];
            }
            reference = reference[ownPrefix.Length..];
        }
        if (!reference.StartsWith("alias/", StringComparison.Ordinal))
        {
            return [identity.KeyArn(reference)];
        }
        var keyId = store.Read(state => state.Aliases.FirstOrDefault(a => a.AliasName == reference)?.KeyId);
        return keyId is null ? [] : [identity.KeyArn(keyId)];
    }

    private IEnumerable<string> KeyOfBlob(string? blobParameter)
    {
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(blobParameter?.Trim() ?? string.Empty);
        }
        catch (FormatException)
        {
            return [];
        }
        if (CiphertextBlobCodec.ReadKeyVersionId(blob) is not { } versionId)
        {
            return [];
        }
        var keyId = store.Read(state => state.Keys.FirstOrDefault(k => k.Versions.Any(v => v.KeyVersionId == versionId))?.KeyId);
        return keyId is null ? [] : [identity.KeyArn(keyId)];
    }

    private JsonObject Detail(string action, string resource, RamDecision decision, string principalType, string displayName)
    {
        // The real EncodedDiagnosticMessage is opaque (RAM's DecodeDiagnosticMessage reads it); this server's is
        // base64 JSON of the same facts, so a test or a curious user can read it without RAM.
        var diagnostic = new JsonObject
        {
            ["AuthAction"] = action,
            ["AuthResource"] = resource,
            ["NoPermissionType"] = decision.ToString(),
            ["AuthPrincipalType"] = principalType,
            ["AuthPrincipalDisplayName"] = displayName,
        };
        return new JsonObject
        {
            ["PolicyType"] = "AccountLevelIdentityBasedPolicy",
            ["AuthPrincipalOwnerId"] = identity.AccountId,
            ["EncodedDiagnosticMessage"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(diagnostic.ToJsonString())),
            ["AuthPrincipalType"] = principalType,
            ["AuthPrincipalDisplayName"] = displayName,
            ["NoPermissionType"] = decision.ToString(),
            ["AuthAction"] = action,
        };
    }
}
