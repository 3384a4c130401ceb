namespace EnvelopeKms.PowerShell.Errors;

/// <summary>
/// Which failures end a command's pipeline: the one definition every cmdlet uses. A failure ends the pipeline when
/// its <see cref="ErrorId.Reach"/> covers what the rest of the command shares with the failed call, because then
/// every file still to come would fail the same way and an error per file would only bury the cause.
/// </summary>
internal sealed class PipelineEnd
{
    private readonly ErrorReach _from;

    private PipelineEnd(ErrorReach from) => _from = from;

    /// <summary>
    /// The calls share only the session (credentials, clock, configuration): each file has its own wrapped keys
    /// (Unprotect-, Update-EnvelopeFileKey, Convert reading a source), or each call names its own key (the key cmdlets).
    /// </summary>
    public static PipelineEnd SharedSession { get; } = new(ErrorReach.Command);

    /// <summary>
    /// Every file is wrapped under the command's own -KeyId (Protect-EnvelopeFile), so a problem with that key fails
    /// them all. A KMS outage does not end the command: the circuit breaker fails the files that follow fast, one
    /// error each, and files still get through if KMS comes back.
    /// </summary>
    public static PipelineEnd SharedKey { get; } = new(ErrorReach.Key);

    /// <summary>
    /// Every file needs the one new data key (Convert-EnvelopeFile getting it): once getting it has failed, even
    /// for an outage that outlasted the retries, the files waiting for it fail alike.
    /// </summary>
    public static PipelineEnd SharedDataKey { get; } = new(ErrorReach.Service);

    public bool Ends(ErrorId id) => id.Reach >= _from;
}
