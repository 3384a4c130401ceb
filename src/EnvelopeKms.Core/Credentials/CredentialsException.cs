namespace EnvelopeKms.Credentials;

/// <summary>Credentials could not be obtained. The message names the source and the cause, never a secret.</summary>
public class CredentialsException : Exception
{
    public CredentialsException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A credential source is not configured (no variables, no file, no profile, not on ECS).</summary>
public sealed class CredentialsNotFoundException : CredentialsException
{
    public CredentialsNotFoundException(string message, Exception? inner = null) : base(message, inner) { }
}
