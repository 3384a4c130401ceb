using System.Text;
using System.Text.Json;
using EnvelopeKms.Server.Hosting;
using EnvelopeKms.Server.Tests.Infrastructure;

namespace EnvelopeKms.Server.Tests;

/// <summary>RAM policies enforced over HTTP: the resources each action is checked on, and the denial's shape.</summary>
public sealed class RamAuthorizationTests : IAsyncDisposable
{
    private const string Account = "1234567890123456";
    private const string Arn = "acs:kms:cn-hangzhou:" + Account;
    private const string RoleArn = "acs:ram::" + Account + ":role/rotation";
    private readonly string policyFile = Path.Combine(Path.GetTempPath(), "ekms-policy-" + Guid.NewGuid().ToString("N") + ".json");
    private TestServer? server;

    private async Task<TestServer> Start(string initialPolicies = "{}")
    {
        File.WriteAllText(policyFile, initialPolicies);
        server = await TestServer.StartAsync(o =>
        {
            o.AccessKeys = new() { ["testid"] = "testsecret", ["app"] = "app-secret" };
            o.PolicyFile = policyFile;
        });
        return server;
    }

    private KmsTestClient Admin => server!.Client();

    private KmsTestClient App => server!.Client(SigningMode.V3, "app", "app-secret");

    /// <summary>Gives the AccessKey "app" exactly these statements (the file is re-read on the next call).</summary>
    private void Grant(string statements, string roles = "{}") =>
        File.WriteAllText(policyFile, "{\"AccessKeys\":{\"app\":{\"Version\":\"1\",\"Statement\":[" + statements + "]}},\"Roles\":" + roles + "}");

    private static string Allow(string action, string resource) => $$"""{"Effect":"Allow","Action":"{{action}}","Resource":"{{resource}}"}""";

