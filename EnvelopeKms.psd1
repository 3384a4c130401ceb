@{
    RootModule           = 'bin/EnvelopeKms.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '6f1d2c0e-5b8a-4f7e-9d3c-2a1b0e4f8c71'
    Author               = 'EnvelopeKms contributors'
    CompanyName          = 'EnvelopeKms'
    Copyright            = '(c) EnvelopeKms contributors. MIT licence.'
    Description          = 'Envelope encryption of local files with Alibaba Cloud Key Management Service (KMS): streaming, authenticated, key-committing AES-256-GCM files whose data keys are wrapped by KMS.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('EnvelopeKms.Format.ps1xml')
    CmdletsToExport      = @(
        'Protect-EnvelopeFile',
        'Unprotect-EnvelopeFile',
        'Get-EnvelopeFileInfo',
        'Test-EnvelopeFile',
        'Convert-EnvelopeFile',
        'Update-EnvelopeFileKey',
        'Protect-KmsSecret',
        'Unprotect-KmsSecret',
        'New-KmsKey',
        'Get-KmsKey',
        'Enable-KmsKey',
        'Disable-KmsKey',
        'Remove-KmsKey',
        'Restore-KmsKey',
        'New-KmsAlias',
        'Get-KmsAlias',
        'Set-KmsAlias',
        'Remove-KmsAlias',
        'Connect-Kms',
        'Disconnect-Kms',
        'Get-KmsConnection'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('Encryption', 'KMS', 'AlibabaCloud', 'Aliyun', 'Envelope', 'AES-GCM', 'Security', 'Linux', 'Windows', 'MacOS', 'PSEdition_Core')
            LicenseUri   = 'https://github.com/envelopekms/EnvelopeKms/blob/main/LICENSE'
            ProjectUri   = 'https://github.com/envelopekms/EnvelopeKms'
            ReleaseNotes = 'See https://github.com/envelopekms/EnvelopeKms/blob/main/CHANGELOG.md'
        }
    }
}
