namespace EnvelopeKms.Server.Tests.Infrastructure;

/// <summary>A clock the tests move by hand, to expire timestamps, tokens and deletion windows instantly.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset now = start;

    public ManualClock() : this(DateTimeOffset.UtcNow)
    {
    }

    public override DateTimeOffset GetUtcNow() => now;

    public void Advance(TimeSpan by) => now += by;
}
