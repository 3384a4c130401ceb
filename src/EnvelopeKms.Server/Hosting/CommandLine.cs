using System.Globalization;
using EnvelopeKms.Server.Faults;

namespace EnvelopeKms.Server.Hosting;

/// <summary>What <c>Program</c> should do after parsing its arguments.</summary>
internal sealed record CommandLineRequest(KmsServerOptions? Options, bool ShowHelp, bool ExitOnStdinClose);

/// <summary>Parses the server's flags (see <see cref="HelpText"/>) and the environment fallbacks.</summary>
internal static class CommandLine
{
    public const string AccessKeysVariable = "ENVELOPEKMS_SERVER_ACCESS_KEYS";
    public const string AdminTokenVariable = "ENVELOPEKMS_SERVER_ADMIN_TOKEN";

    public static string HelpText => $"""
        EnvelopeKms.Server: a local server speaking the Alibaba Cloud KMS API (2016-01-20) and STS AssumeRole.

        FOR DEVELOPMENT AND TESTS ONLY, not for protecting production secrets: key material is
        stored unprotected in the data directory.

        Usage: dotnet EnvelopeKms.Server.dll --data-dir DIR [options]

          --data-dir DIR              state directory (a new one is created 0700; an existing one keeps
                                      its mode, with a warning if others may enter it; state.json is 0600) [./kms-data]
          --port N                    TCP port, 0 = pick a free one                        [0]
          --bind ADDR                 IP address to listen on                             [127.0.0.1]
                                      Not loopback: refused unless access keys are configured (and
                                      never with the development pair).
          --access-key-file FILE      accepted AccessKey pairs, one ID:SECRET a line (# comments);
                                      or ${AccessKeysVariable}=ID:SECRET,ID2:SECRET2. Without any,
                                      the development pair {KmsServerOptions.DefaultAccessKeyId} / {KmsServerOptions.DefaultAccessKeySecret} is accepted,
                                      on loopback only, from every local user.
          --access-key ID:SECRET      the same on the command line, repeatable: avoid it, since other
                                      users can read a process's arguments (/proc/PID/cmdline, ps)
          --region ID                 region in ARNs                                        [cn-hangzhou]
          --policy-file PATH          RAM policies per AccessKeyId / role ARN (JSON), enforced on every call;
                                      principals it does not name are unrestricted
          --account-id N              account id in ARNs                                    [1234567890123456]
          --sts-duration-seconds N    lifetime of AssumeRole credentials without DurationSeconds [3600]
          --exit-on-stdin-close       stop when standard input reaches end of file
          --enable-control            serve /__control/faults, /__control/stats, /__control/reset-stats
          --admin-token-file FILE     require header X-EnvelopeKms-Admin-Token with the token in FILE
                                      (or ${AdminTokenVariable}); without one control is loopback-only
          --admin-token TOKEN         the same on the command line (visible to other users: avoid)
          --throttle-rate R           share of calls throttled (0..1)
          --throttle-code CODE        Throttling.User (400) | Throttling (400) | Rejected.Throttling (429)
          --error-rate R              share of calls failing with 500/503
          --error-status N            500, 503, or 0 = either                              [0]
          --drop-rate R               share of calls whose connection is aborted
          --latency-ms N              delay added to every call
          --fault-operations A,B      apply faults only to these actions
          --fault-seed N              seed of the fault generator                           [0]
          --help                      this text

        On start it prints one line: EnvelopeKms.Server listening on http://127.0.0.1:<port>
        It stops on SIGINT/SIGTERM.
        """;

    public static CommandLineRequest Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        var options = new KmsServerOptions { DataDirectory = "kms-data" };
        var faults = new FaultSettings();
        var exitOnStdinClose = false;
        for (var i = 0; i < args.Count; i++)
        {
            var flag = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{flag} needs a value.");
            switch (flag)
            {
                case "--help" or "-h" or "-?":
                    return new CommandLineRequest(null, true, false);
                case "--data-dir": options.DataDirectory = Value(); break;
                case "--port": options.Port = Int(flag, Value(), 0, 65535); break;
                case "--bind": options.BindAddress = Value(); break;
                case "--access-key": AddAccessKey(options, Value()); break;
                case "--access-key-file": AddAccessKeysFromFile(options, Value()); break;
                case "--region": options.Region = Value(); break;
                case "--policy-file": options.PolicyFile = Value(); break;
                case "--account-id": options.AccountId = Value(); break;
                case "--sts-duration-seconds": options.StsDuration = TimeSpan.FromSeconds(Int(flag, Value(), 1, 86400 * 7)); break;
                case "--exit-on-stdin-close": exitOnStdinClose = true; break;
                case "--enable-control": options.EnableControl = true; break;
                case "--admin-token": options.AdminToken = Value(); break;
                case "--admin-token-file": options.AdminToken = ReadSecretFile(flag, Value()).Trim(); break;
                case "--throttle-rate": faults = faults with { ThrottleRate = Rate(flag, Value()) }; break;
                case "--throttle-code": faults = faults with { ThrottleCode = Value() }; break;
                case "--error-rate": faults = faults with { ErrorRate = Rate(flag, Value()) }; break;
                case "--error-status": faults = faults with { ErrorStatus = Int(flag, Value(), 0, 599) }; break;
                case "--drop-rate": faults = faults with { DropRate = Rate(flag, Value()) }; break;
                case "--latency-ms": faults = faults with { LatencyMs = Int(flag, Value(), 0, 600_000) }; break;
                case "--fault-operations": faults = faults with { Operations = [.. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] }; break;
                case "--fault-seed": faults = faults with { Seed = Int(flag, Value(), int.MinValue, int.MaxValue) }; break;
                default: throw new ArgumentException($"Unknown argument '{flag}'. Try --help.");
            }
        }
        if (options.AccessKeys.Count == 0 && environment(AccessKeysVariable) is { Length: > 0 } fromEnvironment)
        {
            foreach (var pair in fromEnvironment.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                AddAccessKey(options, pair);
            }
        }
        options.AdminToken ??= environment(AdminTokenVariable) is { Length: > 0 } token ? token : null;
        faults.Validate();
        options.Faults = faults;
        return new CommandLineRequest(options, false, exitOnStdinClose);
    }

    /// <summary>One ID:SECRET a line; blank lines and lines starting with # are skipped. Errors name the line, never its text.</summary>
    private static void AddAccessKeysFromFile(KmsServerOptions options, string path)
    {
        var lines = ReadSecretFile("--access-key-file", path).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            try
            {
                AddAccessKey(options, line);
            }
            catch (ArgumentException)
            {
                throw new ArgumentException($"--access-key-file {path}: line {i + 1} is not ID:SECRET.");
            }
        }
    }

    private static string ReadSecretFile(string flag, string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{flag}: cannot read '{path}': {e.Message}");
        }
    }

    private static void AddAccessKey(KmsServerOptions options, string pair)
    {
        var colon = pair.IndexOf(':');
        if (colon <= 0 || colon == pair.Length - 1)
        {
            // Do not echo the value: it contains a secret.
            throw new ArgumentException("--access-key must be ID:SECRET.");
        }
        options.AccessKeys[pair[..colon]] = pair[(colon + 1)..];
    }

    private static int Int(string flag, string text, int min, int max) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new ArgumentException($"{flag} must be an integer between {min} and {max}.");

    private static double Rate(string flag, string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value is >= 0 and <= 1
            ? value
            : throw new ArgumentException($"{flag} must be a number between 0 and 1.");
}
