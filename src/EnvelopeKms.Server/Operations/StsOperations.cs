using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EnvelopeKms.Server.Auth;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// The STS <c>AssumeRole</c> action (Version 2015-04-01) on the same server, so clients can test
/// the temporary-credential path end to end. Any well-formed role ARN is accepted (there is no
/// RAM here); the issued credentials work for every KMS action until they expire.
/// </summary>
internal sealed partial class StsOperations(CredentialStore credentials, ServiceIdentity identity, TimeSpan defaultDuration)
{
    public void Register(OperationRegistry registry) => registry.Add(OperationRegistry.StsVersion, "AssumeRole", AssumeRole);

    private JsonObject AssumeRole(KmsRequest request)
    {
        var roleArn = request.Required("RoleArn").Trim();
        var roleMatch = RoleArnPattern().Match(roleArn);
        if (!roleMatch.Success)
        {
            throw KmsErrors.InvalidParameter("RoleArn");
        }
        var sessionName = request.Required("RoleSessionName");
        if (!SessionNamePattern().IsMatch(sessionName))
        {
            throw KmsErrors.InvalidParameter("RoleSessionName");
        }
        // An explicit DurationSeconds follows the real range (900 s to 12 h); the server-wide default
        // (--sts-duration-seconds) may be shorter so that expiry can be tested without waiting.
        var duration = request.OptionalInt("DurationSeconds", 900, 43200) is { } seconds ? TimeSpan.FromSeconds(seconds) : defaultDuration;
        var issued = credentials.Issue(roleArn, sessionName, duration);
        var roleName = roleMatch.Groups["role"].Value;
        var roleId = RoleIdFor(roleArn);
        return new JsonObject
        {
            ["AssumedRoleUser"] = new JsonObject
            {
                ["Arn"] = $"acs:ram::{roleMatch.Groups["account"].Value}:assumed-role/{roleName}/{sessionName}",
                ["AssumedRoleId"] = $"{roleId}:{sessionName}",
            },
            ["Credentials"] = new JsonObject
            {
                ["AccessKeyId"] = issued.AccessKeyId,
                ["AccessKeySecret"] = issued.AccessKeySecret,
                ["SecurityToken"] = issued.SecurityToken,
                ["Expiration"] = KeyOperations.Format(issued.Expiration),
            },
        };
    }

    /// <summary>A stable numeric role id derived from the ARN, the way RAM role ids look.</summary>
    private string RoleIdFor(string roleArn)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(identity.AccountId + roleArn));
        return (BitConverter.ToUInt64(hash, 0) % 1_000_000_000_000_000_000UL).ToString("D18", System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^acs:ram::(?<account>[0-9]+):role/(?<role>[A-Za-z0-9._-]{1,64})\z", RegexOptions.IgnoreCase)]
    private static partial Regex RoleArnPattern();

    [GeneratedRegex(@"^[A-Za-z0-9._@-]{2,64}\z")]
    private static partial Regex SessionNamePattern();
}
