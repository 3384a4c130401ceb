#Requires -Version 7.4
# Hostile paths through the cmdlets: symbolic links named like the output (never written through; -Force replaces
# the link itself), directories named like files, names near NAME_MAX, wildcard characters, zero-length files.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'pester hostile input'
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Hostile paths' {
    BeforeEach {
        $script:Root = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $script:Elsewhere = Join-Path $TestDrive ("elsewhere-" + [guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $Root, $Elsewhere
        $script:Victim = Join-Path $Elsewhere 'victim.conf'
        Set-Content -LiteralPath $Victim -Value 'precious' -NoNewline
    }

    It 'never writes through a symlink named like the output; -Force replaces the link, not its target' {
        $src = Join-Path $Root 'data.txt'
        Set-Content -LiteralPath $src -Value 'payload' -NoNewline
        $null = New-Item -ItemType SymbolicLink -Path "$src.ekms" -Target $Victim

        Protect-EnvelopeFile -LiteralPath $src -KeyId $Key.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationExists,*'
        Get-Content -LiteralPath $Victim -Raw | Should -Be 'precious'
        (Get-Item -LiteralPath "$src.ekms").LinkType | Should -Be 'SymbolicLink'

        Protect-EnvelopeFile -LiteralPath $src -KeyId $Key.KeyId -Force
        Get-Content -LiteralPath $Victim -Raw | Should -Be 'precious'
        (Get-Item -LiteralPath "$src.ekms").LinkType | Should -BeNullOrEmpty
        (Get-EnvelopeFileInfo -LiteralPath "$src.ekms").PlaintextLength | Should -Be 7

        # Decryption, with the plaintext's name now a link to the victim.
        Remove-Item -LiteralPath $src
        $null = New-Item -ItemType SymbolicLink -Path $src -Target $Victim
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationExists,*'
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -Force
        Get-Content -LiteralPath $Victim -Raw | Should -Be 'precious'
        Get-Content -LiteralPath $src -Raw | Should -Be 'payload'
        (Get-Item -LiteralPath $src).LinkType | Should -BeNullOrEmpty
        @(Get-ChildItem -LiteralPath $Elsewhere).Count | Should -Be 1
    }

    It 'does not create the target of a dangling symlink named like the output' {
        $src = Join-Path $Root 'd.txt'
        Set-Content -LiteralPath $src -Value 'x' -NoNewline
        $target = Join-Path $Elsewhere 'created-through-link'
        $null = New-Item -ItemType SymbolicLink -Path "$src.ekms" -Target $target
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Key.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationExists,*'
        $target | Should -Not -Exist
    }

    It 'refuses a directory named like the output, even with -Force, and skips a directory named like an envelope' {
        $src = Join-Path $Root 'report.csv'
        Set-Content -LiteralPath $src -Value 'a,b' -NoNewline
        $null = New-Item -ItemType Directory -Path "$src.ekms"
        Set-Content -LiteralPath (Join-Path "$src.ekms" 'inside') -Value 'keep' -NoNewline
        foreach ($force in $false, $true) {
            Protect-EnvelopeFile -LiteralPath $src -KeyId $Key.KeyId -Force:$force -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -BeGreaterThan 0
            Get-Content -LiteralPath (Join-Path "$src.ekms" 'inside') -Raw | Should -Be 'keep'
        }
        Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -WarningVariable warn -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        ($warn.Count + $err.Count) | Should -BeGreaterThan 0
        Get-ChildItem -LiteralPath $Root -Force -Recurse -Filter '*.ekms-tmp' | Should -BeNullOrEmpty
    }

    It 'round-trips names near NAME_MAX in 3-byte characters, wildcard characters taken literally, and empty files' {
        $long = Join-Path $Root ('日' * 83)
        Set-Content -LiteralPath $long -Value 'long' -NoNewline
        $wild = Join-Path $Root 'a[1]*?.txt'
        $decoy = Join-Path $Root 'a1x.txt'
        Set-Content -LiteralPath $wild -Value 'wild' -NoNewline
        Set-Content -LiteralPath $decoy -Value 'decoy' -NoNewline
        $empty = Join-Path $Root 'empty file.dat'
        $null = New-Item -ItemType File -Path $empty
        Protect-EnvelopeFile -LiteralPath $long, $wild, $empty -KeyId $Key.KeyId
        "$decoy.ekms" | Should -Not -Exist
        Remove-Item -LiteralPath $long, $wild, $empty
        Unprotect-EnvelopeFile -LiteralPath "$long.ekms", "$wild.ekms", "$empty.ekms"
        Get-Content -LiteralPath $long -Raw | Should -Be 'long'
        Get-Content -LiteralPath $wild -Raw | Should -Be 'wild'
        (Get-Item -LiteralPath $empty).Length | Should -Be 0
        Get-Content -LiteralPath $decoy -Raw | Should -Be 'decoy'
    }
}
