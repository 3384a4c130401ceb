using System.Net;
using System.Text;
using System.Text.Json;
using EnvelopeKms.Server.Auth;

namespace EnvelopeKms.Server.Tests;

/// <summary>The policy evaluator on its own: parsing, wildcards, Deny precedence, conditions.</summary>
public class RamPolicyTests
{
    private const string Key1 = "acs:kms:cn-hangzhou:1234567890123456:key/key-1";
    private const string Key2 = "acs:kms:cn-hangzhou:1234567890123456:key/key-2";
    private static readonly RamRequestContext Loopback = new(IPAddress.Loopback, false, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static RamPolicy Policy(string json)
    {
        using var document = JsonDocument.Parse(json);
        return RamPolicy.Parse(document.RootElement, "test policy");
    }

    private static RamDecision Evaluate(string action, string resource, RamRequestContext? context = null, params string[] policies) =>
        RamPolicyEvaluator.Evaluate(policies.Select(Policy).ToList(), action, resource, context ?? Loopback);

    private const string AllowDecryptKey1 = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"acs:kms:cn-hangzhou:1234567890123456:key/key-1"}]}""";

    [Fact]
    public void Exactly_the_allowed_action_on_the_allowed_resource_is_allowed()
    {
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key1, null, AllowDecryptKey1));
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Encrypt", Key1, null, AllowDecryptKey1));
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key2, null, AllowDecryptKey1));
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key1));
    }

    [Fact]
    public void Actions_match_case_insensitively_resources_do_not()
    {
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:decrypt", Key1, null, AllowDecryptKey1));
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key1.ToUpperInvariant(), null, AllowDecryptKey1));
    }

    [Theory]
    [InlineData("kms:*", "*", true)]
    [InlineData("kms:Generate*", "acs:kms:*:*:key/*", true)]
    [InlineData("kms:GenerateDataKey", "acs:kms:cn-hangzhou:1234567890123456:key/key-?", true)]
    [InlineData("kms:GenerateDataKey", "acs:kms:cn-hangzhou:1234567890123456:key", false)]
    [InlineData("kms:Encrypt*", "*", false)]
    [InlineData("sts:*", "*", false)]
    [InlineData("*", "acs:kms:cn-shanghai:*", false)]
    public void Wildcards(string action, string resource, bool allowed)
    {
        var policy = $$"""{"Version":"1","Statement":[{"Effect":"Allow","Action":"{{action}}","Resource":"{{resource}}"}]}""";
        Assert.Equal(allowed ? RamDecision.Allowed : RamDecision.ImplicitDeny, Evaluate("kms:GenerateDataKey", Key1, null, policy));
    }

    [Theory]
    [InlineData("*", "", true)]
    [InlineData("a*", "a", true)]
    [InlineData("*b*d", "abcbd", true)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "ac", false)]
    [InlineData("key/*", "key", false)]
    [InlineData("*x", "abc", false)]
    public void Wildcard_matching(string pattern, string value, bool matches) =>
        Assert.Equal(matches, RamWildcard.Matches(pattern, value, ignoreCase: false));

    [Fact]
    public void A_matching_Deny_wins_over_any_Allow_in_any_policy()
    {
        const string allowAll = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}""";
        const string denyKey1 = """{"Version":"1","Statement":[{"Effect":"Deny","Action":["kms:Decrypt","kms:ReEncrypt"],"Resource":["acs:kms:*:*:key/key-1"]}]}""";
        Assert.Equal(RamDecision.ExplicitDeny, Evaluate("kms:Decrypt", Key1, null, allowAll, denyKey1));
        Assert.Equal(RamDecision.ExplicitDeny, Evaluate("kms:Decrypt", Key1, null, denyKey1, allowAll));
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key2, null, allowAll, denyKey1));
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Encrypt", Key1, null, allowAll, denyKey1));
    }

    [Fact]
    public void Conditions_on_source_ip_transport_and_time()
    {
        const string fromLoopback = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","127.0.0.1"]}}}]}""";
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key1, Loopback, fromLoopback));
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key1, Loopback with { SourceIp = IPAddress.Loopback.MapToIPv6() }, fromLoopback));
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key1, Loopback with { SourceIp = IPAddress.Parse("192.168.1.1") }, fromLoopback));

        const string denyWithoutTls = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"false"}}}]}""";
        Assert.Equal(RamDecision.ExplicitDeny, Evaluate("kms:Decrypt", Key1, Loopback, denyWithoutTls));
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key1, Loopback with { SecureTransport = true }, denyWithoutTls));

        const string until2025 = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2025-12-31T00:00:00Z"}}}]}""";
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key1, Loopback, until2025));
        Assert.Equal(RamDecision.Allowed, Evaluate("kms:Decrypt", Key1, Loopback with { CurrentTime = new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero) }, until2025));

        const string notFromLoopback = """{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":"127.0.0.0/8"}}}]}""";
        Assert.Equal(RamDecision.ImplicitDeny, Evaluate("kms:Decrypt", Key1, Loopback, notFromLoopback));
    }

    [Theory]
    [InlineData("""{"Statement":[]}""", "Version must be \"1\"")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"allow","Action":"kms:*","Resource":"*"}]}""", "Effect must be")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"kms:*","Resource":"*"}]}""", "unsupported statement element 'NotAction'")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}""", "Action must be a non-empty")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*"}]}""", "Resource is required")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:tag/env":"prod"}}}]}""", "condition key 'kms:tag/env' is not supported")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"acs:CurrentTime":"1"}}}]}""", "operator 'NumericLessThan' is not supported")]
    [InlineData("""{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"not-an-ip"}}}]}""", "'not-an-ip' is not a valid value for IpAddress")]
    public void Policies_the_evaluator_would_not_honour_are_refused_with_the_place(string json, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => Policy(json));
        Assert.Contains(expected, error.Message);
        Assert.StartsWith("test policy", error.Message);
    }

    [Fact]
    public void The_policy_file_maps_access_keys_and_roles_to_one_or_several_policies()
    {
        var book = RamPolicyBook.Parse(Encoding.UTF8.GetBytes($$"""
            {
              // comments are allowed, as in the RAM console's editor
              "AccessKeys": { "reader": {{AllowDecryptKey1}} },
              "Roles": { "acs:ram::1234567890123456:role/Rotation": [ {{AllowDecryptKey1}}, {{AllowDecryptKey1}} ] }
            }
            """), "policies.json");
        Assert.Single(book.ForAccessKey("reader")!);
        Assert.Null(book.ForAccessKey("READER"));
        Assert.Null(book.ForAccessKey("testid"));
        Assert.Equal(2, book.ForRole("acs:ram::1234567890123456:role/rotation")!.Count);
    }

    [Theory]
    [InlineData("""{"Users":{}}""", "unknown section 'Users'")]
    [InlineData("""{"Roles":{"rotation":{"Version":"1","Statement":[]}}}""", "must be a role ARN")]
    [InlineData("""{"AccessKeys":{"a":{"Version":"2","Statement":[]}}}""", "policies.json: AccessKeys['a']: Version")]
    [InlineData("""{"AccessKeys":""", "policies.json: not valid JSON")]
    public void A_bad_policy_file_is_refused_naming_the_file_and_principal(string json, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => RamPolicyBook.Parse(Encoding.UTF8.GetBytes(json), "policies.json"));
        Assert.Contains(expected, error.Message);
    }
}