    private static Dictionary<string, string> P(params (string Name, string Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    /// <summary>Asserts a RAM denial and returns the action and resource from its diagnostic message.</summary>
    private static (string Action, string Resource, string Type) Denied(ApiResponse response)
    {
        Assert.True(response.Status == 403, response.ToString());
        Assert.Equal("Forbidden.NoPermission", response.Code);
        Assert.Equal("This operation is forbidden by permission system.", response.Message);
        Assert.Contains("q=Forbidden.NoPermission&product=Kms", response.Get("Recommend"));
        var detail = response.Body.GetProperty("AccessDeniedDetail");
        Assert.Equal(Account, detail.GetProperty("AuthPrincipalOwnerId").GetString());
        Assert.Equal("AccountLevelIdentityBasedPolicy", detail.GetProperty("PolicyType").GetString());
        var diagnostic = JsonDocument.Parse(Convert.FromBase64String(detail.GetProperty("EncodedDiagnosticMessage").GetString()!)).RootElement;
        Assert.Equal(detail.GetProperty("AuthAction").GetString(), diagnostic.GetProperty("AuthAction").GetString());
        return (detail.GetProperty("AuthAction").GetString()!, diagnostic.GetProperty("AuthResource").GetString()!, detail.GetProperty("NoPermissionType").GetString()!);
    }

    [Fact]
    public async Task Principals_the_file_does_not_name_are_unrestricted_and_named_ones_get_nothing_by_default()
    {
        await Start("""{"AccessKeys":{"app":{"Version":"1","Statement":[]}}}""");
        var key = await Admin.CreateKey();
        await Admin.Ok("GenerateDataKey", P(("KeyId", key)));
        var (action, resource, type) = Denied(await App.Call("GenerateDataKey", P(("KeyId", key))));
        Assert.Equal(("kms:GenerateDataKey", $"{Arn}:key/{key}", "ImplicitDeny"), (action, resource, type));
    }

    [Fact]
    public async Task A_key_is_usable_only_for_the_actions_granted_on_it_and_denied_calls_do_nothing()
    {
        await Start();
        var key1 = await Admin.CreateKey();
        var key2 = await Admin.CreateKey();
        Grant(Allow("kms:GenerateDataKey", $"{Arn}:key/{key1}"));
        var dataKey = await App.Ok("GenerateDataKey", P(("KeyId", key1)));
        Assert.Equal(("kms:GenerateDataKey", $"{Arn}:key/{key2}", "ImplicitDeny"), Denied(await App.Call("GenerateDataKey", P(("KeyId", key2)))));
        Assert.Equal(("kms:Decrypt", $"{Arn}:key/{key1}", "ImplicitDeny"), Denied(await App.Call("Decrypt", P(("CiphertextBlob", dataKey.Get("CiphertextBlob"))))));
        Assert.Equal(("kms:CreateKey", $"{Arn}:key", "ImplicitDeny"), Denied(await App.Call("CreateKey")));
        Assert.Equal(("kms:ListKeys", $"{Arn}:key", "ImplicitDeny"), Denied(await App.Call("ListKeys")));
        Assert.Equal(("kms:ListAliases", $"{Arn}:alias", "ImplicitDeny"), Denied(await App.Call("ListAliases")));
        Assert.Equal(("kms:ScheduleKeyDeletion", $"{Arn}:key/{key1}", "ImplicitDeny"),
            Denied(await App.Call("ScheduleKeyDeletion", P(("KeyId", key1), ("PendingWindowInDays", "7")))));
        Assert.Equal("Enabled", (await Admin.Describe(key1)).GetProperty("KeyState").GetString());
        Assert.Equal(2, (await Admin.Ok("ListKeys")).Body.GetProperty("TotalCount").GetInt32());
    }

    [Fact]
    public async Task Decrypt_is_checked_on_the_key_of_the_blob_and_an_alias_on_the_key_it_points_to()
    {
        await Start();
        var key1 = await Admin.CreateKey();
        var key2 = await Admin.CreateKey();
        await Admin.Ok("CreateAlias", P(("AliasName", "alias/one"), ("KeyId", key1)));
        await Admin.Ok("CreateAlias", P(("AliasName", "alias/two"), ("KeyId", key2)));
        var blob1 = (await Admin.Ok("GenerateDataKey", P(("KeyId", key1)))).Get("CiphertextBlob");
        var blob2 = (await Admin.Ok("GenerateDataKey", P(("KeyId", key2)))).Get("CiphertextBlob");
        Grant(Allow("kms:Decrypt", $"{Arn}:key/{key1}") + "," + Allow("kms:Encrypt", $"{Arn}:key/{key1}"));

        await App.Ok("Decrypt", P(("CiphertextBlob", blob1)));
        Assert.Equal(("kms:Decrypt", $"{Arn}:key/{key2}", "ImplicitDeny"), Denied(await App.Call("Decrypt", P(("CiphertextBlob", blob2)))));
        await App.Ok("Encrypt", P(("KeyId", "alias/one"), ("Plaintext", "aGVsbG8=")));
        await App.Ok("Encrypt", P(("KeyId", $"{Arn}:alias/one"), ("Plaintext", "aGVsbG8=")));
        Assert.Equal(("kms:Encrypt", $"{Arn}:key/{key2}", "ImplicitDeny"), Denied(await App.Call("Encrypt", P(("KeyId", "alias/two"), ("Plaintext", "aGVsbG8=")))));
        // What cannot be named is left to the operation: an unknown alias is not found, a foreign blob invalid.
        Assert.Equal("Forbidden.AliasNotFound", (await App.Call("Encrypt", P(("KeyId", "alias/none"), ("Plaintext", "aGVsbG8=")))).Code);
        Assert.Equal("InvalidParameter", (await App.Call("Decrypt", P(("CiphertextBlob", "bm90IG91cnM=")))).Code);
    }

    [Fact]
    public async Task CreateAlias_needs_the_alias_and_the_key_and_DeleteAlias_the_alias_and_its_key()
    {
        await Start();
        var key = await Admin.CreateKey();
        var create = P(("AliasName", "alias/app"), ("KeyId", key));
        Grant(Allow("kms:CreateAlias", $"{Arn}:alias/app"));
        Assert.Equal(("kms:CreateAlias", $"{Arn}:key/{key}", "ImplicitDeny"), Denied(await App.Call("CreateAlias", create)));
        Grant(Allow("kms:CreateAlias", $"{Arn}:key/*"));
        Assert.Equal(("kms:CreateAlias", $"{Arn}:alias/app", "ImplicitDeny"), Denied(await App.Call("CreateAlias", create)));
        Grant(Allow("kms:CreateAlias", $"{Arn}:alias/app") + "," + Allow("kms:CreateAlias", $"{Arn}:key/{key}") + "," + Allow("kms:DeleteAlias", $"{Arn}:alias/*"));
        await App.Ok("CreateAlias", create);
        Assert.Equal(("kms:DeleteAlias", $"{Arn}:key/{key}", "ImplicitDeny"), Denied(await App.Call("DeleteAlias", P(("AliasName", "alias/app")))));
        Grant(Allow("kms:DeleteAlias", "*"));
        await App.Ok("DeleteAlias", P(("AliasName", "alias/app")));
    }

    [Fact]
    public async Task An_explicit_Deny_wins_and_says_so()
    {
        await Start();
        var key = await Admin.CreateKey();
        Grant(Allow("kms:*", "*") + "," + """{"Effect":"Deny","Action":"kms:Disable*","Resource":"*"}""");
        await App.Ok("DescribeKey", P(("KeyId", key)));
        Assert.Equal(("kms:DisableKey", $"{Arn}:key/{key}", "ExplicitDeny"), Denied(await App.Call("DisableKey", P(("KeyId", key)))));
    }

    [Fact]
    public async Task AssumeRole_needs_sts_AssumeRole_on_the_role_and_the_session_gets_the_roles_policies()
    {
        await Start();
        var key1 = await Admin.CreateKey();
        var key2 = await Admin.CreateKey();
        var assume = P(("RoleArn", RoleArn), ("RoleSessionName", "ci"));
        Grant(Allow("kms:Encrypt", "*"));
        var refused = await server!.Client(SigningMode.V1Mixed, "app", "app-secret").Call("AssumeRole", assume, version: "2015-04-01");
        Assert.Equal(403, refused.Status);
        Assert.Equal("Forbidden.NoPermission", refused.Code);
        Assert.Contains("product=Sts", refused.Get("Recommend"));
        Assert.Equal("sts:AssumeRole", refused.Body.GetProperty("AccessDeniedDetail").GetProperty("AuthAction").GetString());

        Grant(Allow("sts:AssumeRole", RoleArn),
            "{\"" + RoleArn + "\":{\"Version\":\"1\",\"Statement\":[" + Allow("kms:DescribeKey", $"{Arn}:key/{key1}") + "]}}");
        var assumed = await server.Client(SigningMode.V1Mixed, "app", "app-secret").Call("AssumeRole", assume, version: "2015-04-01");
        Assert.True(assumed.Status == 200, assumed.ToString());
        var credentials = assumed.Body.GetProperty("Credentials");
        var session = server.Client(SigningMode.V3, credentials.GetProperty("AccessKeyId").GetString()!,
            credentials.GetProperty("AccessKeySecret").GetString()!, credentials.GetProperty("SecurityToken").GetString()!);
        await session.Ok("DescribeKey", P(("KeyId", key1)));
        var denied = await session.Call("DescribeKey", P(("KeyId", key2)));
        Assert.Equal(("kms:DescribeKey", $"{Arn}:key/{key2}", "ImplicitDeny"), Denied(denied));
        Assert.Equal("AssumedRoleUser", denied.Body.GetProperty("AccessDeniedDetail").GetProperty("AuthPrincipalType").GetString());
        Assert.Equal("rotation:ci", denied.Body.GetProperty("AccessDeniedDetail").GetProperty("AuthPrincipalDisplayName").GetString());
        // The role's policies, not the AccessKey's: the session may not Encrypt although "app" may.
        Assert.Equal("kms:Encrypt", Denied(await session.Call("Encrypt", P(("KeyId", key1), ("Plaintext", "aGVsbG8=")))).Action);
    }

    [Fact]
    public async Task A_policy_file_that_breaks_fails_closed_until_it_is_fixed()
    {
        await Start();
        var key = await Admin.CreateKey();
        Grant(Allow("kms:DescribeKey", "*"));
        await App.Ok("DescribeKey", P(("KeyId", key)));
        File.WriteAllText(policyFile, """{"AccessKeys":{"app":""");
        Assert.Equal("InternalFailure", (await App.Call("DescribeKey", P(("KeyId", key)))).Code);
        Assert.Equal("InternalFailure", (await Admin.Call("DescribeKey", P(("KeyId", key)))).Code);
        File.Delete(policyFile);
        Assert.Equal("InternalFailure", (await Admin.Call("DescribeKey", P(("KeyId", key)))).Code);
        Grant(Allow("kms:DescribeKey", "*"));
        await App.Ok("DescribeKey", P(("KeyId", key)));
    }

    [Fact]
    public async Task Denials_are_counted_under_their_code()
    {
        await Start("""{"AccessKeys":{"app":{"Version":"1","Statement":[]}}}""");
        await App.Call("ListKeys");
        var stats = await server!.Http.GetStringAsync(new Uri(server.Endpoint, "/__control/stats"));
        Assert.Equal(1, JsonDocument.Parse(stats).RootElement.GetProperty("operations").GetProperty("ListKeys").GetProperty("errors").GetProperty("Forbidden.NoPermission").GetInt32());
    }

    [Fact]
    public async Task A_bad_policy_file_stops_the_server_from_starting_and_names_the_file()
    {
        File.WriteAllText(policyFile, """{"AccessKeys":{"app":{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*"}]}}}""");
        await using var kms = new KmsServer();
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => kms.StartAsync(new KmsServerOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "ekms-test-" + Guid.NewGuid().ToString("N")),
            PolicyFile = policyFile,
        }));
        Assert.Contains($"{policyFile}: AccessKeys['app'], statement 1: Resource is required", error.Message);
        await Assert.ThrowsAsync<FileNotFoundException>(() => new KmsServer().StartAsync(new KmsServerOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "ekms-test-" + Guid.NewGuid().ToString("N")),
            PolicyFile = policyFile + ".missing",
        }));
    }

    [Fact]
    public void The_command_line_takes_a_policy_file() =>
        Assert.Equal("/etc/kms/policies.json", CommandLine.Parse(["--policy-file", "/etc/kms/policies.json"], _ => null).Options!.PolicyFile);

    public async ValueTask DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
        File.Delete(policyFile);
    }
}
