using EnvelopeKms.Credentials;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Fuzz;

/// <summary>A target broke its contract on an input: an undocumented exception, or too much allocation.</summary>
public sealed class ContractViolationException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Runs one input through one target and checks the contract; shared by the afl driver and the CI replay.</summary>
public static class FuzzRunner
{
    /// <summary>
    /// The outcome, as a regression file's <c>.expected</c> records it: <c>accepted</c>, or <c>refused Type</c>
    /// followed by <c>:Code</c> where the exception carries one. Throws <see cref="ContractViolationException"/>
    /// when the target breaks its contract.
    /// </summary>
    public static string Check(FuzzTarget target, byte[] input)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        string outcome;
        try
        {
            target.Run(input);
            outcome = "accepted";
        }
        catch (Exception e) when (target.IsDocumented(e))
        {
            outcome = "refused " + Describe(e);
        }
        catch (Exception e)
        {
            // The message only: a harness never holds a real secret, but an exception's text is all a crash report needs.
            throw new ContractViolationException(
                $"{target.Name}: undocumented {e.GetType().FullName}: {e.Message} (input {input.Length} bytes)", e);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long bound = target.AllocationBound(input.Length);
        if (allocated > bound)
            throw new ContractViolationException($"{target.Name}: allocated {allocated} bytes for a {input.Length}-byte input (bound {bound}); outcome {outcome}");
        return outcome;
    }

    public static string Describe(Exception e) => e switch
    {
        EnvelopeException x => $"{nameof(EnvelopeException)}:{x.Error}",
        KeyProviderException x => $"{nameof(KeyProviderException)}:{x.Error}",
        Kms.KmsException x => $"Kms.KmsException:{x.Code}",
        Server.Protocol.KmsException x => $"Server.KmsException:{x.Code}",
        CredentialsException x => x.GetType().Name,
        _ => e.GetType().Name,
    };
}
