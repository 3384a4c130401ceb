using System.Text.Json.Serialization;

namespace EnvelopeKms.Server.Faults;

/// <summary>
/// What the fault injector does to API calls. Rates are probabilities in [0, 1] drawn per call
/// from a generator seeded with <see cref="Seed"/>, so a test run is reproducible.
/// The JSON names are what <c>POST /__control/faults</c> accepts and <c>GET</c> returns.
/// </summary>
public sealed record FaultSettings
{
    /// <summary>Share of calls answered with a throttling error (<see cref="ThrottleCode"/>).</summary>
    [JsonPropertyName("throttleRate")]
    public double ThrottleRate { get; init; }

    /// <summary><c>Throttling.User</c> (400, default), <c>Throttling</c> (400) or <c>Rejected.Throttling</c> (429).</summary>
    [JsonPropertyName("throttleCode")]
    public string ThrottleCode { get; init; } = "Throttling.User";

    /// <summary>Share of calls answered with a server error.</summary>
    [JsonPropertyName("errorRate")]
    public double ErrorRate { get; init; }

    /// <summary>500 (InternalFailure), 503 (ServiceUnavailableTemporary), or 0 to pick either at random.</summary>
    [JsonPropertyName("errorStatus")]
    public int ErrorStatus { get; init; }

    /// <summary>Share of calls whose TCP connection is aborted without any response.</summary>
    [JsonPropertyName("dropRate")]
    public double DropRate { get; init; }

    /// <summary>Delay added before every affected call.</summary>
    [JsonPropertyName("latencyMs")]
    public int LatencyMs { get; init; }

    /// <summary>Extra per-action delay, e.g. <c>{"Decrypt": 250}</c>, added to <see cref="LatencyMs"/>.</summary>
    [JsonPropertyName("operationLatencyMs")]
    public Dictionary<string, int> OperationLatencyMs { get; init; } = [];

    /// <summary>When non-empty, faults apply only to these actions (e.g. <c>["GenerateDataKey"]</c>).</summary>
    [JsonPropertyName("operations")]
    public List<string> Operations { get; init; } = [];

    [JsonPropertyName("seed")]
    public int Seed { get; init; }

    public static FaultSettings None { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        foreach (var (name, rate) in new[] { ("throttleRate", ThrottleRate), ("errorRate", ErrorRate), ("dropRate", DropRate) })
        {
            if (double.IsNaN(rate) || rate < 0 || rate > 1)
            {
                throw new ArgumentException($"{name} must be between 0 and 1.");
            }
        }
        if (ThrottleRate + ErrorRate + DropRate > 1)
        {
            throw new ArgumentException("throttleRate + errorRate + dropRate must not exceed 1.");
        }
        if (ErrorStatus is not (0 or 500 or 503))
        {
            throw new ArgumentException("errorStatus must be 0, 500 or 503.");
        }
        if (ThrottleCode is not ("Throttling.User" or "Throttling" or "Rejected.Throttling"))
        {
            throw new ArgumentException("throttleCode must be Throttling.User, Throttling or Rejected.Throttling.");
        }
        if (LatencyMs < 0 || OperationLatencyMs.Values.Any(v => v < 0) || LatencyMs > 600_000 || OperationLatencyMs.Values.Any(v => v > 600_000))
        {
            throw new ArgumentException("latencies must be between 0 and 600000 ms.");
        }
    }
}
