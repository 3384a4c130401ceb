using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace EnvelopeKms.Server.Faults;

/// <summary>
/// Counts calls per action: successes, failures (by error code) and dropped connections.
/// Tests use it to check what a client really sent, e.g. how many GenerateDataKey calls a cache saved.
/// </summary>
internal sealed class OperationStats
{
    private readonly ConcurrentDictionary<string, ActionCounters> byAction = new(StringComparer.Ordinal);

    public void Success(string action) => Interlocked.Increment(ref For(action).SuccessCount);

    public void Failure(string action, string code)
    {
        var counters = For(action);
        Interlocked.Increment(ref counters.FailureCount);
        counters.Codes.AddOrUpdate(code, 1, (_, n) => n + 1);
    }

    public void Dropped(string action) => Interlocked.Increment(ref For(action).DroppedCount);

    public void Reset() => byAction.Clear();

    /// <summary><c>{"operations":{"Decrypt":{"success":1,"failure":0,"dropped":0,"errors":{}}},"totals":{...}}</c>.</summary>
    public JsonObject Snapshot()
    {
        var operations = new JsonObject();
        long success = 0, failure = 0, dropped = 0;
        foreach (var (action, counters) in byAction.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            var s = Interlocked.Read(ref counters.SuccessCount);
            var f = Interlocked.Read(ref counters.FailureCount);
            var d = Interlocked.Read(ref counters.DroppedCount);
            var errors = new JsonObject();
            foreach (var (code, count) in counters.Codes.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                errors[code] = count;
            }
            operations[action] = new JsonObject { ["success"] = s, ["failure"] = f, ["dropped"] = d, ["errors"] = errors };
            success += s;
            failure += f;
            dropped += d;
        }
        return new JsonObject
        {
            ["operations"] = operations,
            ["totals"] = new JsonObject { ["success"] = success, ["failure"] = failure, ["dropped"] = dropped },
        };
    }

    private ActionCounters For(string action) => byAction.GetOrAdd(action, _ => new ActionCounters());

    private sealed class ActionCounters
    {
        public long SuccessCount;
        public long FailureCount;
        public long DroppedCount;
        public readonly ConcurrentDictionary<string, long> Codes = new(StringComparer.Ordinal);
    }
}
