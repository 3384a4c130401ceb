#Requires -Version 7.4
# The least-privilege table of docs/production.md, proven: two local KMS servers (cn-hangzhou, and cn-shanghai for
# the second region) enforce one policy file. For each row the cmdlet succeeds as an AccessKey that has exactly the
# row's grants, and with any one grant taken away it fails with a PermissionDenied error that names the missing
# action and resource ("this needs kms:Decrypt on acs:kms:…"), with nothing written or lost. The AccessKey 'testid'
# is not in the policy file, so it is unrestricted: it prepares and inspects, like an account administrator.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:PolicyFile = Join-Path $TestDrive 'policies.json'
    Set-Content -LiteralPath $PolicyFile -Value '{}'
    $serverArgs = '--policy-file', $PolicyFile, '--access-key', 'testid:testsecret', '--access-key', 'operator:operator-secret'
    $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou -ArgumentList $serverArgs
    $script:Shanghai = Start-TestKmsServer -Region cn-shanghai -ArgumentList $serverArgs
    $script:Account = '1234567890123456'

    function Use-Kms([pscredential] $Credential) {
        Connect-Kms -Endpoint $Hangzhou.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -Credential $Credential -MaxAttempts 2
    }
    $script:Admin = Get-TestCredential
    $script:Operator = Get-TestCredential 'operator' 'operator-secret'
    Use-Kms $Admin
    $script:Keys = @{
        K1 = New-KmsKey -Description 'least privilege 1'
        K2 = New-KmsKey -Description 'least privilege 2'
        K3 = New-KmsKey -Description 'least privilege lifecycle'
        KS = New-KmsKey -Description 'least privilege shanghai' -Endpoint $Shanghai.Endpoint -Region cn-shanghai
    }

    # Symbolic resources of the row table, turned into ARNs once the keys exist.
    function Resolve-Resource([string] $Name) {
        switch -Regex ($Name) {
            '^K\d|^KS$' { return $Keys[$Name].Arn }
            '^keys$' { return "acs:kms:cn-hangzhou:${Account}:key" }
            '^allkeys$' { return "acs:kms:cn-hangzhou:${Account}:key/*" }
            '^aliases$' { return "acs:kms:cn-hangzhou:${Account}:alias" }
            '^alias/' { return "acs:kms:cn-hangzhou:${Account}:$Name" }
            default { throw "unknown resource $Name" }
        }
    }

    # The operator's policy: exactly these grants (the servers re-read the file on their next call).
    function Set-OperatorPolicy([object[]] $Grants) {
        $statements = @($Grants | ForEach-Object { [ordered]@{ Effect = 'Allow'; Action = $_.Action; Resource = (Resolve-Resource $_.Resource) } })
        @{ AccessKeys = @{ operator = [ordered]@{ Version = '1'; Statement = $statements } } } | ConvertTo-Json -Depth 8 | Set-Content -LiteralPath $PolicyFile
    }

    function New-RowDirectory {
        $dir = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $dir
        $dir
    }

    # Every file under a directory with its hash: equal before and after a refused run means nothing was written or lost.
    function Get-DirectorySnapshot([string] $Dir) {
        (Get-ChildItem -LiteralPath $Dir -Force -File -Recurse | Sort-Object FullName | ForEach-Object { "$($_.Name)=$((Get-FileHash -LiteralPath $_.FullName).Hash)" }) -join ';'
    }

    function New-SealedFile([string[]] $KeyIds) {
        $dir = New-RowDirectory
        $src = Join-Path $dir 'data.bin'
        New-RandomFile -Path $src -Length 20000
        $hash = (Get-FileHash -LiteralPath $src).Hash
        Protect-EnvelopeFile -LiteralPath $src -KeyId $KeyIds -RemoveSource -Force
        @{ Dir = $dir; Src = $src; Sealed = "$src.ekms"; Hash = $hash }
    }

    function Set-TestAlias([string] $Name, [string] $KeyId) {
        if (Get-KmsAlias -AliasName $Name -ErrorAction SilentlyContinue) { Set-KmsAlias -AliasName $Name -KeyId $KeyId }
        else { New-KmsAlias -AliasName $Name -KeyId $KeyId }
    }

    # K3 is the lifecycle rows' key: each starts from Enabled, whatever the row before left.
    function Reset-LifecycleKey {
        $state = (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState
        if ($state -eq 'PendingDeletion') { Restore-KmsKey -KeyId $Keys.K3.KeyId; $state = (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState }
        if ($state -eq 'Disabled') { Enable-KmsKey -KeyId $Keys.K3.KeyId }
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Hangzhou
    Stop-TestKmsServer $Shanghai
}

Describe 'Least privilege per cmdlet (docs/production.md)' {
    BeforeDiscovery {
        # Grants name symbolic resources (K1, K2, K3 in cn-hangzhou, KS in cn-shanghai; keys/aliases = the containers).
        # Named: what the error names when the request alone cannot say the key (an alias's key, a bare blob's key).
        $script:Rows = @(
            @{ Row = 'Protect-EnvelopeFile, one key'; Grants = @(@{ Action = 'kms:GenerateDataKey'; Resource = 'K1' })
                Prepare = { $d = New-RowDirectory; $s = Join-Path $d 'data.bin'; New-RandomFile -Path $s -Length 20000; @{ Dir = $d; Src = $s } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath "$($s.Src).ekms").WrappedKeys.Count | Should -Be 1 } }
            @{ Row = 'Protect-EnvelopeFile, keys in two regions'; Grants = @(@{ Action = 'kms:GenerateDataKey'; Resource = 'K1' }, @{ Action = 'kms:Encrypt'; Resource = 'KS' })
                Prepare = { $d = New-RowDirectory; $s = Join-Path $d 'data.bin'; New-RandomFile -Path $s -Length 20000; @{ Dir = $d; Src = $s } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId, $Keys.KS.Arn }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath "$($s.Src).ekms").WrappedKeys.Region | Should -Be 'cn-hangzhou', 'cn-shanghai' } }
            @{ Row = 'Protect-EnvelopeFile -Format AlibabaSdk'; Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K1' }, @{ Action = 'kms:GenerateDataKey'; Resource = 'K1' })
                Prepare = { $d = New-RowDirectory; $s = Join-Path $d 'data.bin'; New-RandomFile -Path $s -Length 20000; @{ Dir = $d; Src = $s } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId -Format AlibabaSdk }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath "$($s.Src).ekms").Format | Should -Be 'AlibabaSdk' } }
            @{ Row = 'Protect-EnvelopeFile -Format Legacy'; Grants = @(@{ Action = 'kms:GenerateDataKey'; Resource = 'K1' })
                Prepare = { $d = New-RowDirectory; $s = Join-Path $d 'data.bin'; New-RandomFile -Path $s -Length 20000; @{ Dir = $d; Src = $s } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId -Format Legacy }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath "$($s.Src).ekms").Format | Should -Be 'Legacy' } }
            # The source is deleted only after the output is written and verified; a refused run must leave it in place.
            @{ Row = 'Protect-EnvelopeFile -RemoveSource'; Grants = @(@{ Action = 'kms:GenerateDataKey'; Resource = 'K1' })
                Prepare = { $d = New-RowDirectory; $s = Join-Path $d 'data.bin'; New-RandomFile -Path $s -Length 20000; @{ Dir = $d; Src = $s; Hash = (Get-FileHash -LiteralPath $s).Hash } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId -RemoveSource -Force }
                Check = { param($s) Test-Path -LiteralPath $s.Src | Should -BeFalse; (Get-EnvelopeFileInfo -LiteralPath "$($s.Src).ekms").WrappedKeys.Count | Should -Be 1 }
                Refused = { param($s) (Get-FileHash -LiteralPath $s.Src).Hash | Should -Be $s.Hash } }
            @{ Row = 'Protect-EnvelopeFile -DataKeyPerFile'; Grants = @(@{ Action = 'kms:GenerateDataKey'; Resource = 'K1' })
                Prepare = { $d = New-RowDirectory; $a = Join-Path $d 'a.bin'; $b = Join-Path $d 'b.bin'; New-RandomFile -Path $a -Length 20000; New-RandomFile -Path $b -Length 20000; @{ Dir = $d; Src = $a, $b } }
                Run = { param($s) Protect-EnvelopeFile -LiteralPath $s.Src -KeyId $Keys.K1.KeyId -DataKeyPerFile }
                Check = { param($s) $s.Src | ForEach-Object { (Get-EnvelopeFileInfo -LiteralPath "$_.ekms").WrappedKeys.Count | Should -Be 1 } } }
            @{ Row = 'Unprotect-EnvelopeFile'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' })
                Prepare = { New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Unprotect-EnvelopeFile -LiteralPath $s.Sealed }
                Check = { param($s) (Get-FileHash -LiteralPath $s.Src).Hash | Should -Be $s.Hash } }
            @{ Row = 'Unprotect-EnvelopeFile -AllowedKeyId alias/…'
                Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K1'; Named = 'the key alias/lp-read points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-read>)' }, @{ Action = 'kms:Decrypt'; Resource = 'K1' })
                Prepare = { Set-TestAlias alias/lp-read $Keys.K1.KeyId; New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Unprotect-EnvelopeFile -LiteralPath $s.Sealed -AllowedKeyId alias/lp-read }
                Check = { param($s) (Get-FileHash -LiteralPath $s.Src).Hash | Should -Be $s.Hash } }
            @{ Row = 'Test-EnvelopeFile'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' })
                Prepare = { New-SealedFile $Keys.K1.KeyId }
                # A file that does not authenticate is $false, not an error; the reason is in the verbose stream.
                Run = { param($s) $out = Test-EnvelopeFile -LiteralPath $s.Sealed -Verbose 4>&1
                    if ($out -notcontains $true) { throw (($out | Where-Object { $_ -is [Management.Automation.VerboseRecord] }).Message -join ' ') } }
                Check = { param($s) } }
            @{ Row = 'Update-EnvelopeFileKey -AddKeyId'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' }, @{ Action = 'kms:Encrypt'; Resource = 'K2' })
                Prepare = { New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -AddKeyId $Keys.K2.KeyId }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.KeyId | Should -Be $Keys.K1.KeyId, $Keys.K2.KeyId } }
            @{ Row = 'Update-EnvelopeFileKey -RemoveKeyId'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' })
                Prepare = { New-SealedFile $Keys.K1.KeyId, $Keys.K2.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -RemoveKeyId $Keys.K2.KeyId }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.KeyId | Should -Be $Keys.K1.KeyId } }
            # Replacing the set K1, K2 by K2, KS: K1 goes (no grant), K2 stays (no Encrypt), only KS, not yet in the file, is encrypted under.
            @{ Row = 'Update-EnvelopeFileKey -KeyId (replace the set)'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' }, @{ Action = 'kms:Encrypt'; Resource = 'KS' })
                Prepare = { New-SealedFile $Keys.K1.KeyId, $Keys.K2.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -KeyId $Keys.K2.KeyId, $Keys.KS.Arn }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.Region | Should -Be 'cn-hangzhou', 'cn-shanghai'
                    (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys[0].KeyId | Should -Be $Keys.K2.KeyId } }
            @{ Row = 'Update-EnvelopeFileKey -AddKeyId alias/…'
                Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K2'; Named = 'the key alias/lp-add points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-add>)' }, @{ Action = 'kms:Decrypt'; Resource = 'K1' }
                    # The Encrypt call names the alias, so the error can only say the key it points to.
                    @{ Action = 'kms:Encrypt'; Resource = 'K2'; Named = 'the key alias/lp-add points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-add>)' })
                Prepare = { Set-TestAlias alias/lp-add $Keys.K2.KeyId; New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -AddKeyId alias/lp-add }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.KeyId | Should -Be $Keys.K1.KeyId, $Keys.K2.KeyId } }
            @{ Row = 'Update-EnvelopeFileKey -RemoveKeyId alias/…'
                Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K2'; Named = 'the key alias/lp-rm points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-rm>)' }, @{ Action = 'kms:Decrypt'; Resource = 'K1' })
                Prepare = { Set-TestAlias alias/lp-rm $Keys.K2.KeyId; New-SealedFile $Keys.K1.KeyId, $Keys.K2.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -RemoveKeyId alias/lp-rm }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.KeyId | Should -Be $Keys.K1.KeyId } }
            @{ Row = 'Update-EnvelopeFileKey -KeyId alias/…'
                Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K2'; Named = 'the key alias/lp-set points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-set>)' }, @{ Action = 'kms:Decrypt'; Resource = 'K1' }
                    # The Encrypt call names the alias, so the error can only say the key it points to.
                    @{ Action = 'kms:Encrypt'; Resource = 'K2'; Named = 'the key alias/lp-set points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id of alias/lp-set>)' })
                Prepare = { Set-TestAlias alias/lp-set $Keys.K2.KeyId; New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Update-EnvelopeFileKey -LiteralPath $s.Sealed -KeyId alias/lp-set }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).WrappedKeys.KeyId | Should -Be $Keys.K2.KeyId } }
            @{ Row = 'Convert-EnvelopeFile -To AlibabaSdk, in place'
                Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' }, @{ Action = 'kms:DescribeKey'; Resource = 'K2' }, @{ Action = 'kms:GenerateDataKey'; Resource = 'K2' }, @{ Action = 'kms:Decrypt'; Resource = 'K2' })
                Prepare = { New-SealedFile $Keys.K1.KeyId }
                Run = { param($s) Convert-EnvelopeFile -LiteralPath $s.Sealed -To AlibabaSdk -KeyId $Keys.K2.KeyId }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Sealed).Format | Should -Be 'AlibabaSdk' } }
            @{ Row = 'Convert-EnvelopeFile -To AlibabaSdk -Destination'
                Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1' }, @{ Action = 'kms:DescribeKey'; Resource = 'K2' }, @{ Action = 'kms:GenerateDataKey'; Resource = 'K2' })
                Prepare = { $s = New-SealedFile $Keys.K1.KeyId; $s.Out = Join-Path $s.Dir 'converted.sdk'; $s }
                Run = { param($s) Convert-EnvelopeFile -LiteralPath $s.Sealed -To AlibabaSdk -KeyId $Keys.K2.KeyId -Destination $s.Out }
                Check = { param($s) (Get-EnvelopeFileInfo -LiteralPath $s.Out).Format | Should -Be 'AlibabaSdk' } }
            @{ Row = 'Protect-KmsSecret'; Grants = @(@{ Action = 'kms:Encrypt'; Resource = 'K1' })
                Prepare = { @{} }
                Run = { param($s) Protect-KmsSecret -KeyId $Keys.K1.KeyId -Bytes ([byte[]](1, 2, 3)) }
                Check = { param($s) } }
            @{ Row = 'Unprotect-KmsSecret'; Grants = @(@{ Action = 'kms:Decrypt'; Resource = 'K1'; Named = "the key that encrypted the CiphertextBlob (acs:kms:cn-hangzhou:1234567890123456:key/<key-id>)" })
                Prepare = { @{ Blob = Protect-KmsSecret -KeyId $Keys.K1.KeyId -Bytes ([byte[]](1, 2, 3)) } }
                Run = { param($s) Unprotect-KmsSecret -CiphertextBlob $s.Blob -AsBytes }
                Check = { param($s) } }
            @{ Row = 'New-KmsKey'; Grants = @(@{ Action = 'kms:CreateKey'; Resource = 'keys' })
                Prepare = { @{ Snapshot = { @(Get-KmsKey).Count } } }
                Run = { param($s) New-KmsKey -Description 'made by the operator' }
                Check = { param($s) } }
            # Listing describes every key it lists, so it needs DescribeKey on all of them (key/*).
            @{ Row = 'Get-KmsKey (list)'; Grants = @(@{ Action = 'kms:ListKeys'; Resource = 'keys' }, @{ Action = 'kms:DescribeKey'; Resource = 'allkeys'; Named = 'acs:kms:cn-hangzhou:1234567890123456:key/' })
                Prepare = { @{} }
                Run = { param($s) Get-KmsKey }
                Check = { param($s) } }
            @{ Row = 'Get-KmsKey -KeyId'; Grants = @(@{ Action = 'kms:DescribeKey'; Resource = 'K1' })
                Prepare = { @{} }
                Run = { param($s) Get-KmsKey -KeyId $Keys.K1.KeyId }
                Check = { param($s) } }
            @{ Row = 'Disable-KmsKey'; Grants = @(@{ Action = 'kms:DisableKey'; Resource = 'K3' })
                Prepare = { Reset-LifecycleKey; @{ Snapshot = { (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState } } }
                Run = { param($s) Disable-KmsKey -KeyId $Keys.K3.KeyId }
                Check = { param($s) (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState | Should -Be 'Disabled'; Enable-KmsKey -KeyId $Keys.K3.KeyId } }
            @{ Row = 'Enable-KmsKey'; Grants = @(@{ Action = 'kms:EnableKey'; Resource = 'K3' })
                Prepare = { Reset-LifecycleKey; Disable-KmsKey -KeyId $Keys.K3.KeyId; @{ Snapshot = { (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState } } }
                Run = { param($s) Enable-KmsKey -KeyId $Keys.K3.KeyId }
                Check = { param($s) (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState | Should -Be 'Enabled' } }
            @{ Row = 'Remove-KmsKey (schedule deletion)'; Grants = @(@{ Action = 'kms:ScheduleKeyDeletion'; Resource = 'K3' })
                Prepare = { Reset-LifecycleKey; @{ Snapshot = { (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState } } }
                Run = { param($s) Remove-KmsKey -KeyId $Keys.K3.KeyId -PendingWindowInDays 7 -Confirm:$false }
                Check = { param($s) (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState | Should -Be 'PendingDeletion'; Restore-KmsKey -KeyId $Keys.K3.KeyId } }
            @{ Row = 'Restore-KmsKey'; Grants = @(@{ Action = 'kms:CancelKeyDeletion'; Resource = 'K3' })
                Prepare = { Reset-LifecycleKey; Remove-KmsKey -KeyId $Keys.K3.KeyId -PendingWindowInDays 7 -Confirm:$false; @{ Snapshot = { (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState } } }
                Run = { param($s) Restore-KmsKey -KeyId $Keys.K3.KeyId }
                Check = { param($s) (Get-KmsKey -KeyId $Keys.K3.KeyId).KeyState | Should -Be 'Enabled' } }
            @{ Row = 'New-KmsAlias'; Grants = @(@{ Action = 'kms:CreateAlias'; Resource = 'alias/lp-new' }, @{ Action = 'kms:CreateAlias'; Resource = 'K1' })
                Prepare = { if (Get-KmsAlias -AliasName alias/lp-new -ErrorAction SilentlyContinue) { Remove-KmsAlias -AliasName alias/lp-new -Confirm:$false }
                    @{ Snapshot = { (Get-KmsAlias | Sort-Object AliasName | ForEach-Object { "$($_.AliasName)>$($_.KeyId)" }) -join ';' } } }
                Run = { param($s) New-KmsAlias -AliasName alias/lp-new -KeyId $Keys.K1.KeyId }
                Check = { param($s) (Get-KmsAlias -AliasName alias/lp-new).KeyId | Should -Be $Keys.K1.KeyId } }
            @{ Row = 'Set-KmsAlias'; Grants = @(@{ Action = 'kms:UpdateAlias'; Resource = 'alias/lp-app' }, @{ Action = 'kms:UpdateAlias'; Resource = 'K2' })
                Prepare = { Set-TestAlias alias/lp-app $Keys.K1.KeyId
                    @{ Snapshot = { (Get-KmsAlias | Sort-Object AliasName | ForEach-Object { "$($_.AliasName)>$($_.KeyId)" }) -join ';' } } }
                Run = { param($s) Set-KmsAlias -AliasName alias/lp-app -KeyId $Keys.K2.KeyId }
                Check = { param($s) (Get-KmsAlias -AliasName alias/lp-app).KeyId | Should -Be $Keys.K2.KeyId } }
            @{ Row = 'Remove-KmsAlias'
                Grants = @(@{ Action = 'kms:DeleteAlias'; Resource = 'alias/lp-old' }, @{ Action = 'kms:DeleteAlias'; Resource = 'K1'; Named = 'the key alias/lp-old points to (acs:kms:cn-hangzhou:1234567890123456:key/<key-id>)' })
                Prepare = { Set-TestAlias alias/lp-old $Keys.K1.KeyId
                    @{ Snapshot = { (Get-KmsAlias | Sort-Object AliasName | ForEach-Object { "$($_.AliasName)>$($_.KeyId)" }) -join ';' } } }
                Run = { param($s) Remove-KmsAlias -AliasName alias/lp-old -Confirm:$false }
                Check = { param($s) Get-KmsAlias -AliasName alias/lp-old -ErrorAction SilentlyContinue | Should -BeNullOrEmpty } }
            @{ Row = 'Get-KmsAlias'; Grants = @(@{ Action = 'kms:ListAliases'; Resource = 'aliases' })
                Prepare = { @{} }
                Run = { param($s) Get-KmsAlias }
                Check = { param($s) } }
            @{ Row = 'Get-KmsAlias -KeyId'; Grants = @(@{ Action = 'kms:ListAliasesByKeyId'; Resource = 'K1' })
                Prepare = { @{} }
                Run = { param($s) Get-KmsAlias -KeyId $Keys.K1.KeyId }
                Check = { param($s) } }
        )
        # Each grant knows its place, so the test can take exactly that one away.
        foreach ($row in $Rows) { for ($i = 0; $i -lt $row.Grants.Count; $i++) { $row.Grants[$i].Index = $i } }
    }

    Context '<Row>' -ForEach $Rows {
        BeforeAll {
            # Runs the row as the operator; returns its output and the error, if any. Preparation and inspection run as the administrator.
            function Invoke-AsOperator($State) {
                $output = [Collections.Generic.List[object]]::new()
                $failure = $null
                Use-Kms $Operator
                try {
                    # Any error, terminating or not, ends the row: what it wrote before that is kept for the checks.
                    $ErrorActionPreference = 'Stop'
                    & $Run $State | ForEach-Object { $output.Add($_) }
                }
                catch { $failure = $_ }
                finally { $ErrorActionPreference = 'Continue'; Use-Kms $Admin }
                [pscustomobject]@{ Output = $output.ToArray(); Error = $failure }
            }
            function Get-Snapshot($State) {
                if ($State.Dir) { Get-DirectorySnapshot $State.Dir }
                elseif ($State.Snapshot) { & $State.Snapshot }
                else { '' }
            }
        }

        It 'succeeds with exactly its grants' {
            Set-OperatorPolicy $Grants
            $state = & $Prepare
            $result = Invoke-AsOperator $state
            $result.Error | Should -BeNullOrEmpty
            & $Check $state
        }

        It 'fails without <_.Action> on <_.Resource>, naming it, with nothing written or lost' -ForEach $Grants {
            $missing = $_
            Set-OperatorPolicy @($Grants | Where-Object Index -NE $missing.Index)
            $state = & $Prepare
            $before = Get-Snapshot $state
            $result = Invoke-AsOperator $state
            $result.Error | Should -Not -BeNullOrEmpty -Because 'the operator lacks a grant'
            $message = $result.Error.ToString()
            $named = if ($missing.Named) { $missing.Named } else { Resolve-Resource $missing.Resource }
            $message | Should -BeLike "*this needs $($missing.Action) on *"
            $message.Contains($named) | Should -BeTrue -Because "the message should name $named`: $message"
            if ($result.Error -isnot [Management.Automation.ErrorRecord] -or $result.Error.FullyQualifiedErrorId -notlike 'KmsRefused*') {
                # Test-EnvelopeFile reports through its verbose stream: the thrown text is the module's own reason.
                $Row | Should -Be 'Test-EnvelopeFile'
            }
            else {
                $result.Error.CategoryInfo.Category | Should -Be 'PermissionDenied'
            }
            $result.Output | Should -BeNullOrEmpty
            Get-Snapshot $state | Should -Be $before
            if ($state.Dir) { Get-EkmsTempFile $state.Dir | Should -BeNullOrEmpty }
            if ($Refused) { & $Refused $state }
        }
    }

    # The cmdlets that need nothing: an AccessKey named in the policy file with no statements may call no action at all.
    Context 'Get-EnvelopeFileInfo, Connect-Kms, Get-KmsConnection, Disconnect-Kms, tab completion' {
        It 'work for an AccessKey whose policy grants nothing' {
            Set-OperatorPolicy @()
            (Get-Content -Raw -LiteralPath $PolicyFile | ConvertFrom-Json -AsHashtable).AccessKeys.operator.Statement.Count | Should -Be 0
            $sealed = New-SealedFile $Keys.K1.KeyId
            $before = Get-DirectorySnapshot $sealed.Dir
            try {
                Use-Kms $Operator
                $connection = Get-KmsConnection
                $connection.AccessKeyId | Should -Be 'operator'
                $connection.Endpoint | Should -Be $Hangzhou.Endpoint
                $info = Get-EnvelopeFileInfo -LiteralPath $sealed.Sealed
                $info.WrappedKeys.KeyId | Should -Be $Keys.K1.KeyId
                $completion = TabExpansion2 -inputScript "Protect-EnvelopeFile -KeyId $($Keys.K1.KeyId.Substring(0, 8))" -cursorColumn ("Protect-EnvelopeFile -KeyId ".Length + 8)
                $completion.CompletionMatches.CompletionText | Should -Contain $Keys.K1.KeyId
                # The policy really grants nothing: any KMS call is refused, naming what it needs.
                $refused = $null
                try { Get-KmsKey -KeyId $Keys.K1.KeyId -ErrorAction Stop } catch { $refused = $_ }
                $refused | Should -Not -BeNullOrEmpty
                $refused.CategoryInfo.Category | Should -Be 'PermissionDenied'
                $refused.ToString() | Should -BeLike "*this needs kms:DescribeKey on $($Keys.K1.Arn)*"
                Disconnect-Kms
                Get-KmsConnection | Should -BeNullOrEmpty
            }
            finally { Use-Kms $Admin }
            Get-DirectorySnapshot $sealed.Dir | Should -Be $before
        }
    }
}
