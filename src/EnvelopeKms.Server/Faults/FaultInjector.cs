namespace EnvelopeKms.Server.Faults;

/// <summary>What to do to one call.</summary>
internal enum FaultOutcome
{
    None,
    Throttle,
    Error,
    Drop,
}

internal readonly record struct FaultDecision(FaultOutcome Outcome, TimeSpan Delay, int ErrorStatus, string ThrottleCode);

/// <summary>
/// Draws a fault decision per call from the current <see cref="FaultSettings"/>. One seeded
/// generator behind a lock: with the same seed and the same call order the same calls fail.
/// </summary>
internal sealed class FaultInjector
{
    private readonly Lock gate = new();
    private FaultSettings settings = FaultSettings.None;
    private Random random = new(0);

    public FaultInjector(FaultSettings initial) => Configure(initial);

    public FaultSettings Current
    {
        get
        {
            lock (gate)
            {
                return settings;
            }
        }
    }

    /// <summary>Replaces the settings and reseeds the generator.</summary>
    public void Configure(FaultSettings next)
    {
        next.Validate();
        lock (gate)
        {
            settings = next;
            random = new Random(next.Seed);
        }
    }

    public FaultDecision Decide(string action)
    {
        lock (gate)
        {
            if (settings.Operations.Count > 0 && !settings.Operations.Contains(action, StringComparer.Ordinal))
            {
                return new FaultDecision(FaultOutcome.None, TimeSpan.Zero, 0, settings.ThrottleCode);
            }
            var delayMs = settings.LatencyMs + settings.OperationLatencyMs.GetValueOrDefault(action);
            // One draw splits [0,1) into drop | throttle | error | none, so the rates are exact shares.
            var draw = random.NextDouble();
            var outcome = draw < settings.DropRate ? FaultOutcome.Drop
                : draw < settings.DropRate + settings.ThrottleRate ? FaultOutcome.Throttle
                : draw < settings.DropRate + settings.ThrottleRate + settings.ErrorRate ? FaultOutcome.Error
                : FaultOutcome.None;
            var status = settings.ErrorStatus != 0 ? settings.ErrorStatus : random.Next(2) == 0 ? 500 : 503;
            return new FaultDecision(outcome, TimeSpan.FromMilliseconds(delayMs), status, settings.ThrottleCode);
        }
    }
}
