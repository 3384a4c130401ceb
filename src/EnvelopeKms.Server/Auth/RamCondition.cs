using System.Globalization;
using System.Net;
using System.Text.Json;

namespace EnvelopeKms.Server.Auth;

/// <summary>What a condition can be evaluated against: the request's transport facts and the time.</summary>
internal sealed record RamRequestContext(IPAddress? SourceIp, bool SecureTransport, DateTimeOffset CurrentTime);

/// <summary>
/// A statement's Condition block: operator → key → values. Every operator must hold (AND); within an operator every
/// key must hold (AND); a key holds when any of its values matches (OR), and for the negated operators
/// (StringNotEquals, StringNotLike, NotIpAddress) when none does. A key the request does not carry does not match.
/// Only the global keys a local server can know are supported: <c>acs:SourceIp</c>, <c>acs:SecureTransport</c>,
/// <c>acs:CurrentTime</c>.
/// </summary>
internal sealed class RamCondition
{
    public static readonly RamCondition None = new([]);

    private static readonly string[] KnownKeys = ["acs:SourceIp", "acs:SecureTransport", "acs:CurrentTime"];

    private readonly IReadOnlyList<Test> tests;

    private RamCondition(IReadOnlyList<Test> tests) => this.tests = tests;

    public bool IsSatisfiedBy(RamRequestContext context) => tests.All(test => test.Holds(context));

    public static RamCondition Parse(JsonElement block, string where)
    {
        if (block.ValueKind != JsonValueKind.Object)
        {
            throw RamPolicy.Invalid(where, "Condition must be a JSON object");
        }
        var tests = new List<Test>();
        foreach (var op in block.EnumerateObject())
        {
            if (op.Value.ValueKind != JsonValueKind.Object)
            {
                throw RamPolicy.Invalid(where, $"Condition operator '{op.Name}' must map keys to values");
            }
            foreach (var key in op.Value.EnumerateObject())
            {
                var knownKey = KnownKeys.FirstOrDefault(k => string.Equals(k, key.Name, StringComparison.OrdinalIgnoreCase))
                    ?? throw RamPolicy.Invalid(where, $"condition key '{key.Name}' is not supported here (supported: {string.Join(", ", KnownKeys)})");
                var values = RamPolicy.StringOrArray(op.Value, key.Name, where);
                tests.Add(new Test(op.Name, knownKey, values, where));
            }
        }
        return new RamCondition(tests);
    }

    private sealed class Test
    {
        private readonly string op;
        private readonly string key;
        private readonly IReadOnlyList<string> values;
        private readonly bool negated;

        public Test(string op, string key, IReadOnlyList<string> values, string where)
        {
            this.op = op;
            this.key = key;
            this.values = values;
            negated = op is "StringNotEquals" or "StringNotLike" or "NotIpAddress";
            // Check the operator and every value once, at load time, so evaluation cannot fail.
            foreach (var value in values)
            {
                var valid = op switch
                {
                    "StringEquals" or "StringNotEquals" or "StringEqualsIgnoreCase" or "StringLike" or "StringNotLike" => true,
                    "Bool" => value is "true" or "false",
                    "IpAddress" or "NotIpAddress" => IPNetwork.TryParse(value.Contains('/') ? value : value + (value.Contains(':') ? "/128" : "/32"), out _),
                    "DateLessThan" or "DateLessThanEquals" or "DateGreaterThan" or "DateGreaterThanEquals" => TryDate(value, out _),
                    _ => throw RamPolicy.Invalid(where, $"condition operator '{op}' is not supported here"),
                };
                if (!valid)
                {
                    throw RamPolicy.Invalid(where, $"'{value}' is not a valid value for {op}");
                }
            }
        }

        public bool Holds(RamRequestContext context)
        {
            var actual = key switch
            {
                "acs:SourceIp" => context.SourceIp is { } ip ? Normalize(ip).ToString() : null,
                "acs:SecureTransport" => context.SecureTransport ? "true" : "false",
                _ => context.CurrentTime.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            };
            if (actual is null)
            {
                return false;
            }
            var any = values.Any(value => Matches(value, actual, context));
            return negated ? !any : any;
        }

        private bool Matches(string expected, string actual, RamRequestContext context) => op switch
        {
            "StringEquals" or "StringNotEquals" or "Bool" => expected == actual,
            "StringEqualsIgnoreCase" => string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase),
            "StringLike" or "StringNotLike" => RamWildcard.Matches(expected, actual, ignoreCase: false),
            "IpAddress" or "NotIpAddress" => context.SourceIp is { } ip
                && IPNetwork.Parse(expected.Contains('/') ? expected : expected + (expected.Contains(':') ? "/128" : "/32")).Contains(Normalize(ip)),
            _ => CompareDates(expected, context.CurrentTime),
        };

        private bool CompareDates(string expected, DateTimeOffset now)
        {
            TryDate(expected, out var limit);
            return op switch
            {
                "DateLessThan" => now < limit,
                "DateLessThanEquals" => now <= limit,
                "DateGreaterThan" => now > limit,
                _ => now >= limit,
            };
        }

        private static IPAddress Normalize(IPAddress ip) => ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;

        private static bool TryDate(string value, out DateTimeOffset date) =>
            DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out date);
    }
}
