#Requires -Version 7.4
# Convert-EnvelopeFile against a local KMS server: legacy <-> EKMS <-> Encryption SDK, in place and to a folder,
# checked by decrypting through the cmdlets and through the independent implementations (the documentation sample's
# script with pycryptodome, tests/interop/kms_envelope_sample.py; the Python Encryption SDK encoder,
# tests/interop/alibaba_sdk.py, with the data key unwrapped by the official Node.js SDK); and every refusal leaves
# the source byte for byte as it was.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'convert key'
    $script:Alias = "alias/Pester/Convert$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = $Key | New-KmsAlias -AliasName $Alias
    $script:Python = '/usr/bin/python3'
    $script:Sample = Join-Path $RepoRoot 'tests/interop/kms_envelope_sample.py'

    function Invoke-Sample {
        # The documentation sample's approach (pycryptodome EAX, its own V1-signed KMS calls); throws on failure.
        param([string[]] $Arguments)
        $env:ALIBABA_CLOUD_ACCESS_KEY_ID = 'testid'; $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = 'testsecret'
        try { $out = & $Python $Sample @Arguments 2>&1 }
        finally { Remove-Item Env:ALIBABA_CLOUD_ACCESS_KEY_ID, Env:ALIBABA_CLOUD_ACCESS_KEY_SECRET }
        if ($LASTEXITCODE -ne 0) { throw "kms_envelope_sample.py $($Arguments[0]) exited with ${LASTEXITCODE}: $out" }
    }



    function New-Sample {
        param([string] $Name, [int] $Length = 70000)
        $dir = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $dir
        $path = Join-Path $dir $Name
        New-RandomFile -Path $path -Length $Length -Random ([Random]::new($Length))
        $path
    }

    function Get-Bytes([string] $Path) { [Convert]::ToBase64String([IO.File]::ReadAllBytes($Path)) }

    function Get-Calls {
        $ops = (Invoke-KmsControl $Server 'stats').operations
        [pscustomobject]@{
            GenerateDataKey = [int]($ops.GenerateDataKey.success ?? 0)
            Decrypt = [int]($ops.Decrypt.success ?? 0)
        }
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Convert-EnvelopeFile' {
    It 'converts a file written by the documentation sample''s script to EKMS in place' {
        $source = New-Sample 'report.csv'
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Invoke-Sample encrypt, '--endpoint', $Server.Endpoint, '--key', $Alias, '--in', $source, '--out', "$source.encrypted"
        $r = Convert-EnvelopeFile -LiteralPath "$source.encrypted" -To EKMS -KeyId $Alias -PassThru
        $r.Operation | Should -Be 'Convert'
        $r.Format | Should -Be 'EKMS'
        $r.Path | Should -Be "$source.encrypted"
        (Get-EnvelopeFileInfo -LiteralPath "$source.encrypted").Format | Should -Be 'EKMS'
        @(Get-EkmsTempFile (Split-Path $source)).Count | Should -Be 0
        Remove-Item -LiteralPath $source
        Unprotect-EnvelopeFile -LiteralPath "$source.encrypted"
        (Get-FileHash -LiteralPath $source).Hash | Should -Be $hash
    }

    It 'converts EKMS with a context to an Encryption SDK message that the independent implementation decrypts, leaving the source' {
        $source = New-Sample 'ledger.bin'
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -EncryptionContext @{ app = 'billing' }
        $before = Get-Bytes "$source.ekms"
        $outDir = Join-Path (Split-Path $source) 'for-java'
        $r = Convert-EnvelopeFile -LiteralPath "$source.ekms" -To AlibabaSdk -KeyId $Alias -Destination "$outDir/" -PassThru
        $r.Format | Should -Be 'AlibabaSdk'
        Get-Bytes "$source.ekms" | Should -Be $before
        $converted = Join-Path $outDir 'ledger.bin.ekms'
        $header = Invoke-PythonSdk 'header', '--in', $converted | ConvertFrom-Json
        $header.encryptedDataKeys[0].cmkArn | Should -Match ":key/$($Key.KeyId)$"
        $unwrapped = Invoke-NodeKms $Server 'decrypt', '--blob', $header.encryptedDataKeys[0].ciphertextBlob, '--context-json', '{"app":"billing"}'
        $out = Join-Path (Split-Path $source) 'py.out'
        $null = Invoke-PythonSdk 'decrypt', '--key-b64', $unwrapped.Plaintext, '--in', $converted, '--out', $out
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $hash
        # The context came along: the cmdlets require it too.
        Unprotect-EnvelopeFile -LiteralPath $converted -Destination (Join-Path $outDir 'back.bin') -EncryptionContext @{ app = 'billing' }
        (Get-FileHash -LiteralPath (Join-Path $outDir 'back.bin')).Hash | Should -Be $hash
    }

    It 'converts an Encryption SDK stream message to the legacy format that the sample''s script decrypts' {
        $source = New-Sample 'notes.txt' 1234
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format AlibabaSdkStream
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To Legacy -KeyId $Alias
        (Get-EnvelopeFileInfo -LiteralPath "$source.ekms").Format | Should -Be 'Legacy'
        $out = Join-Path (Split-Path $source) 'sample.out'
        Invoke-Sample decrypt, '--endpoint', $Server.Endpoint, '--in', "$source.ekms", '--out', $out
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $hash
    }

    It 'converts a legacy file to an Encryption SDK message and back to EKMS, the plaintext unchanged' {
        $source = New-Sample 'round.bin' 65537
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format Legacy
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To AlibabaSdkStream -KeyId $Key.KeyId
        (Get-EnvelopeFileInfo -LiteralPath "$source.ekms").Format | Should -Be 'AlibabaSdkStream'
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To EKMS -KeyId $Alias
        (Get-EnvelopeFileInfo -LiteralPath "$source.ekms").Format | Should -Be 'EKMS'
        Remove-Item -LiteralPath $source
        Unprotect-EnvelopeFile -LiteralPath "$source.ekms"
        (Get-FileHash -LiteralPath $source).Hash | Should -Be $hash
    }

    It 'costs one Decrypt per source data key, one GenerateDataKey and one confirming Decrypt for a batch converted in place' {
        $dir = Split-Path (New-Sample 'batch0.bin' 100)
        1..19 | ForEach-Object { New-RandomFile -Path (Join-Path $dir "batch$_.bin") -Length (100 * $_) }
        Get-ChildItem -LiteralPath $dir -File | Protect-EnvelopeFile -KeyId $Alias -RemoveSource -Force
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Get-ChildItem -LiteralPath $dir -Filter *.ekms | Convert-EnvelopeFile -To AlibabaSdk -KeyId $Alias
        $calls = Get-Calls
        $calls.GenerateDataKey | Should -Be 1
        $calls.Decrypt | Should -Be 2   # the source data key, then the new one before any file was replaced
        @(Get-ChildItem -LiteralPath $dir -Filter *.ekms | Get-EnvelopeFileInfo | Where-Object Format -EQ 'AlibabaSdk').Count | Should -Be 20
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Get-ChildItem -LiteralPath $dir -Filter *.ekms | Convert-EnvelopeFile -To EKMS -KeyId $Alias -Destination (Join-Path $dir 'out/')
        (Get-Calls).Decrypt | Should -Be 1   # not in place: the sources stay, so no confirming call
    }

    It '-WhatIf converts nothing and calls no KMS' {
        $source = New-Sample 'whatif.bin'
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias
        $before = Get-Bytes "$source.ekms"
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To Legacy -KeyId $Alias -WhatIf
        Get-Bytes "$source.ekms" | Should -Be $before
        (Invoke-KmsControl $Server 'stats').totals.success | Should -Be 0
    }

    It 'writes to -Destination only with -Force when the output exists' {
        $source = New-Sample 'exists.bin'
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias
        $target = Join-Path (Split-Path $source) 'taken.ekms'
        Set-Content -LiteralPath $target -Value 'keep me'
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To Legacy -KeyId $Alias -Destination $target -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationExists*'
        Get-Content -LiteralPath $target | Should -Be 'keep me'
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To Legacy -KeyId $Alias -Destination $target -Force
        (Get-EnvelopeFileInfo -LiteralPath $target).Format | Should -Be 'Legacy'
    }
}

