#Requires -Version 7.4
# The module as users run it: a fresh pwsh importing the staged module, against a local KMS server.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'pester work key'
    $script:Alias = "alias/Pester/Work$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = $Key | New-KmsAlias -AliasName $Alias

    function New-Tree {
        param([string] $Root)
        $null = New-Item -ItemType Directory -Path $Root, (Join-Path $Root 'sub dir'), (Join-Path $Root 'ünï')
        Set-Content -LiteralPath (Join-Path $Root 'plain.txt') -Value 'plain text' -NoNewline
        Set-Content -LiteralPath (Join-Path $Root 'with space.csv') -Value "a,b`n1,2"
        Set-Content -LiteralPath (Join-Path $Root 'brackets[1].txt') -Value 'brackets'
        Set-Content -LiteralPath (Join-Path $Root 'sub dir/nested.bin') -Value ([byte[]](0..255)) -AsByteStream
        Set-Content -LiteralPath (Join-Path $Root 'ünï/ünïcødé ✓.txt') -Value 'unicode'
        $null = New-Item -ItemType File -Path (Join-Path $Root 'empty.dat')
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Protect-EnvelopeFile and Unprotect-EnvelopeFile' {
    BeforeEach {
        $script:Root = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        New-Tree $Root
        $script:Originals = Get-ChildItem $Root -Recurse -File | ForEach-Object { @{ Path = $_.FullName; Hash = (Get-FileHash -LiteralPath $_.FullName).Hash } }
    }

    It 'round-trips a recursive Get-ChildItem pipeline, odd names included' {
        Get-ChildItem $Root -Recurse -File | Protect-EnvelopeFile -KeyId $Alias
        foreach ($o in $Originals) { Test-Path -LiteralPath "$($o.Path).ekms" | Should -BeTrue }
        foreach ($o in $Originals) { Remove-Item -LiteralPath $o.Path }
        Get-ChildItem $Root -Recurse -Filter *.ekms | Unprotect-EnvelopeFile
        foreach ($o in $Originals) { (Get-FileHash -LiteralPath $o.Path).Hash | Should -Be $o.Hash }
    }

    It 'uses one GenerateDataKey for a whole batch and one Decrypt for files sharing a wrapped key' {
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Get-ChildItem $Root -Recurse -File | Protect-EnvelopeFile -KeyId $Alias
        $stats = Invoke-KmsControl $Server 'stats'
        $stats.operations.GenerateDataKey.success | Should -Be 1
        Get-ChildItem $Root -Recurse -Filter *.ekms | Unprotect-EnvelopeFile -Destination (New-Item -ItemType Directory (Join-Path $Root 'out')).FullName
        (Invoke-KmsControl $Server 'stats').operations.Decrypt.success | Should -Be 1
    }

    It '-DataKeyPerFile asks KMS for a data key per file' {
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Get-ChildItem $Root -Recurse -File | Protect-EnvelopeFile -KeyId $Alias -DataKeyPerFile
        (Invoke-KmsControl $Server 'stats').operations.GenerateDataKey.success | Should -Be $Originals.Count
    }

    It 'takes -Path with wildcards and -LiteralPath with brackets' {
        Protect-EnvelopeFile -Path (Join-Path $Root 'p*.txt') -KeyId $Key.KeyId
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms') | Should -BeTrue
        # In -Path, [1] is a wildcard class: it matches "brackets1.txt", which does not exist, so nothing happens.
        Protect-EnvelopeFile -Path (Join-Path $Root 'brackets[1].txt') -KeyId $Key.KeyId -ErrorVariable err
        $err | Should -BeNullOrEmpty
        Test-Path -LiteralPath (Join-Path $Root 'brackets[1].txt.ekms') | Should -BeFalse
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'brackets[1].txt') -KeyId $Key.KeyId
        Test-Path -LiteralPath (Join-Path $Root 'brackets[1].txt.ekms') | Should -BeTrue
    }

    It 'resolves relative paths against the current location' {
        Push-Location $Root
        try {
            Protect-EnvelopeFile -Path ./plain.txt -KeyId $Alias
            Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms') | Should -BeTrue
        }
        finally { Pop-Location }
    }

    It '-PassThru reports the key and the output, and the output pipes on' {
        $r = Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -PassThru
        $r.Operation | Should -Be 'Protect'
        $r.KeyId | Should -Match $Key.KeyId
        $r.Path | Should -Be (Join-Path $Root 'plain.txt.ekms')
        Remove-Item -LiteralPath (Join-Path $Root 'plain.txt')
        $d = $r | Unprotect-EnvelopeFile -PassThru
        $d.KeyId | Should -Match $Key.KeyId
        Get-Content -LiteralPath $d.Path -Raw | Should -Be 'plain text'
    }

    It 'result objects pipe on by literal path, brackets included' {
        $r = Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'brackets[1].txt') -KeyId $Alias -PassThru
        ($r | Get-EnvelopeFileInfo).PlaintextLength | Should -Be 9
        # Piped input is a batch: one object naming the file.
        ($r | Test-EnvelopeFile).Result | Should -BeTrue
        Remove-Item -LiteralPath (Join-Path $Root 'brackets[1].txt')
        $r | Unprotect-EnvelopeFile
        Get-Content -LiteralPath (Join-Path $Root 'brackets[1].txt') | Should -Be 'brackets'
    }

    It '-Format Legacy outputs are not encrypted a second time' {
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -Format Legacy
        Get-ChildItem $Root -Filter *.ekms | Protect-EnvelopeFile -KeyId $Alias -WarningAction SilentlyContinue
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms.ekms') | Should -BeFalse
    }

    It '-Destination takes a folder, or a file name for one input' {
        $out = New-Item -ItemType Directory (Join-Path $TestDrive "out$([guid]::NewGuid().ToString('N'))")
        Get-ChildItem $Root -File | Protect-EnvelopeFile -KeyId $Alias -Destination $out.FullName
        (Get-ChildItem $out -Filter *.ekms).Count | Should -Be (Get-ChildItem $Root -File).Count
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -Destination (Join-Path $out 'named.bin')
        Unprotect-EnvelopeFile -LiteralPath (Join-Path $out 'named.bin') -Destination (Join-Path $out 'back.txt')
        Get-Content -LiteralPath (Join-Path $out 'back.txt') -Raw | Should -Be 'plain text'
        { Get-ChildItem $Root -File | Protect-EnvelopeFile -KeyId $Alias -Destination (Join-Path $out 'single.bin') -Force } |
            Should -Throw -ErrorId 'EnvelopeDestinationNotDirectory*'
    }

    It '-WhatIf changes nothing and calls no KMS' {
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Get-ChildItem $Root -Recurse -File | Protect-EnvelopeFile -KeyId $Alias -WhatIf
        Get-ChildItem $Root -Recurse -Filter *.ekms | Should -BeNullOrEmpty
        (Invoke-KmsControl $Server 'stats').totals.success | Should -Be 0
    }

    It 'refuses to overwrite without -Force, and overwrites with it' {
        $target = Join-Path $Root 'plain.txt.ekms'
        Set-Content -LiteralPath $target -Value 'keep me'
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'EnvelopeDestinationExists,EnvelopeKms.PowerShell.Commands.ProtectEnvelopeFileCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        Get-Content -LiteralPath $target | Should -Be 'keep me'
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -Force
        (Get-EnvelopeFileInfo -LiteralPath $target).Format | Should -Be 'EKMS'
    }

    It 'writes ObjectNotFound for a missing file and carries on with the next' {
        Protect-EnvelopeFile -Path (Join-Path $Root 'nope.txt'), (Join-Path $Root 'plain.txt') -KeyId $Alias -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeFileNotFound,*'
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms') | Should -BeTrue
    }

    It 'skips directories with one warning, not an error per directory' {
        Get-ChildItem $Root -Recurse | Protect-EnvelopeFile -KeyId $Alias -WarningVariable warn -ErrorVariable err -WarningAction SilentlyContinue
        $err | Should -BeNullOrEmpty
        $warn.Count | Should -Be 1
        $warn[0] | Should -Match 'Skipped 2 directories'
    }

    It 'never modifies the source, and -RemoveSource removes it only after the output verifies' {
        $src = Join-Path $Root 'with space.csv'
        $hash = (Get-FileHash -LiteralPath $src).Hash
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias
        (Get-FileHash -LiteralPath $src).Hash | Should -Be $hash
        Remove-Item -LiteralPath "$src.ekms"
        $r = Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias -RemoveSource -Confirm:$false -PassThru
        $r.SourceRemoved | Should -BeTrue
        Test-Path -LiteralPath $src | Should -BeFalse
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms"
        (Get-FileHash -LiteralPath $src).Hash | Should -Be $hash
    }

    It '-RemoveSource asks for confirmation, which a non-interactive session cannot give' {
        $src = Join-Path $Root 'plain.txt'
        { Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias -RemoveSource -ErrorAction Stop } | Should -Throw
        Test-Path -LiteralPath $src | Should -BeTrue
    }

    It 'skips files that are already envelope files' {
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias
        Get-ChildItem $Root -File -Filter *.ekms | Protect-EnvelopeFile -KeyId $Alias -WarningVariable warn -WarningAction SilentlyContinue
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms.ekms') | Should -BeFalse
        $warn | Should -Match 'already envelope files'
    }

    It 'binds the encryption context to the file; the wrong context fails with SecurityError and writes nothing' {
        $src = Join-Path $Root 'plain.txt'
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias -EncryptionContext @{ project = 'Apollo'; stage = 'prod' }
        Remove-Item -LiteralPath $src
        (Get-EnvelopeFileInfo -LiteralPath "$src.ekms").EncryptionContext.project | Should -Be 'Apollo'
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -EncryptionContext @{ project = 'Gemini' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeContextMismatch,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        Test-Path -LiteralPath $src | Should -BeFalse
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -EncryptionContext @{ project = 'Apollo' }
        Get-Content -LiteralPath $src -Raw | Should -Be 'plain text'
    }

    It 'rejects non-envelope input and tampered files with InvalidData / SecurityError and writes nothing' {
        Set-Content -LiteralPath (Join-Path $Root 'fake.ekms') -Value 'not an envelope'
        Unprotect-EnvelopeFile -LiteralPath (Join-Path $Root 'fake.ekms') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        Test-Path -LiteralPath (Join-Path $Root 'fake') | Should -BeFalse

        $src = Join-Path $Root 'sub dir/nested.bin'
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias
        $bytes = [IO.File]::ReadAllBytes("$src.ekms"); $bytes[-1] = $bytes[-1] -bxor 1; [IO.File]::WriteAllBytes("$src.ekms", $bytes)
        Remove-Item -LiteralPath $src
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeAuthenticationFailed,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $err[0].TargetObject | Should -Be "$src.ekms"
        Get-ChildItem (Join-Path $Root 'sub dir') -Force | Where-Object Name -NotLike '*.ekms' | Should -BeNullOrEmpty
    }

    It 'an allow-list keeps other keys from decrypting' {
        $other = New-KmsKey -Description 'other'
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $other.KeyId
        Remove-Item -LiteralPath (Join-Path $Root 'plain.txt')
        Unprotect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt.ekms') -AllowedKeyId $Key.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt') | Should -BeFalse
        Unprotect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt.ekms') -AllowedKeyId $other.KeyId
        Test-Path -LiteralPath (Join-Path $Root 'plain.txt') | Should -BeTrue
    }

    It 'wraps under several keys; any one decrypts' {
        $second = New-KmsKey -Description 'second'
        Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias, $second.KeyId
        (Get-EnvelopeFileInfo -LiteralPath (Join-Path $Root 'plain.txt.ekms')).KeyIds.Count | Should -Be 2
        Remove-Item -LiteralPath (Join-Path $Root 'plain.txt')
        Unprotect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt.ekms') -AllowedKeyId $second.KeyId -PassThru |
            ForEach-Object KeyId | Should -Match $second.KeyId
    }

    It 'a disabled key fails the batch once, with PermissionDenied' {
        $k = New-KmsKey -Description 'to disable'
        Disable-KmsKey -KeyId $k.KeyId
        { Get-ChildItem $Root -File | Protect-EnvelopeFile -KeyId $k.KeyId -ErrorAction Stop } | Should -Throw -ErrorId 'KmsRefused*'
        Get-ChildItem $Root -Filter *.ekms | Should -BeNullOrEmpty
        Enable-KmsKey -KeyId $k.KeyId
        Get-ChildItem $Root -File | Protect-EnvelopeFile -KeyId $k.KeyId
        (Get-ChildItem $Root -Filter *.ekms).Count | Should -BeGreaterThan 0
    }

    It 'bad credentials stop with AuthenticationError and write nothing' {
        { Get-ChildItem $Root -File | Protect-EnvelopeFile -KeyId $Alias -Credential (Get-TestCredential -Secret 'wrong') } |
            Should -Throw -ErrorId 'KmsAuthenticationFailed*'
        Get-ChildItem $Root -Filter *.ekms | Should -BeNullOrEmpty
    }

    It 'honours $PSDefaultParameterValues for the KMS parameters' {
        Disconnect-Kms
        try {
            $PSDefaultParameterValues['*-EnvelopeFile:Endpoint'] = $Server.Endpoint
            $PSDefaultParameterValues['*-EnvelopeFile:Credential'] = Get-TestCredential
            Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias
            Test-Path -LiteralPath (Join-Path $Root 'plain.txt.ekms') | Should -BeTrue
        }
        finally {
            $PSDefaultParameterValues.Remove('*-EnvelopeFile:Endpoint')
            $PSDefaultParameterValues.Remove('*-EnvelopeFile:Credential')
            Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
        }
    }

    It 'says which key and endpoint were used in verbose output' {
        $verbose = Protect-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt') -KeyId $Alias -Verbose 4>&1
        ($verbose -join "`n") | Should -Match ([regex]::Escape($Server.Endpoint.Replace('http://', '')))
        ($verbose -join "`n") | Should -Match $Key.KeyId
        ($verbose -join "`n") | Should -Not -Match 'testsecret'
    }

    It 'writes and reads the documentation sample''s legacy format on request' {
        $src = Join-Path $Root 'with space.csv'
        $hash = (Get-FileHash -LiteralPath $src).Hash
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias -Format Legacy
        (Get-Content -LiteralPath "$src.ekms").Count | Should -Be 4
        (Get-EnvelopeFileInfo -LiteralPath "$src.ekms").Format | Should -Be 'Legacy'
        Test-EnvelopeFile -LiteralPath "$src.ekms" | Should -BeTrue
        Remove-Item -LiteralPath $src
        $r = Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -PassThru
        $r.Format | Should -Be 'Legacy'
        (Get-FileHash -LiteralPath $src).Hash | Should -Be $hash
    }

    It 'stopping the pipeline mid-file leaves no partial output and no temp file' {
        $big = Join-Path $Root 'big.bin'
        $fs = [IO.File]::Create($big); $fs.SetLength(2GB); $fs.Dispose()
        $ps = [powershell]::Create()
        $null = $ps.AddScript("Import-Module '$(Join-Path $ModulePath 'EnvelopeKms.psd1')'; Protect-EnvelopeFile -LiteralPath '$big' -KeyId '$Alias' -Endpoint '$($Server.Endpoint)' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))")
        $handle = $ps.BeginInvoke()
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not (Get-ChildItem $Root -Force -Filter '*.ekms-tmp') -and [DateTime]::UtcNow -lt $deadline -and -not $handle.IsCompleted) { Start-Sleep -Milliseconds 5 }
        $handle.IsCompleted | Should -BeFalse -Because 'the test needs the encryption to be in flight when it stops it'
        $ps.Stop()
        $ps.Dispose()
        Get-ChildItem $Root -Force | Where-Object Name -Like '*big.bin*' | ForEach-Object Name | Should -Be 'big.bin'
        Remove-Item -LiteralPath $big
    }
}

