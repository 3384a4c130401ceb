using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

/// <summary>A RAM denial is turned into "this needs kms:X on &lt;resource&gt;", named from the request that was made.</summary>
public class KmsPermissionDeniedTests
{
    private const string DeniedMessage = "This operation is forbidden by permission system.";

    private static StubResponse Denial(string? ownerId = "1234567890123456")
    {
        var detail = ownerId is null ? "" :
            $",\"AccessDeniedDetail\":{{\"PolicyType\":\"AccountLevelIdentityBasedPolicy\",\"AuthPrincipalOwnerId\":\"{ownerId}\",\"NoPermissionType\":\"ImplicitDeny\",\"AuthAction\":\"kms:Whatever\",\"Nested\":{{\"AuthPrincipalOwnerId\":\"999\"}}}}";
        return new StubResponse(403, $"{{\"RequestId\":\"R-1\",\"HostId\":\"h\",\"Code\":\"Forbidden.NoPermission\",\"Message\":\"{DeniedMessage}\"{detail}}}");
    }

    private static async Task<KmsException> Refused(Func<KmsClient, Task> call, StubResponse? answer = null)
    {
        await using var server = new LocalHttpServer(_ => answer ?? Denial());
        using var client = TestClients.For(server, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => call(client));
        Assert.Single(server.Requests);
        return e;
    }

    [Fact]
    public async Task GenerateDataKey_names_the_action_and_the_key_arn_with_the_callers_account()
    {
        var e = await Refused(c => c.GenerateDataKeyAsync("key-123"));
        Assert.Equal("Forbidden.NoPermission", e.Code);
        Assert.Equal(403, e.HttpStatus);
        Assert.Equal("kms:GenerateDataKey", e.RequiredPermission!.Action);
        Assert.Equal(["acs:kms:cn-test:1234567890123456:key/key-123"], e.RequiredPermission.Resources);
        Assert.StartsWith("KMS GenerateDataKey was refused by RAM: this needs kms:GenerateDataKey on acs:kms:cn-test:1234567890123456:key/key-123 (Forbidden.NoPermission, HTTP 403: ", e.Message);
        Assert.Contains("RequestId: R-1", e.Message);
        Assert.False(e.IsRetryable);
    }

    [Fact]
    public async Task Without_AccessDeniedDetail_the_account_is_a_wildcard()
    {
        var e = await Refused(c => c.EncryptAsync("key-9", new byte[] { 1 }), Denial(ownerId: null));
        Assert.Contains("this needs kms:Encrypt on acs:kms:cn-test:*:key/key-9 ", e.Message);
    }

    [Fact]
    public async Task An_account_id_that_is_not_digits_is_not_put_into_the_message()
    {
        var e = await Refused(c => c.EncryptAsync("key-9", new byte[] { 1 }), Denial(ownerId: "1 on everything; ignore"));
        Assert.Contains("acs:kms:cn-test:*:key/key-9", e.Message);
        Assert.DoesNotContain("ignore", e.Message);
    }

    [Fact]
    public async Task A_key_arn_names_itself()
    {
        var e = await Refused(c => c.EncryptAsync("acs:kms:cn-other:555:key/k-7", new byte[] { 1 }));
        Assert.Equal(["acs:kms:cn-other:555:key/k-7"], e.RequiredPermission!.Resources);
    }

    [Fact]
    public async Task An_alias_is_authorized_on_the_key_it_points_to()
    {
        var e = await Refused(c => c.DescribeKeyAsync("alias/app"));
        Assert.Contains("this needs kms:DescribeKey on the key alias/app points to (acs:kms:cn-test:1234567890123456:key/<key-id of alias/app>)", e.Message);
    }

    [Fact]
    public async Task Decrypt_names_the_key_the_file_header_gives()
    {
        var e = await Refused(c => c.DecryptAsync("YmxvYg==", null, "key-from-header"));
        Assert.Contains("this needs kms:Decrypt on acs:kms:cn-test:1234567890123456:key/key-from-header", e.Message);
        var bare = await Refused(c => c.DecryptAsync("YmxvYg=="));
        Assert.Contains("this needs kms:Decrypt on the key that encrypted the CiphertextBlob (acs:kms:cn-test:1234567890123456:key/<key-id>)", bare.Message);
    }

    [Fact]
    public async Task Containers_for_ListKeys_CreateKey_and_ListAliases()
    {
        Assert.Contains("this needs kms:ListKeys on acs:kms:cn-test:1234567890123456:key (", (await Refused(c => c.ListKeysAsync())).Message);
        Assert.Contains("this needs kms:CreateKey on acs:kms:cn-test:1234567890123456:key (", (await Refused(c => c.CreateKeyAsync())).Message);
        Assert.Contains("this needs kms:ListAliases on acs:kms:cn-test:1234567890123456:alias (", (await Refused(c => c.ListAliasesAsync())).Message);
    }

    [Fact]
    public async Task CreateAlias_needs_the_alias_and_the_key()
    {
        var e = await Refused(c => c.CreateAliasAsync("alias/app", "key-1"));
        Assert.Equal(["acs:kms:cn-test:1234567890123456:alias/app", "acs:kms:cn-test:1234567890123456:key/key-1"], e.RequiredPermission!.Resources);
        Assert.Contains("this needs kms:CreateAlias on acs:kms:cn-test:1234567890123456:alias/app and on acs:kms:cn-test:1234567890123456:key/key-1", e.Message);
    }

    [Fact]
    public async Task Other_refusals_carry_no_required_permission()
    {
        var e = await Refused(c => c.EncryptAsync("k", new byte[] { 1 }), StubResponse.Error(409, "Rejected.Disabled"));
        Assert.Null(e.RequiredPermission);
        Assert.DoesNotContain("this needs", e.Message);
    }
}
