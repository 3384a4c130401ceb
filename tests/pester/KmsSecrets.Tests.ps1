#Requires -Version 7.4
# Protect-KmsSecret / Unprotect-KmsSecret: small secrets through KMS Encrypt/Decrypt, against a local KMS server.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'secrets'
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Protect-KmsSecret and Unprotect-KmsSecret' {
    It 'round-trips a SecureString through a base64 blob, with a context' {
        $secret = ConvertTo-SecureString 'pä$$wörd ✓' -AsPlainText -Force
        $blob = $secret | Protect-KmsSecret -KeyId $Key.KeyId -EncryptionContext @{ app = 'billing' }
        $blob | Should -BeOfType [string]
        { [Convert]::FromBase64String($blob) } | Should -Not -Throw
        $blob | Should -Not -Match 'pä'
        $back = Unprotect-KmsSecret -CiphertextBlob $blob -EncryptionContext @{ app = 'billing' }
        $back | Should -BeOfType [securestring]
        [pscredential]::new('x', $back).GetNetworkCredential().Password | Should -Be 'pä$$wörd ✓'
    }

    It 'round-trips bytes, and tolerates white space around the blob' {
        $bytes = [byte[]](0..255)
        $blob = Protect-KmsSecret -KeyId $Key.KeyId -Bytes $bytes
        $back = "  $blob`n" | Unprotect-KmsSecret -AsBytes
        [Convert]::ToHexString($back) | Should -Be ([Convert]::ToHexString($bytes))
    }

    It 'refuses the wrong context, and secrets over 6 KB, without output' {
        $blob = Protect-KmsSecret -KeyId $Key.KeyId -Bytes ([byte[]](1, 2, 3)) -EncryptionContext @{ app = 'a' }
        Unprotect-KmsSecret -CiphertextBlob $blob -EncryptionContext @{ app = 'b' } -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        Protect-KmsSecret -KeyId $Key.KeyId -Bytes ([byte[]]::new(6145)) -ErrorVariable err2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err2[0].FullyQualifiedErrorId | Should -BeLike 'KmsSecretSize,*'
    }

    It 'a disabled key is refused with PermissionDenied' {
        $k = New-KmsKey -Description 'disabled secrets'
        Disable-KmsKey -KeyId $k.KeyId
        Protect-KmsSecret -KeyId $k.KeyId -Bytes ([byte[]](1)) -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'PermissionDenied'
    }
}
