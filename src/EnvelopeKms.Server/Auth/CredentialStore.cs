using System.Security.Cryptography;
using EnvelopeKms.Server.Store;

namespace EnvelopeKms.Server.Auth;

/// <summary>A caller's secret, and for temporary credentials the token and expiry that go with it.</summary>
internal sealed record Credential(string AccessKeyId, string AccessKeySecret, string? SecurityToken, DateTimeOffset? Expiration);

/// <summary>
/// The AccessKey pairs the server accepts: the configured long-term pairs, and the temporary
/// (STS) credentials it issued itself through AssumeRole, which are persisted with the state.
/// </summary>
internal sealed class CredentialStore(IReadOnlyDictionary<string, string> accessKeys, KmsStateStore store, TimeProvider time)
{
    private const string StsPrefix = "STS.";

    public Credential? Find(string accessKeyId)
    {
        if (accessKeys.TryGetValue(accessKeyId, out var secret))
        {
            return new Credential(accessKeyId, secret, null, null);
        }
        if (!accessKeyId.StartsWith(StsPrefix, StringComparison.Ordinal))
        {
            return null;
        }
        return store.Read(state => state.StsCredentials
            .Where(c => c.AccessKeyId == accessKeyId)
            .Select(c => new Credential(c.AccessKeyId, c.AccessKeySecret, c.SecurityToken, c.Expiration))
            .FirstOrDefault());
    }

    /// <summary>Issues and persists a new temporary credential for an assumed role session.</summary>
    public StsCredentialRecord Issue(string roleArn, string roleSessionName, TimeSpan duration)
    {
        var record = new StsCredentialRecord
        {
            AccessKeyId = StsPrefix + RandomToken(18),
            AccessKeySecret = RandomToken(30),
            // Real tokens are long opaque base64 strings starting "CAIS"; clients only pass them back.
            SecurityToken = "CAIS" + RandomToken(180),
            // Whole seconds: the wire format has no fraction, and clients compare against it.
            Expiration = DateTimeOffset.FromUnixTimeSeconds((time.GetUtcNow() + duration).ToUnixTimeSeconds()),
            RoleArn = roleArn,
            RoleSessionName = roleSessionName,
        };
        store.Mutate(state =>
        {
            state.StsCredentials.Add(record);
            return record;
        });
        return record;
    }

    private static string RandomToken(int length)
    {
        const string alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        return RandomNumberGenerator.GetString(alphabet, length);
    }
}
