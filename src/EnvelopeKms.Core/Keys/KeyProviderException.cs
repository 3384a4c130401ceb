namespace EnvelopeKms.Keys;

/// <summary>Why a key provider could not give a data key.</summary>
public enum KeyProviderError
{
    /// <summary>No entry's key is in the caller's allow-list, or none could be unwrapped.</summary>
    NoMatchingKey,
    /// <summary>The key service refused: disabled key, pending deletion, wrong context, denied.</summary>
    Refused,
    /// <summary>The key service could not be reached, or kept failing.</summary>
    Unavailable,
    /// <summary>The credentials were rejected.</summary>
    Authentication,
    /// <summary>The key service returned a data key of the wrong length or for a key not allowed.</summary>
    InvalidDataKey,
}

/// <summary>A key provider failure. Its message never contains key material or secrets.</summary>
public class KeyProviderException : Exception
{
    public KeyProviderException(KeyProviderError error, string message, Exception? inner = null)
        : base(message, inner) => Error = error;

    public KeyProviderError Error { get; }
}