Describe 'Get-EnvelopeFileInfo and Test-EnvelopeFile' {
    BeforeAll {
        $script:Root = Join-Path $TestDrive 'info'
        New-Tree $Root
        Get-ChildItem $Root -Recurse -File | Protect-EnvelopeFile -KeyId $Alias -EncryptionContext @{ team = 'ops' }
    }

    It 'shows header details without any KMS call' {
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        $info = Get-ChildItem $Root -Recurse -Filter *.ekms | Get-EnvelopeFileInfo
        $info.Count | Should -Be 6
        ($info | Where-Object { $_.Path -like '*nested.bin.ekms' }).PlaintextLength | Should -Be 256
        ($info | Where-Object { $_.Path -like '*empty.dat.ekms' }).PlaintextLength | Should -Be 0
        $info[0].Suite | Should -Be 'AES-256-GCM/HKDF-SHA-512/commit'
        $info[0].FrameLength | Should -Be 65536
        $info[0].KeyIds[0] | Should -Match $Key.KeyId
        $info[0].EncryptionContext['team'] | Should -Be 'ops'
        (Invoke-KmsControl $Server 'stats').totals.success | Should -Be 0
        ($info | Format-Table | Out-String -Width 400) | Should -Match 'team=ops'
    }

    It 'reports a non-envelope file as InvalidData' {
        Get-EnvelopeFileInfo -LiteralPath (Join-Path $Root 'plain.txt') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeNotRecognized,*'
    }

    It 'authenticates whole files without writing plaintext' {
        $files = Get-ChildItem $Root -Recurse -Filter *.ekms
        $before = (Get-ChildItem $Root -Recurse -Force).Count
        $tested = $files | Test-EnvelopeFile
        $tested.Result | Should -Be (@($true) * $files.Count)
        $tested.Path | Should -Be $files.FullName
        (Get-ChildItem $Root -Recurse -Force).Count | Should -Be $before
        $bad = Join-Path $Root 'sub dir/nested.bin.ekms'
        # The same header byte in both v2 header slots (one damaged slot alone would fall back to the other).
        $slot = (Get-EnvelopeFileInfo -LiteralPath $bad).SlotSize
        $bytes = [IO.File]::ReadAllBytes($bad)
        foreach ($at in 100, (100 + $slot)) { $bytes[$at] = $bytes[$at] -bxor 4 }
        [IO.File]::WriteAllBytes($bad, $bytes)
        Test-EnvelopeFile -LiteralPath $bad | Should -BeFalse
        Test-EnvelopeFile -LiteralPath (Join-Path $Root 'plain.txt.ekms') -EncryptionContext @{ team = 'dev' } | Should -BeFalse
    }
}

