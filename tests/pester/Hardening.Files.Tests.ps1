#Requires -Version 7.4
# Issue 18 (adversarial review), as a user runs the module: outputs obey the umask; a destination that is the
# source by another path is refused; -RemoveSource refuses a source whose name is not its only link.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'pester hardening files'


    function script:Invoke-ChildPwsh {
        <# Runs a script in a fresh pwsh with the module imported and connected, under -Umask if given; returns its stdout (JSON). #>
        param([string] $Script, [string] $Umask)
        $prologue = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$(Join-Path $ModulePath 'EnvelopeKms.psd1')'
Connect-Kms -Endpoint '$($Server.Endpoint)' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))
"@
        $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($prologue + "`n" + $Script))
        $exe = [Environment]::ProcessPath
        $entry = if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { "'$([Reflection.Assembly]::GetEntryAssembly().Location)'" } else { '' }
        $command = "exec '$exe' $entry -NoProfile -NonInteractive -EncodedCommand $encoded"
        if ($Umask) { $command = "umask $Umask && $command" }
        $output = & /bin/sh -c $command 2>&1
        if ($LASTEXITCODE -ne 0) { throw "child pwsh failed ($LASTEXITCODE): $output" }
        ($output | Select-Object -Last 1) | ConvertFrom-Json
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Output permissions and the umask (issue 18)' -Skip:(-not $IsLinux) {
    It 'never gives a decrypted file more than the umask allows: 0644 under umask 077 gives 0600, 0666 under umask 022 gives 0644' {
        $dir = Join-Path $TestDrive 'umask'
        $null = New-Item -ItemType Directory -Path $dir
        $child = @"
`$r = [ordered]@{}
foreach (`$case in @(@{ Name = 'a'; Mode = '644' }, @{ Name = 'b'; Mode = '666' })) {
    `$plain = Join-Path '$dir' `$case.Name
    Set-Content -LiteralPath `$plain -Value 'secret' -NoNewline
    `$null = Protect-EnvelopeFile -LiteralPath `$plain -KeyId '$($Key.KeyId)'
    Remove-Item -LiteralPath `$plain
    [IO.File]::SetUnixFileMode("`$plain.ekms", [Convert]::ToInt32(`$case.Mode, 8))
    Unprotect-EnvelopeFile -LiteralPath "`$plain.ekms"
    `$r[`$case.Name] = [Convert]::ToString([int][IO.File]::GetUnixFileMode(`$plain), 8)
    Remove-Item -LiteralPath `$plain, "`$plain.ekms"
}
`$r | ConvertTo-Json -Compress
"@
        $strict = Invoke-ChildPwsh -Script $child -Umask 077
        $strict.a | Should -Be '600'
        $strict.b | Should -Be '600'
        $usual = Invoke-ChildPwsh -Script $child -Umask 022
        $usual.a | Should -Be '644'
        $usual.b | Should -Be '644'
    }
}

Describe 'The source by another path, and -RemoveSource (issue 18)' -Skip:(-not $IsLinux) {
    BeforeEach {
        $script:Root = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $Root
        $script:Via = Join-Path $Root 'via'
        $null = New-Item -ItemType SymbolicLink -Path $Via -Target $Root
        $script:Src = Join-Path $Root 'a.txt'
        Set-Content -LiteralPath $Src -Value 'plaintext' -NoNewline
    }

    It 'refuses a destination that reaches the source through a symlinked directory, for Protect, Unprotect and Convert' {
        Protect-EnvelopeFile -LiteralPath $Src -KeyId $Key.KeyId -Destination (Join-Path $Via 'a.txt') -Force -RemoveSource -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationIsSource,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        Get-Content -LiteralPath $Src -Raw | Should -Be 'plaintext'

        $null = Protect-EnvelopeFile -LiteralPath $Src -KeyId $Key.KeyId
        $ciphertext = Get-FileHash -LiteralPath "$Src.ekms"
        Unprotect-EnvelopeFile -LiteralPath "$Src.ekms" -Destination (Join-Path $Via 'a.txt.ekms') -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationIsSource,*'
        Convert-EnvelopeFile -LiteralPath "$Src.ekms" -To Legacy -KeyId $Key.KeyId -Destination (Join-Path $Via 'a.txt.ekms') -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationIsSource,*'
        (Get-FileHash -LiteralPath "$Src.ekms").Hash | Should -Be $ciphertext.Hash
        @(Get-EkmsTempFile $Root).Count | Should -Be 0
    }

    It 'refuses -RemoveSource on a symbolic link before writing anything, and leaves the link and its target' {
        $link = Join-Path $Root 'link.txt'
        $null = New-Item -ItemType SymbolicLink -Path $link -Target $Src
        Protect-EnvelopeFile -LiteralPath $link -KeyId $Key.KeyId -RemoveSource -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeSourceNotRemovable,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
        $err[0].Exception.Message | Should -BeLike '*symbolic link*'
        Test-Path -LiteralPath "$link.ekms" | Should -BeFalse
        (Get-Item -LiteralPath $link).LinkType | Should -Be 'SymbolicLink'
        Get-Content -LiteralPath $Src -Raw | Should -Be 'plaintext'
    }

    It 'refuses -RemoveSource on a file with another hard link before writing anything; an only link is removed' {
        $other = Join-Path $Root 'b.txt'
        $null = New-Item -ItemType HardLink -Path $other -Target $Src
        Protect-EnvelopeFile -LiteralPath $Src -KeyId $Key.KeyId -RemoveSource -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeSourceNotRemovable,*'
        $err[0].Exception.Message | Should -BeLike '*other hard link*'
        Test-Path -LiteralPath "$Src.ekms" | Should -BeFalse
        Get-Content -LiteralPath $Src -Raw | Should -Be 'plaintext'

        Remove-Item -LiteralPath $other
        $result = Protect-EnvelopeFile -LiteralPath $Src -KeyId $Key.KeyId -RemoveSource -Force -PassThru
        $result.SourceRemoved | Should -BeTrue
        Test-Path -LiteralPath $Src | Should -BeFalse
    }
}
