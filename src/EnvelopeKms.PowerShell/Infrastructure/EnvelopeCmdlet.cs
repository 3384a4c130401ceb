using System.Management.Automation;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Base of every cmdlet: a cancellation token that Ctrl+C (StopProcessing) cancels, passed to every stream and KMS
/// call, and disposal (EndProcessing is not called after a stop).
/// </summary>
public abstract class EnvelopeCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stop = new();

    protected CancellationToken CancellationToken => _stop.Token;

    protected override void StopProcessing() => _stop.Cancel();

    /// <summary>Cancels work in flight before a terminating error ends the pipeline.</summary>
    protected void CancelWork() => _stop.Cancel();

    /// <summary>
    /// Converts an -EncryptionContext hashtable (keys and values as strings) into a context, or ends the pipeline
    /// with EnvelopeContextInvalid: a bad context would fail every file alike.
    /// </summary>
    protected Keys.EncryptionContext ToContextOrStop(System.Collections.IDictionary? table)
    {
        if (table is null || table.Count == 0) return Keys.EncryptionContext.Empty;
        try
        {
            var pairs = new List<KeyValuePair<string, string>>();
            foreach (System.Collections.DictionaryEntry entry in table)
            {
                string key = LanguagePrimitives.ConvertTo<string>(entry.Key);
                string value = entry.Value is null ? throw new ArgumentException($"Encryption context key '{key}' has no value.") : LanguagePrimitives.ConvertTo<string>(entry.Value);
                pairs.Add(new(key, value));
            }
            return Keys.EncryptionContext.Create(pairs);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorIds.EnvelopeContextInvalid.ToRecord(e, table));
            throw; // not reached
        }
    }

    /// <summary>Runs async core code to completion on the pipeline thread (PowerShell has no synchronization context).</summary>
    protected T Run<T>(Func<CancellationToken, Task<T>> operation) => operation(CancellationToken).GetAwaiter().GetResult();

    protected void Run(Func<CancellationToken, Task> operation) => operation(CancellationToken).GetAwaiter().GetResult();

    protected virtual void Dispose(bool disposing)
    {
        if (disposing) _stop.Dispose();
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }
}
