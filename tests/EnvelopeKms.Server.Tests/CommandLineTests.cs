using EnvelopeKms.Server.Hosting;

namespace EnvelopeKms.Server.Tests;

/// <summary>Flag parsing and the environment fallbacks.</summary>
public class CommandLineTests
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    [Fact]
    public void Every_flag_maps_onto_the_options()
    {
        var request = CommandLine.Parse(
        [
            "--port", "8123", "--data-dir", "/tmp/x", "--bind", "0.0.0.0", "--access-key", "a:b:c", "--access-key", "d:e",
            "--region", "eu-central-1", "--account-id", "42", "--sts-duration-seconds", "60", "--exit-on-stdin-close",
            "--enable-control", "--admin-token", "tok", "--throttle-rate", "0.1", "--throttle-code", "Rejected.Throttling",
            "--error-rate", "0.2", "--error-status", "503", "--drop-rate", "0.05", "--latency-ms", "7",
            "--fault-operations", "GenerateDataKey, Decrypt", "--fault-seed", "9",
        ], NoEnvironment);
        var options = request.Options!;
        Assert.True(request.ExitOnStdinClose);
        Assert.Equal(8123, options.Port);
        Assert.Equal("/tmp/x", options.DataDirectory);
        Assert.Equal("0.0.0.0", options.BindAddress);
        Assert.Equal("b:c", options.AccessKeys["a"]); // the secret may itself contain ':'
        Assert.Equal("e", options.AccessKeys["d"]);
        Assert.Equal("eu-central-1", options.Region);
        Assert.Equal("42", options.AccountId);
        Assert.Equal(TimeSpan.FromSeconds(60), options.StsDuration);
        Assert.True(options.EnableControl);
        Assert.Equal("tok", options.AdminToken);
        Assert.Equal(0.1, options.Faults.ThrottleRate);
        Assert.Equal("Rejected.Throttling", options.Faults.ThrottleCode);
        Assert.Equal(0.2, options.Faults.ErrorRate);
        Assert.Equal(503, options.Faults.ErrorStatus);
        Assert.Equal(0.05, options.Faults.DropRate);
        Assert.Equal(7, options.Faults.LatencyMs);
        Assert.Equal(["GenerateDataKey", "Decrypt"], options.Faults.Operations);
        Assert.Equal(9, options.Faults.Seed);
    }

    [Fact]
    public void Defaults_are_loopback_port_zero_and_the_development_pair()
    {
        var options = CommandLine.Parse([], NoEnvironment).Options!;
        Assert.Equal("127.0.0.1", options.BindAddress);
        Assert.Equal(0, options.Port);
        Assert.False(options.EnableControl);
        Assert.Equal("testsecret", options.EffectiveAccessKeys()["testid"]);
        Assert.Equal(TimeSpan.FromHours(1), options.StsDuration);
    }

    [Fact]
    public void Environment_supplies_access_keys_and_admin_token_when_flags_do_not()
    {
        var environment = new Dictionary<string, string>
        {
            [CommandLine.AccessKeysVariable] = "k1:s1, k2:s2",
            [CommandLine.AdminTokenVariable] = "env-token",
        };
        var options = CommandLine.Parse([], name => environment.GetValueOrDefault(name)).Options!;
        Assert.Equal("s1", options.AccessKeys["k1"]);
        Assert.Equal("s2", options.AccessKeys["k2"]);
        Assert.False(options.EffectiveAccessKeys().ContainsKey("testid"));
        Assert.Equal("env-token", options.AdminToken);

        var flagWins = CommandLine.Parse(["--access-key", "f:g"], name => environment.GetValueOrDefault(name)).Options!;
        Assert.Equal(["f"], flagWins.AccessKeys.Keys);
    }

    [Theory]
    [InlineData("--port", "70000")]
    [InlineData("--port", "x")]
    [InlineData("--access-key", "no-colon")]
    [InlineData("--access-key", ":secret")]
    [InlineData("--throttle-rate", "2")]
    [InlineData("--error-status", "404")]
    [InlineData("--throttle-code", "Slow")]
    [InlineData("--data-dir", null)]
    public void Bad_values_are_refused(string flag, string? value)
    {
        string[] args = value is null ? [flag] : [flag, value];
        Assert.Throws<ArgumentException>(() => CommandLine.Parse(args, NoEnvironment));
    }

    [Fact]
    public void Access_key_errors_do_not_echo_the_secret()
    {
        var error = Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--access-key", "secret-without-id"], NoEnvironment));
        Assert.DoesNotContain("secret-without-id", error.Message);
    }

    [Fact]
    public void Help_is_recognised()
    {
        Assert.True(CommandLine.Parse(["--help"], NoEnvironment).ShowHelp);
        Assert.Contains("not for protecting production secrets", CommandLine.HelpText);
    }
}
