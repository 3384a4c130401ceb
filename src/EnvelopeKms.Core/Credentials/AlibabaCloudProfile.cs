using System.Globalization;
using System.Text.Json;

namespace EnvelopeKms.Credentials;

/// <summary>
/// One named profile from the aliyun CLI's <c>config.json</c> or from the ini <c>credentials</c> file, normalised to
/// the CLI's modes (<c>AK</c>, <c>StsToken</c>, <c>RamRoleArn</c>, <c>EcsRamRole</c>).
/// </summary>
public sealed class AlibabaCloudProfile
{
    public required string Name { get; init; }
    public required string Mode { get; init; }
    public required string FilePath { get; init; }
    public string? AccessKeyId { get; init; }
    public string? AccessKeySecret { get; init; }
    public string? SecurityToken { get; init; }
    public string? RamRoleName { get; init; }
    public string? RamRoleArn { get; init; }
    public string? RoleSessionName { get; init; }
    public int? DurationSeconds { get; init; }
    public string? Policy { get; init; }
    public string? ExternalId { get; init; }
    public string? StsRegion { get; init; }
    public bool EnableVpc { get; init; }
    public string? RegionId { get; init; }

    public override string ToString() => $"profile '{Name}' ({Mode}) in {FilePath}";

    /// <summary>Builds the provider for this profile's mode.</summary>
    public ICredentialsProvider CreateProvider(CredentialResolutionOptions options)
    {
        string source = $"profile '{Name}' ({FilePath})";
        switch (Mode)
        {
            case "AK":
                return new StaticCredentialsProvider(new AlibabaCloudCredentials(Require(AccessKeyId, "access_key_id"), Require(AccessKeySecret, "access_key_secret")), source);
            case "StsToken":
                return new StaticCredentialsProvider(new AlibabaCloudCredentials(Require(AccessKeyId, "access_key_id"),
                    Require(AccessKeySecret, "access_key_secret"), Require(SecurityToken, "sts_token")), source);
            case "RamRoleArn":
                var baseKeys = new StaticCredentialsProvider(new AlibabaCloudCredentials(Require(AccessKeyId, "access_key_id"),
                    Require(AccessKeySecret, "access_key_secret")), source);
                return new StsAssumeRoleCredentialsProvider(baseKeys, Require(RamRoleArn, "ram_role_arn"), RoleSessionName,
                    DurationSeconds is > 0 ? DurationSeconds.Value : 3600, Policy, ExternalId, options.StsEndpointFor(StsRegion, EnableVpc), options);
            case "EcsRamRole":
                return new EcsRamRoleCredentialsProvider(RamRoleName, options);
            default:
                throw new CredentialsException($"The {this} uses mode '{Mode}', which EnvelopeKms does not support (AK, StsToken, RamRoleArn, EcsRamRole).");
        }
    }

    private string Require(string? value, string field)
        => string.IsNullOrWhiteSpace(value) ? throw new CredentialsException($"The {this} has no {field}.") : value.Trim();

    /// <summary>Reads a profile from the aliyun CLI config: the named one, else the file's <c>current</c>, else <c>default</c>.</summary>
    public static AlibabaCloudProfile? TryLoadCliProfile(string path, string? profileName)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            // TryGetProperty throws InvalidOperationException on anything but an object (found by fuzzing: "8").
            if (root.ValueKind != JsonValueKind.Object)
                throw new CredentialsException($"The aliyun CLI configuration '{path}' is not a JSON object.");
            string name = profileName ?? Str(root, "current") ?? "default";
            if (!root.TryGetProperty("profiles", out var profiles) || profiles.ValueKind != JsonValueKind.Array) return null;
            foreach (var p in profiles.EnumerateArray())
            {
                if (p.ValueKind != JsonValueKind.Object || Str(p, "name") != name) continue;
                return new AlibabaCloudProfile
                {
                    Name = name,
                    FilePath = path,
                    Mode = Str(p, "mode") ?? "AK",
                    AccessKeyId = Str(p, "access_key_id"),
                    AccessKeySecret = Str(p, "access_key_secret"),
                    SecurityToken = Str(p, "sts_token"),
                    RamRoleName = Str(p, "ram_role_name"),
                    RamRoleArn = Str(p, "ram_role_arn"),
                    RoleSessionName = Str(p, "ram_session_name"),
                    DurationSeconds = Int(p, "expired_seconds"),
                    ExternalId = Str(p, "external_id"),
                    StsRegion = Str(p, "sts_region"),
                    EnableVpc = p.TryGetProperty("enable_vpc", out var vpc) && vpc.ValueKind == JsonValueKind.True,
                    RegionId = Str(p, "region_id"),
                };
            }
            return null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: JsonElement.GetString on a string that is not valid UTF-8.
            throw new CredentialsException($"The aliyun CLI configuration '{path}' is not valid JSON.", e);
        }
    }

    /// <summary>
    /// Reads a section of the ini credentials file (<c>type = access_key | ecs_ram_role | ram_role_arn</c>): the named
    /// one, else <c>default</c>.
    /// </summary>
    public static AlibabaCloudProfile? TryLoadIniProfile(string path, string? profileName)
    {
        if (!File.Exists(path)) return null;
        string name = profileName ?? "default";
        var section = ReadIniSection(path, name);
        if (section is null) return null;
        string type = section.GetValueOrDefault("type") ?? "access_key";
        string mode = type switch
        {
            "access_key" => "AK",
            "sts" => "StsToken",
            "ecs_ram_role" => "EcsRamRole",
            "ram_role_arn" => "RamRoleArn",
            _ => type,
        };
        return new AlibabaCloudProfile
        {
            Name = name,
            FilePath = path,
            Mode = mode,
            AccessKeyId = section.GetValueOrDefault("access_key_id"),
            AccessKeySecret = section.GetValueOrDefault("access_key_secret"),
            SecurityToken = section.GetValueOrDefault("security_token"),
            RamRoleName = section.GetValueOrDefault("role_name"),
            RamRoleArn = section.GetValueOrDefault("role_arn"),
            RoleSessionName = section.GetValueOrDefault("role_session_name"),
            DurationSeconds = int.TryParse(section.GetValueOrDefault("duration_seconds"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var d) ? d : null,
            Policy = section.GetValueOrDefault("policy"),
            ExternalId = section.GetValueOrDefault("external_id"),
            StsRegion = section.GetValueOrDefault("sts_region"),
            RegionId = section.GetValueOrDefault("region_id"),
        };
    }

    private static Dictionary<string, string>? ReadIniSection(string path, string sectionName)
    {
        Dictionary<string, string>? current = null, found = null;
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';') continue;
            if (line[0] == '[' && line[^1] == ']')
            {
                current = line[1..^1].Trim() == sectionName ? (found ??= new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)) : null;
                continue;
            }
            if (current is null) continue;
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var value = line[(eq + 1)..];
            // An inline comment starts at " #" or " ;" (AccessKey ids and secrets contain neither).
            int comment = IndexOfInlineComment(value);
            if (comment >= 0) value = value[..comment];
            current[line[..eq].Trim()] = value.Trim();
        }
        return found;
    }

    private static int IndexOfInlineComment(string value)
    {
        for (int i = 1; i < value.Length; i++)
        {
            if ((value[i] == '#' || value[i] == ';') && char.IsWhiteSpace(value[i - 1])) return i;
        }
        return -1;
    }

    private static string? Str(JsonElement e, string name)
        => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;

    private static int? Int(JsonElement e, string name)
        => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;
}
