using System.Text.Json.Nodes;
using EnvelopeKms.Server.Protocol;

namespace EnvelopeKms.Server.Operations;

/// <summary>Handles one API action; returns the response body without RequestId (the pipeline adds it).</summary>
internal delegate JsonObject OperationHandler(KmsRequest request);

/// <summary>The actions the server answers, keyed by API version and action name.</summary>
internal sealed class OperationRegistry
{
    public const string KmsVersion = "2016-01-20";
    public const string StsVersion = "2015-04-01";

    private readonly Dictionary<(string Version, string Action), OperationHandler> handlers = [];

    public void Add(string version, string action, OperationHandler handler) => handlers.Add((version, action), handler);

    public bool IsKnownVersion(string version) => handlers.Keys.Any(k => k.Version == version);

    public OperationHandler? Find(string version, string action) =>
        handlers.TryGetValue((version, action), out var handler) ? handler : null;
}
