using System.Collections;
using System.Management.Automation;
using System.Security;
using System.Security.Cryptography;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>
/// Encrypts a small secret (up to 6 KB) directly with KMS <c>Encrypt</c>, giving the base64 <c>CiphertextBlob</c>:
/// text that is safe to keep in a runbook or a configuration file, and that only KMS (with the same encryption
/// context) turns back into the secret.
/// </summary>
[Cmdlet(VerbsSecurity.Protect, "KmsSecret", DefaultParameterSetName = SecureStringSet)]
[OutputType(typeof(string))]
public sealed class ProtectKmsSecretCommand : KmsCmdlet
{
    private const string SecureStringSet = "SecureString";
    private const string BytesSet = "Bytes";

    [Parameter(Mandatory = true, Position = 0)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string KeyId { get; set; } = "";

    /// <summary>The secret, as typed (Read-Host -AsSecureString) or from a PSCredential's Password.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = SecureStringSet, ValueFromPipeline = true)]
    public SecureString? SecureString { get; set; }

    /// <summary>The secret as bytes (a binary key, a certificate's private part…).</summary>
    [Parameter(Mandatory = true, ParameterSetName = BytesSet)]
    [ValidateNotNull]
    public byte[]? Bytes { get; set; }

    /// <summary>Pairs KMS binds to the ciphertext; the same pairs are needed to decrypt it.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    private Keys.EncryptionContext _context = Keys.EncryptionContext.Empty;

    protected override void Begin() => _context = ToContextOrStop(EncryptionContext);

    protected override void ProcessRecord()
    {
        byte[] plaintext = ParameterSetName == BytesSet ? (byte[])Bytes!.Clone() : SecureStrings.ToUtf8(SecureString!);
        try
        {
            if (plaintext.Length is 0 or > KmsClient.MaxEncryptPlaintextBytes)
            {
                var e = new ArgumentException($"KMS Encrypt takes 1 to {KmsClient.MaxEncryptPlaintextBytes} bytes; this secret has {plaintext.Length}. Use Protect-EnvelopeFile for larger data.");
                WriteError(ErrorIds.KmsSecretSize.ToRecord(e, null));
                return;
            }
            CiphertextResult? result = null;
            if (TryRun(KeyId, async ct => result = await OpenClient().EncryptAsync(KeyId, plaintext, _context, ct).ConfigureAwait(false)))
            {
                WriteVerbose($"Encrypted a {plaintext.Length}-byte secret with KMS key {result!.KeyId}.");
                WriteObject(result.CiphertextBlob);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }
}

/// <summary>Decrypts a <c>CiphertextBlob</c> from Protect-KmsSecret (or any KMS Encrypt) into a SecureString or bytes.</summary>
[Cmdlet(VerbsSecurity.Unprotect, "KmsSecret")]
[OutputType(typeof(SecureString), typeof(byte[]))]
public sealed class UnprotectKmsSecretCommand : KmsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] CiphertextBlob { get; set; } = [];

    /// <summary>The pairs given when the secret was protected.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Return the plaintext as a byte array (in ordinary managed memory) instead of a SecureString.</summary>
    [Parameter]
    public SwitchParameter AsBytes { get; set; }

    private Keys.EncryptionContext _context = Keys.EncryptionContext.Empty;

    protected override void Begin() => _context = ToContextOrStop(EncryptionContext);

    protected override void ProcessRecord()
    {
        foreach (var blob in CiphertextBlob)
        {
            DecryptResult? result = null;
            if (!TryRun(blob.Length > 24 ? blob[..24] + "…" : blob, async ct => result = await OpenClient().DecryptAsync(blob.Trim(), _context, ct).ConfigureAwait(false))) continue;
            using (result)
            {
                WriteVerbose($"Decrypted a {result!.Plaintext.Length}-byte secret with KMS key {result.KeyId}.");
                ModuleState.Current.RememberKey(result.KeyId);
                WriteObject(AsBytes ? result.Plaintext.Span.ToArray() : SecureStrings.FromUtf8(result.Plaintext.Span));
            }
        }
    }
}
