using EnvelopeKms.Server.Protocol;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// Turns a KeyId parameter into a key: the key id itself, an alias name (<c>alias/...</c>), or an
/// ARN of either (<c>acs:kms:region:account:key/id</c>, <c>acs:kms:region:account:alias/...</c>).
/// </summary>
internal sealed class KeyResolver(ServiceIdentity identity)
{
    public KeyRecord Resolve(KmsState state, string keyIdParameter)
    {
        var reference = keyIdParameter.Trim();
        if (reference.StartsWith("acs:kms:", StringComparison.Ordinal))
        {
            var prefix = $"acs:kms:{identity.Region}:{identity.AccountId}:";
            if (!reference.StartsWith(prefix, StringComparison.Ordinal))
            {
                // Another region or account: not a key this service holds.
                throw KmsErrors.KeyNotFound();
            }
            reference = reference[prefix.Length..];
            if (reference.StartsWith("key/", StringComparison.Ordinal))
            {
                return FindById(state, reference["key/".Length..]);
            }
        }
        if (reference.StartsWith("alias/", StringComparison.Ordinal))
        {
            var alias = state.Aliases.FirstOrDefault(a => a.AliasName == reference) ?? throw KmsErrors.AliasNotFound();
            return FindById(state, alias.KeyId);
        }
        return FindById(state, reference);
    }

    public static KeyRecord FindById(KmsState state, string keyId) =>
        state.Keys.FirstOrDefault(k => k.KeyId == keyId) ?? throw KmsErrors.KeyNotFound();

    /// <summary>Cryptographic operations need an Enabled key; others answer Rejected.&lt;State&gt;.</summary>
    public static void RequireEnabled(KeyRecord key)
    {
        if (key.KeyState != KeyStates.Enabled)
        {
            throw KmsErrors.RejectedByState(key.KeyState);
        }
    }
}