Describe 'Convert-EnvelopeFile refusals leave the source as it was' {
    It '<Case> gives <Id>' -ForEach @(
        @{ Case = 'a context the legacy format cannot hold'; Id = 'EnvelopeConvertContextLost'; To = 'Legacy'; Setup = { param($s) Protect-EnvelopeFile -LiteralPath $s -KeyId $Alias -EncryptionContext @{ app = 'billing' }; "$s.ekms" } }
        @{ Case = 'EKMS to EKMS'; Id = 'EnvelopeConvertSameFormat'; To = 'EKMS'; Setup = { param($s) Protect-EnvelopeFile -LiteralPath $s -KeyId $Alias; "$s.ekms" } }
        @{ Case = 'a file that is no envelope'; Id = 'EnvelopeNotRecognized'; To = 'EKMS'; Setup = { param($s) $s } }
        @{ Case = 'a tampered EKMS body'; Id = 'EnvelopeAuthenticationFailed'; To = 'Legacy'; Setup = {
                param($s) Protect-EnvelopeFile -LiteralPath $s -KeyId $Alias
                $b = [IO.File]::ReadAllBytes("$s.ekms"); $b[$b.Length - 40] = $b[$b.Length - 40] -bxor 1; [IO.File]::WriteAllBytes("$s.ekms", $b); "$s.ekms" } }
        @{ Case = 'a tampered legacy tag'; Id = 'EnvelopeLegacyInvalid'; To = 'EKMS'; Setup = {
                param($s) Protect-EnvelopeFile -LiteralPath $s -KeyId $Alias -Format Legacy
                $lines = [IO.File]::ReadAllLines("$s.ekms"); $t = [Convert]::FromBase64String($lines[3]); $t[0] = $t[0] -bxor 1
                $lines[3] = [Convert]::ToBase64String($t); [IO.File]::WriteAllText("$s.ekms", ($lines -join "`n") + "`n"); "$s.ekms" } }
        @{ Case = 'a tampered Encryption SDK body tag'; Id = 'EnvelopeAuthenticationFailed'; To = 'EKMS'; Setup = {
                param($s) Protect-EnvelopeFile -LiteralPath $s -KeyId $Alias -Format AlibabaSdkStream -EncryptionContext @{ a = 'b' }
                $b = [IO.File]::ReadAllBytes("$s.ekms"); $b[-1] = $b[-1] -bxor 1; [IO.File]::WriteAllBytes("$s.ekms", $b); "$s.ekms" } }
        @{ Case = 'a source under a disabled key'; Id = 'KmsRefused'; To = 'Legacy'; Setup = {
                param($s) $k = New-KmsKey -Description 'disabled later'; Protect-EnvelopeFile -LiteralPath $s -KeyId $k.KeyId; Disable-KmsKey -KeyId $k.KeyId; "$s.ekms" } }
    ) {
        $source = New-Sample 'refused.bin' 5000
        $file = & $Setup $source
        $before = Get-Bytes $file
        Convert-EnvelopeFile -LiteralPath $file -To $To -KeyId $Alias -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike "$Id*"
        Get-Bytes $file | Should -Be $before
        @(Get-EkmsTempFile (Split-Path $source)).Count | Should -Be 0
    }

    It 'a required context the source lacks gives EnvelopeContextMismatch' {
        $source = New-Sample 'ctx.bin'
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -EncryptionContext @{ app = 'billing' }
        $before = Get-Bytes "$source.ekms"
        Convert-EnvelopeFile -LiteralPath "$source.ekms" -To AlibabaSdk -KeyId $Alias -EncryptionContext @{ app = 'payroll' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeContextMismatch*'
        Get-Bytes "$source.ekms" | Should -Be $before
    }

    It 'two keys for the legacy format stop the command with EnvelopeLegacyOneKey' {
        $source = New-Sample 'two.bin'
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias
        { Convert-EnvelopeFile -LiteralPath "$source.ekms" -To Legacy -KeyId $Alias, $Key.KeyId -ErrorAction Stop } |
            Should -Throw -ErrorId 'EnvelopeLegacyOneKey*'
    }

    It 'a key KMS does not know stops the command and leaves the file' {
        $source = New-Sample 'nokey.bin'
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format Legacy
        $before = Get-Bytes "$source.ekms"
        { Convert-EnvelopeFile -LiteralPath "$source.ekms" -To EKMS -KeyId 'alias/does-not-exist' -ErrorAction Stop } | Should -Throw -ErrorId 'KmsKeyNotFound*'
        Get-Bytes "$source.ekms" | Should -Be $before
    }
}
