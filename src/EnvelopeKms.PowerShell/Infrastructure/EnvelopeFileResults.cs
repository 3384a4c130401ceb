using System.Management.Automation;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>How Protect-, Unprotect- and Convert-EnvelopeFile report a file written, on the pipeline thread.</summary>
internal static class EnvelopeFileResults
{
    /// <summary>
    /// For <see cref="FileBatch"/>: remembers the key for Tab completion, writes the verbose line and any header
    /// slot warning, and returns the result for -PassThru.
    /// </summary>
    public static Func<object, object?> Report(Cmdlet cmdlet) => completed =>
    {
        var result = (EnvelopeFileResult)completed;
        ModuleState.Current.RememberKey(result.KeyId);
        string region = result.Region is null ? "" : $" (region {result.Region})";
        string done = result.Operation switch { "Protect" => "Encrypted", "Convert" => "Converted", _ => "Decrypted" };
        cmdlet.WriteVerbose($"{done} '{result.Source}' to '{result.Path}' with KMS key {result.KeyId}{region}{(result.SourceRemoved ? "; source removed" : "")}.");
        if (result.SlotProblem is { } slotProblem) cmdlet.WriteWarning($"'{result.Source}': {slotProblem}");
        return result;
    };
}