Describe 'KMS keys, aliases and connection' {
    It 'creates, describes, disables, enables, schedules and cancels deletion' {
        $k = New-KmsKey -Description 'lifecycle'
        $k.KeyState | Should -Be 'Enabled'
        (Get-KmsKey -KeyId $k.KeyId).Description | Should -Be 'lifecycle'
        $k | Disable-KmsKey -PassThru | ForEach-Object KeyState | Should -Be 'Disabled'
        $k | Enable-KmsKey -PassThru | ForEach-Object KeyState | Should -Be 'Enabled'
        $k | Remove-KmsKey -PendingWindowInDays 7 -Confirm:$false
        (Get-KmsKey -KeyId $k.KeyId).KeyState | Should -Be 'PendingDeletion'
        $k | Restore-KmsKey -PassThru | ForEach-Object KeyState | Should -Not -Be 'PendingDeletion'
        (Get-KmsKey).KeyId | Should -Contain $k.KeyId
    }

    It 'Remove-KmsKey is high impact: it needs confirmation in a non-interactive session' {
        $k = New-KmsKey -Description 'keep'
        { Remove-KmsKey -KeyId $k.KeyId -ErrorAction Stop } | Should -Throw
        (Get-KmsKey -KeyId $k.KeyId).KeyState | Should -Be 'Enabled'
    }

    It 'manages aliases through the pipeline' {
        $name = "alias/Pester/A$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $k1 = New-KmsKey; $k2 = New-KmsKey
        $a = $k1 | New-KmsAlias -AliasName $name
        $a.KeyId | Should -Be $k1.KeyId
        (Get-KmsAlias -AliasName $name).KeyId | Should -Be $k1.KeyId
        (Get-KmsAlias -KeyId $k1.KeyId).AliasName | Should -Contain $name
        Set-KmsAlias -AliasName $name -KeyId $k2.KeyId
        (Get-KmsAlias -AliasName $name).KeyId | Should -Be $k2.KeyId
        Remove-KmsAlias -AliasName $name
        Get-KmsAlias -AliasName $name -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'an existing alias is ResourceExists; an unknown key is ObjectNotFound' {
        New-KmsAlias -AliasName $Alias -KeyId $Key.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        Get-KmsKey -KeyId 'no-such-key' -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'completes -KeyId from aliases seen in the session, without calling KMS' {
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        $line = "Protect-EnvelopeFile -KeyId alias/Pester/W"
        $completion = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $completion.CompletionMatches.CompletionText | Should -Contain $Alias
        (Invoke-KmsControl $Server 'stats').totals.success | Should -Be 0
    }

    It 'Connect-Kms sets per-session defaults that Get-KmsConnection shows without secrets' {
        $c = Get-KmsConnection
        $c.Endpoint | Should -Be $Server.Endpoint
        $c.AccessKeyId | Should -Be 'testid'
        ($c | Format-List | Out-String) | Should -Not -Match 'testsecret'
    }

    It 'a CA certificate or -AllowInsecureHttp without an endpoint is a configuration error' {
        $ca = Join-Path $TestDrive 'ca.pem'; Set-Content -LiteralPath $ca -Value 'x'
        { Connect-Kms -Region cn-hangzhou -CaCertificatePath $ca } | Should -Throw -ErrorId 'KmsConfigurationInvalid*'
        { Connect-Kms -Region cn-hangzhou -AllowInsecureHttp } | Should -Throw -ErrorId 'KmsConfigurationInvalid*'
        Get-KmsConnection | ForEach-Object Endpoint | Should -Be $Server.Endpoint
    }

    It 'missing credentials stop the key cmdlets with one clear error' {
        $saved = @{}
        foreach ($name in 'HOME', 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_CREDENTIALS_URI', 'ALIBABA_CLOUD_ECS_METADATA_DISABLED') { $saved[$name] = [Environment]::GetEnvironmentVariable($name) }
        Disconnect-Kms
        try {
            $env:HOME = $TestDrive
            $env:ALIBABA_CLOUD_ACCESS_KEY_ID = $null; $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = $null; $env:ALIBABA_CLOUD_CREDENTIALS_URI = $null
            $env:ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true'
            { Get-KmsKey -Endpoint $Server.Endpoint -ErrorAction Stop } | Should -Throw -ErrorId 'KmsCredentialsFailed*'
        }
        finally {
            foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
            Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
        }
    }

    It 'refuses plain http to a remote host unless allowed' {
        { Connect-Kms -Endpoint 'http://kms.example.com' } | Should -Throw -ErrorId 'KmsConfigurationInvalid*'
        Get-KmsConnection | ForEach-Object Endpoint | Should -Be $Server.Endpoint
    }

    It 'without region or endpoint, says how to set one' {
        Disconnect-Kms
        try {
            $env:ALIBABA_CLOUD_REGION_ID = $null
            { Get-KmsKey -Credential (Get-TestCredential) -ErrorAction Stop } | Should -Throw '*region*'
        }
        finally { Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential) }
    }
}

Describe 'Module packaging' {
    It 'the staged manifest is valid and exports exactly the documented cmdlets' {
        $m = Test-ModuleManifest (Join-Path $ModulePath 'EnvelopeKms.psd1')
        $m.ExportedCmdlets.Keys | Sort-Object | Should -Be ((Get-Command -Module EnvelopeKms).Name | Sort-Object)
        $m.PowerShellVersion | Should -Be '7.4'
        $m.CompatiblePSEditions | Should -Contain 'Core'
    }

    It 'loads no third-party assembly' {
        Get-ChildItem (Join-Path $ModulePath 'bin') -Filter *.dll | ForEach-Object Name | Sort-Object |
            Should -Be @('EnvelopeKms.Core.dll', 'EnvelopeKms.dll')
    }

    It 'packs into the nupkg a Gallery publish uploads' {
        # As build.ps1 -Task Package packs: in the repository's pwsh (the dotnet local tool), whichever PowerShell runs
        # the tests. Compress-PSResource comes with PSResourceGet 1.1, bundled from PowerShell 7.5 on; packing is the
        # maintainer's step, not something the module needs from the PowerShell it runs on.
        Push-Location $RepoRoot   # dotnet finds the pwsh local tool from the repo's manifest
        try { $out = & dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $RepoRoot 'tools/New-Package.ps1') -ModulePath $ModulePath -OutputPath $TestDrive 2>&1 }
        finally { Pop-Location }
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $nupkg = Get-ChildItem $TestDrive -Filter 'EnvelopeKms.*.nupkg'
        $nupkg | Should -HaveCount 1
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($nupkg.FullName)
        try { $entries = $zip.Entries.FullName } finally { $zip.Dispose() }
        $entries | Should -Contain 'EnvelopeKms.psd1'
        $entries | Should -Contain 'bin/EnvelopeKms.dll'
        $entries | Should -Contain 'EnvelopeKms.Format.ps1xml'
        $entries | Should -Contain 'EnvelopeKms.nuspec'
    }
}
