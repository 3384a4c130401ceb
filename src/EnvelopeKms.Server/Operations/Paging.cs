using System.Text.Json.Nodes;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Operations;

/// <summary>
/// PageNumber (≥1, default 1) and PageSize (1–100, default 10) as the List* operations take
/// them, and the wrapped list shape they answer with: <c>{"Keys":{"Key":[...]},"TotalCount":n,...}</c>.
/// </summary>
internal static class Paging
{
    public static JsonObject Page<T>(KmsRequest request, IReadOnlyList<T> items, string outerName, string innerName, Func<T, JsonObject> toJson)
    {
        var pageNumber = request.OptionalInt("PageNumber", 1, int.MaxValue) ?? 1;
        var pageSize = request.OptionalInt("PageSize", 1, 100) ?? 10;
        var page = new JsonArray();
        foreach (var item in items.Skip((int)Math.Min((long)(pageNumber - 1) * pageSize, int.MaxValue)).Take(pageSize))
        {
            page.Add(toJson(item));
        }
        return new JsonObject
        {
            [outerName] = new JsonObject { [innerName] = page },
            ["TotalCount"] = items.Count,
            ["PageNumber"] = pageNumber,
            ["PageSize"] = pageSize,
        };
    }
}
