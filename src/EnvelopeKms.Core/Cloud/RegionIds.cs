using System.Text.RegularExpressions;

namespace EnvelopeKms.Cloud;

/// <summary>
/// Alibaba Cloud region ids (<c>cn-hangzhou</c>, <c>ap-southeast-1</c>). A region id becomes part of a host name
/// (<c>kms.&lt;region&gt;.aliyuncs.com</c>), and regions are read from files and headers an attacker may write, so only
/// the standard form is accepted: it can never name another host.
/// </summary>
public static partial class RegionIds
{
    [GeneratedRegex(@"^[a-z0-9]+(-[a-z0-9]+)*\z")] // \z: "$" would also match before a final newline
    private static partial Regex Pattern();

    /// <summary>True for a region id of the standard form (lower-case letters and digits in dash-separated parts).</summary>
    public static bool IsValid(string? regionId) => !string.IsNullOrEmpty(regionId) && Pattern().IsMatch(regionId);

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="regionId"/> <see cref="IsValid"/>.</summary>
    public static void Validate(string regionId, string parameterName = "regionId")
    {
        if (!IsValid(regionId)) throw new ArgumentException($"'{regionId}' is not a region id such as cn-hangzhou.", parameterName);
    }
}
