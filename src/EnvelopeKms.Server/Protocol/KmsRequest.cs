namespace EnvelopeKms.Server.Protocol;

/// <summary>
/// One API call as the authenticator and the operations see it: the raw pieces the
/// signatures are computed over (method, query, headers, body bytes)
/// plus the merged business parameters.
/// </summary>
internal sealed class KmsRequest
{
    public required string Method { get; init; }

    /// <summary>Decoded query parameters in wire order.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Query { get; init; }

    /// <summary>Request headers with lower-case names; repeated headers keep every value.</summary>
    public required IReadOnlyDictionary<string, string[]> Headers { get; init; }

    public required byte[] Body { get; init; }

    /// <summary>Query ∪ form, first occurrence wins (V1 signs over this union).</summary>
    public required IReadOnlyDictionary<string, string> Parameters { get; init; }

    public string? Header(string lowerCaseName) =>
        Headers.TryGetValue(lowerCaseName, out var values) && values.Length > 0 ? values[0] : null;

    public string? Parameter(string name) => Parameters.TryGetValue(name, out var value) ? value : null;

    /// <summary><c>Action</c> from the query/form (V1) or the <c>x-acs-action</c> header (V3).</summary>
    public string? Action => Parameter("Action") ?? Header("x-acs-action");

    public string? Version => Parameter("Version") ?? Header("x-acs-version");
}
