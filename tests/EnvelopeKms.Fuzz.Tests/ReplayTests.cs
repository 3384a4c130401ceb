using EnvelopeKms.Format;
using Xunit;
using Xunit.Abstractions;

namespace EnvelopeKms.Fuzz.Tests;

/// <summary>
/// Replays, uninstrumented and without afl++, every input of tests/fuzz/corpus/&lt;target&gt; (the minimised corpora the
/// campaigns keep) and tests/fuzz/regressions/&lt;target&gt; (every crash or hang a campaign found) through the harness
/// of its target. Each input must keep the target's contract (a documented refusal or success, allocation under the
/// bound, an answer within <see cref="CaseTimeout"/>); a regression input must also give exactly the outcome its
/// <c>.expected</c> file records, and one still marked TRIAGE (found, not yet fixed) fails.
/// </summary>
public class ReplayTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    internal static string FuzzRoot { get; } = FindFuzzRoot();

    private static string FindFuzzRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvelopePS.sln"))) return Path.Combine(dir.FullName, "tests", "fuzz");
        }
        throw new InvalidOperationException($"No EnvelopePS.sln above {AppContext.BaseDirectory}.");
    }

    public static TheoryData<string> Targets() => [.. FuzzTargets.All.Select(t => t.Name)];

    private static List<string> Inputs(string kind, string target)
    {
        var dir = Path.Combine(FuzzRoot, kind, target);
        return Directory.Exists(dir)
            ? Directory.GetFiles(dir).Where(f => !f.EndsWith(".expected", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
            : [];
    }

    /// <summary>The outcome, on a worker thread, within the timeout; a hang or a violation fails with the file named.</summary>
    private static string Replay(FuzzTarget target, string file)
    {
        var input = File.ReadAllBytes(file);
        var work = Task.Run(() => FuzzRunner.Check(target, input));
        try
        {
            if (!work.Wait(CaseTimeout)) throw new Xunit.Sdk.XunitException($"{file}: no answer within {CaseTimeout} (a hang)");
            return work.Result;
        }
        catch (AggregateException e) when (e.InnerException is ContractViolationException v)
        {
            throw new Xunit.Sdk.XunitException($"{file}: {v.Message}\n{v.InnerException}");
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryCorpusInputKeepsTheContract(string name)
    {
        var target = FuzzTargets.Get(name);
        var inputs = Inputs("corpus", name);
        // A target without a corpus would make this test pass on nothing.
        Assert.True(inputs.Count > 0, $"tests/fuzz/corpus/{name} is empty; run build.ps1 -Task Fuzz -Target {name}");
        var outcomes = inputs.Select(file => Replay(target, file)).GroupBy(o => o).OrderByDescending(g => g.Count());
        output.WriteLine($"{name}: {inputs.Count} inputs; " + string.Join(", ", outcomes.Select(g => $"{g.Key} {g.Count()}")));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryCorpusHasAnInputTheParserAccepts(string name)
    {
        // The corpus must still lead into the parser's success path, or the campaigns would start from refusals only.
        var target = FuzzTargets.Get(name);
        Assert.Contains(Inputs("corpus", name), file => Replay(target, file) == "accepted");
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryRegressionInputGivesItsExpectedOutcome(string name)
    {
        var target = FuzzTargets.Get(name);
        foreach (var file in Inputs("regressions", name))
        {
            var expectedFile = file + ".expected";
            Assert.True(File.Exists(expectedFile), $"{file} has no .expected file");
            var expected = File.ReadAllText(expectedFile).Trim();
            Assert.False(expected.StartsWith("TRIAGE", StringComparison.Ordinal), $"{file}: found by a campaign and not yet fixed: {expected}");
            Assert.Equal(expected, Replay(target, file));
            output.WriteLine($"{Path.GetFileName(file)}: {expected}");
        }
    }

    [Fact]
    public void EveryTargetDirectoryBelongsToATarget()
    {
        // A renamed target must not leave its corpus or regressions behind unreplayed.
        var names = FuzzTargets.All.Select(t => t.Name).ToHashSet();
        foreach (var kind in new[] { "corpus", "regressions" })
        {
            var dir = Path.Combine(FuzzRoot, kind);
            if (!Directory.Exists(dir)) continue;
            foreach (var sub in Directory.GetDirectories(dir)) Assert.Contains(Path.GetFileName(sub), names);
        }
    }
}

/// <summary>The contract checker itself: it must catch what it exists to catch.</summary>
public class FuzzRunnerTests
{
    private static FuzzTarget Fake(Action<byte[]> run, long bound = 1L << 30)
        => new("fake", "test", run, e => e is EnvelopeException, _ => bound);

    [Fact]
    public void ADocumentedRefusalIsAnOutcomeWithItsCode()
        => Assert.Equal("refused EnvelopeException:LegacyInvalid",
            FuzzRunner.Check(Fake(_ => throw new EnvelopeException(EnvelopeError.LegacyInvalid, "x")), [1]));

    [Fact]
    public void AnUndocumentedExceptionIsAViolation()
    {
        var e = Assert.Throws<ContractViolationException>(() => FuzzRunner.Check(Fake(_ => throw new UriFormatException("bad")), [1]));
        Assert.Contains("System.UriFormatException", e.Message);
    }

    [Fact]
    public void AllocatingOverTheBoundIsAViolation()
    {
        byte[]? kept = null;
        var e = Assert.Throws<ContractViolationException>(() => FuzzRunner.Check(Fake(_ => kept = new byte[1 << 20], bound: 1 << 16), [1]));
        Assert.Contains("allocated", e.Message);
        GC.KeepAlive(kept);
    }

    [Fact]
    public void EveryTargetIsRegisteredOnce()
    {
        var names = FuzzTargets.All.Select(t => t.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
    }
}
