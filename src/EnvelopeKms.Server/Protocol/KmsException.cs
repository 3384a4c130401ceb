namespace EnvelopeKms.Server.Protocol;

/// <summary>
/// An error the server answers with the Alibaba Cloud POP error body
/// <c>{RequestId, HostId, Code, Message, Recommend}</c> and the given HTTP status.
/// Thrown anywhere in request handling; the pipeline turns it into the response.
/// </summary>
internal sealed class KmsException(int httpStatus, string code, string message) : Exception(message)
{
    public int HttpStatus { get; } = httpStatus;

    public string Code { get; } = code;

    /// <summary>For a RAM denial: the <c>AccessDeniedDetail</c> object added to the error body.</summary>
    public System.Text.Json.Nodes.JsonObject? AccessDeniedDetail { get; init; }
}
