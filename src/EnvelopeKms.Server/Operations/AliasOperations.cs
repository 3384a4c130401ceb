using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId. An alias is
/// <c>alias/</c> + 1–255 of letters, digits, <c>_ - /</c>, not under the reserved <c>alias/acs</c>
/// prefix, unique per account and region; a key may have many aliases, an alias one key.
/// </summary>
internal sealed partial class AliasOperations(KmsStateStore store, KeyResolver resolver, ServiceIdentity identity)
{
    public void Register(OperationRegistry registry)
    {
        registry.Add(OperationRegistry.KmsVersion, "CreateAlias", CreateAlias);
        registry.Add(OperationRegistry.KmsVersion, "UpdateAlias", UpdateAlias);
        registry.Add(OperationRegistry.KmsVersion, "DeleteAlias", DeleteAlias);
        registry.Add(OperationRegistry.KmsVersion, "ListAliases", ListAliases);
        registry.Add(OperationRegistry.KmsVersion, "ListAliasesByKeyId", ListAliasesByKeyId);
    }

    private JsonObject CreateAlias(KmsRequest request)
    {
        var aliasName = ValidAliasName(request.Required("AliasName"));
        var keyId = request.Required("KeyId");
        store.Mutate(state =>
        {
            var key = resolver.Resolve(state, keyId);
            if (key.KeyState == KeyStates.PendingDeletion)
            {
                throw KmsErrors.StateModifiedFailed();
            }
            if (state.Aliases.Any(a => a.AliasName == aliasName))
            {
                throw KmsErrors.AliasAlreadyExists();
            }
            state.Aliases.Add(new AliasRecord { AliasName = aliasName, KeyId = key.KeyId });
            return 0;
        });
        return [];
    }

    private JsonObject UpdateAlias(KmsRequest request)
    {
        var aliasName = request.Required("AliasName").Trim();
        var keyId = request.Required("KeyId");
        store.Mutate(state =>
        {
            var alias = state.Aliases.FirstOrDefault(a => a.AliasName == aliasName) ?? throw KmsErrors.AliasNotFound();
            var target = resolver.Resolve(state, keyId);
            // Only the target's state matters (reference §2, UpdateAlias).
            if (target.KeyState == KeyStates.PendingDeletion)
            {
                throw KmsErrors.RejectedByState(KeyStates.PendingDeletion);
            }
            alias.KeyId = target.KeyId;
            return 0;
        });
        return [];
    }

    private JsonObject DeleteAlias(KmsRequest request)
    {
        var aliasName = request.Required("AliasName").Trim();
        store.Mutate(state => state.Aliases.RemoveAll(a => a.AliasName == aliasName) > 0 ? 0 : throw KmsErrors.AliasNotFound());
        return [];
    }

    private JsonObject ListAliases(KmsRequest request)
    {
        var aliases = store.Read(state => state.Aliases.Select(a => (a.AliasName, a.KeyId)).ToList());
        return Paging.Page(request, aliases, "Aliases", "Alias", AliasJson);
    }

    private JsonObject ListAliasesByKeyId(KmsRequest request)
    {
        var keyId = request.Required("KeyId");
        var aliases = store.Read(state =>
        {
            var key = resolver.Resolve(state, keyId);
            return state.Aliases.Where(a => a.KeyId == key.KeyId).Select(a => (a.AliasName, a.KeyId)).ToList();
        });
        return Paging.Page(request, aliases, "Aliases", "Alias", AliasJson);
    }

    private JsonObject AliasJson((string AliasName, string KeyId) alias) => new()
    {
        ["AliasName"] = alias.AliasName,
        ["AliasArn"] = identity.AliasArn(alias.AliasName),
        ["KeyId"] = alias.KeyId,
    };

    private static string ValidAliasName(string aliasName)
    {
        if (!AliasNamePattern().IsMatch(aliasName) || aliasName.StartsWith("alias/acs", StringComparison.Ordinal))
        {
            throw KmsErrors.InvalidParameter("AliasName");
        }
        return aliasName;
    }

    [GeneratedRegex(@"^alias/[A-Za-z0-9_/-]{1,255}\z")]
    private static partial Regex AliasNamePattern();
}
