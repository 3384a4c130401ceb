#Requires -Version 7.4
# Update-EnvelopeFileKey end to end: the staged module against a local KMS server that counts its calls.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Primary = New-KmsKey -Description 'pester primary'
    $script:Dr = New-KmsKey -Description 'pester dr'
    $script:Third = New-KmsKey -Description 'pester third'
    $script:Fourth = New-KmsKey -Description 'pester fourth'
    $script:Fifth = New-KmsKey -Description 'pester fifth'
    $script:DrAlias = "alias/Pester/Dr$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = $Dr | New-KmsAlias -AliasName $DrAlias

    function New-Envelope {
        param([string] $Name, [string[]] $KeyId = @($Primary.KeyId), [long] $Length = 200000)
        $plain = Join-Path $script:Root $Name
        New-RandomFile -Path $plain -Length $Length
        Protect-EnvelopeFile -LiteralPath $plain -KeyId $KeyId -EncryptionContext @{ app = 'pester' }
        [pscustomobject]@{ Plain = $plain; Path = "$plain.ekms"; Hash = (Get-FileHash -LiteralPath $plain).Hash }
    }

    function Get-Stats { Invoke-KmsControl $Server 'stats' }
    function Reset-Stats { $null = Invoke-KmsControl $Server 'reset-stats' -Method POST }

    # Body bytes from the header's end (52 + 2 x slot size) to the end of the file.
    function Get-BodyHash {
        param([string] $Path)
        $info = Get-EnvelopeFileInfo -LiteralPath $Path
        $bytes = [IO.File]::ReadAllBytes($Path)
        $start = 52 + 2 * $info.SlotSize
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([byte[]]$bytes[$start..($bytes.Length - 1)]))
    }

    function Assert-Decrypts {
        param($Envelope, [string[]] $AllowedKeyId)
        $out = Join-Path $script:Root ([guid]::NewGuid().ToString('N'))
        Unprotect-EnvelopeFile -LiteralPath $Envelope.Path -Destination $out -AllowedKeyId $AllowedKeyId -EncryptionContext @{ app = 'pester' } -ErrorAction Stop
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $Envelope.Hash
        Remove-Item -LiteralPath $out
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Update-EnvelopeFileKey' {
    BeforeEach {
        $script:Root = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $Root
    }

    It 'adds a DR key (by alias): the file then decrypts with only the DR key allowed, and the body bytes are unchanged' {
        $e = New-Envelope 'report.bin'
        (Get-EnvelopeFileInfo -LiteralPath $e.Path).Version | Should -Be 2
        $body = Get-BodyHash $e.Path
        $length = (Get-Item -LiteralPath $e.Path).Length
        { Assert-Decrypts $e -AllowedKeyId $Dr.KeyId } | Should -Throw

        Reset-Stats
        $r = Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId $DrAlias -PassThru
        $r.OldKeyIds | Should -Be @($Primary.KeyId)
        $r.NewKeyIds | Should -Be @($Primary.KeyId, $Dr.KeyId)
        $r.Generation | Should -Be 2
        $r.Rewritten | Should -BeFalse
        $stats = Get-Stats
        $stats.operations.Decrypt.success | Should -Be 1
        $stats.operations.Encrypt.success | Should -Be 1

        Get-BodyHash $e.Path | Should -Be $body
        (Get-Item -LiteralPath $e.Path).Length | Should -Be $length
        $info = Get-EnvelopeFileInfo -LiteralPath $e.Path
        $info.Generation | Should -Be 2
        $info.SlotGenerations | Should -Be @(2, 2)
        Assert-Decrypts $e -AllowedKeyId $Dr.KeyId
    }

    It 'removes the original key: its wrapped copy is gone and only the DR key decrypts' {
        $e = New-Envelope 'retire.bin' -KeyId $Primary.KeyId, $Dr.KeyId
        $blob = [Text.Encoding]::ASCII.GetBytes((Get-EnvelopeFileInfo -LiteralPath $e.Path).WrappedKeys[0].KeyId)
        Update-EnvelopeFileKey -LiteralPath $e.Path -RemoveKeyId $Primary.KeyId
        (Get-EnvelopeFileInfo -LiteralPath $e.Path).KeyIds | Should -Be @($Dr.KeyId)
        $bytes = [IO.File]::ReadAllBytes($e.Path)
        [Text.Encoding]::ASCII.GetString($bytes).Contains($Primary.KeyId) | Should -BeFalse
        { Assert-Decrypts $e -AllowedKeyId $Primary.KeyId } | Should -Throw
        Assert-Decrypts $e -AllowedKeyId $Dr.KeyId
        $blob.Length | Should -BeGreaterThan 0
    }

    It 'replaces the set with -KeyId, keeping the entry of a key already there' {
        $e = New-Envelope 'replace.bin' -KeyId $Primary.KeyId, $Dr.KeyId
        Reset-Stats
        $r = Update-EnvelopeFileKey -Path $e.Path -KeyId $Dr.KeyId, $Third.KeyId -PassThru
        $r.NewKeyIds | Should -Be @($Dr.KeyId, $Third.KeyId)
        (Get-Stats).operations.Encrypt.success | Should -Be 1
        Assert-Decrypts $e -AllowedKeyId $Third.KeyId
        { Assert-Decrypts $e -AllowedKeyId $Primary.KeyId } | Should -Throw
    }

    It '-WhatIf changes no byte and makes no KMS call' {
        $e = New-Envelope 'whatif.bin'
        $before = (Get-FileHash -LiteralPath $e.Path).Hash
        Reset-Stats
        Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId $Dr.KeyId -WhatIf
        Get-ChildItem -LiteralPath $Root -Filter *.ekms | Update-EnvelopeFileKey -KeyId $Third.KeyId -WhatIf
        (Get-FileHash -LiteralPath $e.Path).Hash | Should -Be $before
        $stats = Get-Stats
        ($stats.totals.success + $stats.totals.failure + $stats.totals.dropped) | Should -Be 0
    }

    It 'rewrites the whole file when the key list outgrows the header slots, reported as Rewritten' {
        $e = New-Envelope 'grow.bin'
        $body = Get-BodyHash $e.Path
        (Get-EnvelopeFileInfo -LiteralPath $e.Path).SlotSize | Should -Be 1024
        $r = Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId $Dr.KeyId, $Third.KeyId, $Fourth.KeyId, $Fifth.KeyId -PassThru -Verbose 4>&1 |
            Tee-Object -Variable all | Where-Object { $_ -is [EnvelopeKms.PowerShell.EnvelopeFileKeyUpdate] }
        $r.Rewritten | Should -BeTrue
        $r.SlotSize | Should -BeGreaterThan 1024
        ($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n" | Should -Match 'whole file was rewritten'
        Get-BodyHash $e.Path | Should -Be $body
        Get-EkmsTempFile $Root | Should -BeNullOrEmpty
        Assert-Decrypts $e -AllowedKeyId $Fifth.KeyId
        # The next change fits again: header only.
        (Update-EnvelopeFileKey -LiteralPath $e.Path -RemoveKeyId $Third.KeyId -PassThru).Rewritten | Should -BeFalse
    }

    It 'reports each refusal with its error id and leaves the file as it was' {
        $e = New-Envelope 'refuse.bin'
        $before = (Get-FileHash -LiteralPath $e.Path).Hash
        Update-EnvelopeFileKey -LiteralPath $e.Path -RemoveKeyId $Primary.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeLastKeyRemoval,*'
        Update-EnvelopeFileKey -LiteralPath $e.Path -RemoveKeyId $Third.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeKeyNotInFile,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId 'alias/does-not-exist' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'KmsKeyNotFound,*'
        Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId $Dr.KeyId -EncryptionContext @{ app = 'other' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeContextMismatch,*'
        (Get-FileHash -LiteralPath $e.Path).Hash | Should -Be $before

        Set-Content -LiteralPath (Join-Path $Root 'text.txt') -Value 'not an envelope'
        Update-EnvelopeFileKey -LiteralPath (Join-Path $Root 'text.txt') -AddKeyId $Dr.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeNotRecognized,*'

        $legacyPlain = Join-Path $Root 'legacy.bin'
        New-RandomFile -Path $legacyPlain -Length 100
        Protect-EnvelopeFile -LiteralPath $legacyPlain -KeyId $Primary.KeyId -Format Legacy
        Update-EnvelopeFileKey -LiteralPath "$legacyPlain.ekms" -AddKeyId $Dr.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeUpdateUnsupportedFormat,*'

        $tampered = New-Envelope 'tampered.bin'
        $bytes = [IO.File]::ReadAllBytes($tampered.Path)
        $bytes[20] = $bytes[20] -bxor 1   # the message id, in the preamble both slots authenticate
        [IO.File]::WriteAllBytes($tampered.Path, $bytes)
        $tamperedHash = (Get-FileHash -LiteralPath $tampered.Path).Hash
        Update-EnvelopeFileKey -LiteralPath $tampered.Path -AddKeyId $Dr.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeKeyCommitmentMismatch,*'
        (Get-FileHash -LiteralPath $tampered.Path).Hash | Should -Be $tamperedHash

        { Update-EnvelopeFileKey -LiteralPath $e.Path -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeKeyChangeMissing,*'
    }

    It 'updates ~200 files from a pipeline with one Decrypt and one Encrypt' {
        $null = New-Item -ItemType Directory -Path (Join-Path $Root 'many')
        foreach ($i in 1..200) { [IO.File]::WriteAllText((Join-Path $Root "many/f$i.txt"), "file $i") }
        Get-ChildItem -LiteralPath (Join-Path $Root 'many') -File | Protect-EnvelopeFile -KeyId $Primary.KeyId -RemoveSource -Confirm:$false
        Reset-Stats
        $results = Get-ChildItem -LiteralPath (Join-Path $Root 'many') -Filter *.ekms | Update-EnvelopeFileKey -AddKeyId $Dr.KeyId -PassThru
        $results.Count | Should -Be 200
        $results | Where-Object { -not $_.Changed -or $_.Rewritten } | Should -BeNullOrEmpty
        $stats = Get-Stats
        $stats.operations.Decrypt.success | Should -Be 1
        $stats.operations.Encrypt.success | Should -Be 1
        Get-ChildItem -LiteralPath (Join-Path $Root 'many') -Filter *.ekms | Test-EnvelopeFile -AllowedKeyId $Dr.KeyId | ForEach-Object Result | Should -Be (@($true) * 200)
    }

    It 'warns about a damaged header slot when decrypting, and the next update repairs it' {
        $e = New-Envelope 'torn.bin'
        $info = Get-EnvelopeFileInfo -LiteralPath $e.Path
        $bytes = [IO.File]::ReadAllBytes($e.Path)
        $bytes[52 + 2 * $info.SlotSize - 1] = 1   # slot 1's last padding byte
        [IO.File]::WriteAllBytes($e.Path, $bytes)
        (Get-EnvelopeFileInfo -LiteralPath $e.Path).SlotGenerations | Should -Be @(1, 0)
        Test-EnvelopeFile -LiteralPath $e.Path -WarningVariable warn -WarningAction SilentlyContinue | Should -BeTrue
        $warn[0] | Should -Match 'slot 1 is damaged'
        Update-EnvelopeFileKey -LiteralPath $e.Path -AddKeyId $Dr.KeyId -WarningVariable warn -WarningAction SilentlyContinue
        $warn[0] | Should -Match 'Both slots were rewritten'
        (Get-EnvelopeFileInfo -LiteralPath $e.Path).SlotGenerations | Should -Be @(2, 2)
        Assert-Decrypts $e -AllowedKeyId $Dr.KeyId
    }
}

Describe 'Update-EnvelopeFileKey with a DR key in another region' {
    BeforeAll {
        $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou -ArgumentList '--enable-control'
        $script:Shanghai = Start-TestKmsServer -Region cn-shanghai -ArgumentList '--enable-control'
        Connect-Kms -Endpoint $Hangzhou.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -Credential (Get-TestCredential) -MaxAttempts 2
        $script:HomeKey = New-KmsKey -Description 'hangzhou key'
        $script:Remote = New-KmsKey -Description 'shanghai DR key' -Endpoint $Shanghai.Endpoint -Region cn-shanghai
    }

    AfterAll {
        Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
        Stop-TestKmsServer $Hangzhou
        Stop-TestKmsServer $Shanghai
    }

    It 'wraps the data key at the DR region''s endpoint, records that region, and the file then decrypts there alone' {
        $dir = Join-Path $TestDrive 'regions'
        $null = New-Item -ItemType Directory -Path $dir
        $plain = Join-Path $dir 'ledger.csv'
        New-RandomFile -Path $plain -Length 50000
        $hash = (Get-FileHash -LiteralPath $plain).Hash
        Protect-EnvelopeFile -LiteralPath $plain -KeyId $HomeKey.KeyId
        foreach ($s in $Hangzhou, $Shanghai) { $null = Invoke-KmsControl $s 'reset-stats' -Method POST }

        Update-EnvelopeFileKey -LiteralPath "$plain.ekms" -AddKeyId $Remote.Arn
        (Invoke-KmsControl $Hangzhou 'stats').operations.Decrypt.success | Should -Be 1
        (Invoke-KmsControl $Shanghai 'stats').operations.Encrypt.success | Should -Be 1
        $info = Get-EnvelopeFileInfo -LiteralPath "$plain.ekms"
        $info.WrappedKeys[1].KeyId | Should -Be $Remote.KeyId
        $info.WrappedKeys[1].Region | Should -Be 'cn-shanghai'

        # Hangzhou's key is disabled: the file decrypts through Shanghai.
        Disable-KmsKey -KeyId $HomeKey.KeyId
        $out = Join-Path $dir 'out.csv'
        $r = Unprotect-EnvelopeFile -LiteralPath "$plain.ekms" -Destination $out -PassThru
        $r.Region | Should -Be 'cn-shanghai'
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $hash
    }
}
