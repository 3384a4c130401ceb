#Requires -Version 7.4
# Issue 18 (adversarial review), as a user runs the module: memory spent on a hostile file before it is validated
# is bounded by what the format can check, not by the file's length (peak RSS of a child pwsh, on sparse files);
# outputs obey the umask; a destination that is the source by another path is refused; -RemoveSource refuses a
# source whose name is not its only link.
# These tests read Linux facts (/proc peak RSS, the umask of a /bin/sh child, statx identities); the suites run on
# Linux (CI included), so they always run rather than being skipped on other systems.

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

Describe 'Memory before validation (issue 18)' {
    It 'refuses sparse hostile files after reading what their format can check, whatever their length, alone and four at once' {
        $dir = Join-Path $TestDrive 'sparse'
        $null = New-Item -ItemType Directory -Path $dir
        $child = @"
`$dir = '$dir'
function New-Sparse([string] `$Name, [byte[]] `$Prefix, [long] `$Length) {
    `$path = Join-Path `$dir `$Name
    `$f = [IO.File]::Create(`$path); `$f.Write(`$Prefix, 0, `$Prefix.Length); `$f.SetLength(`$Length); `$f.Dispose()
    `$path
}
function Measure-Peak([scriptblock] `$Action) {
    [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
    `$rss = [long]((Get-Content /proc/self/status | Where-Object { `$_ -like 'VmRSS:*' }) -replace '\D', '') * 1KB
    [IO.File]::WriteAllText('/proc/self/clear_refs', '5') # resets VmHWM to the current RSS
    `$watch = [Diagnostics.Stopwatch]::StartNew()
    `$errors = @(& `$Action 2>&1 | Where-Object { `$_ -is [Management.Automation.ErrorRecord] } | ForEach-Object { `$_.FullyQualifiedErrorId.Split(',')[0] })
    `$hwm = [long]((Get-Content /proc/self/status | Where-Object { `$_ -like 'VmHWM:*' }) -replace '\D', '') * 1KB
    [pscustomobject]@{ Growth = `$hwm - `$rss; Seconds = `$watch.Elapsed.TotalSeconds; Errors = `$errors }
}
`$legacy = [Text.Encoding]::ASCII.GetBytes("QUFBQUFBQUFBQUFBQUFBQUFBQUFB``n")
`$ErrorActionPreference = 'Continue'
`$r = [ordered]@{}
`$one = New-Sparse 'one.enc' `$legacy (256MB - 1)
`$r.Unprotect = Measure-Peak { Unprotect-EnvelopeFile -LiteralPath `$one -Destination (Join-Path `$dir 'one.out') }
`$four = 1..4 | ForEach-Object { New-Sparse "four`$_.enc" `$legacy (256MB - 1) }
`$out = Join-Path `$dir 'outs'; `$null = New-Item -ItemType Directory -Path `$out
`$r.UnprotectFour = Measure-Peak { Unprotect-EnvelopeFile -LiteralPath `$four -Destination "`$out/" -ThrottleLimit 4 }
`$huge = New-Sparse 'huge.enc' `$legacy 1GB
`$r.Test = Measure-Peak { `$script:tested = Test-EnvelopeFile -LiteralPath `$huge }
`$r.TestResult = `$script:tested
`$magic = New-Sparse 'magic.ekms' ([byte[]](0x89, 0x45, 0x4B, 0x4D, 0x53, 0x0D, 0x0A, 0x1A, 0x0A)) 1GB
`$r.Convert = Measure-Peak { Convert-EnvelopeFile -LiteralPath `$magic -To Legacy -KeyId '$($Key.KeyId)' -Destination (Join-Path `$dir 'magic.out') }
# Encryption SDK messages: a genuine header (its tag does not cover the body's length) with a sparse tail is read
# whole; four at once must wait for each other within the process-wide budget, not multiply it.
`$budget = 'EnvelopeKms.Format.WholeMessageBudget' -as [type]
if (`$budget) { `$budget::Capacity = 300MB }
`$plain = Join-Path `$dir 'sdk.txt'; Set-Content -LiteralPath `$plain -Value 'genuine' -NoNewline
`$null = Protect-EnvelopeFile -LiteralPath `$plain -KeyId '$($Key.KeyId)' -Format AlibabaSdkStream
`$sdk = 1..4 | ForEach-Object { `$p = Join-Path `$dir "sdk`$_.ekms"; Copy-Item "`$plain.ekms" `$p; `$f = [IO.File]::OpenWrite(`$p); `$f.SetLength(256MB); `$f.Dispose(); `$p }
`$sdkOut = Join-Path `$dir 'sdk-outs'; `$null = New-Item -ItemType Directory -Path `$sdkOut
`$r.SdkFour = Measure-Peak { Unprotect-EnvelopeFile -LiteralPath `$sdk -Destination "`$sdkOut/" -ThrottleLimit 4 }
`$r | ConvertTo-Json -Compress -Depth 4
"@
        $result = Invoke-ChildPwsh -Script $child
        $limit = 150MB # the review measured 1.4 GB (one file), 5.2 GB (four), 1.15 GB (Test, Convert)
        foreach ($case in 'Unprotect', 'UnprotectFour', 'Test', 'Convert') {
            $result.$case.Growth | Should -BeLessThan $limit -Because "$case grew the peak RSS by $($result.$case.Growth) bytes in $($result.$case.Seconds) s"
        }
        # Four 256 MiB bodies at once asked for 1 GiB (measured 1.08 GB); within a 300 MB budget they run one at a
        # time, the buffer in use beside at most one whose memory the GC has not handed back yet (measured 0.54 GB).
        $result.SdkFour.Growth | Should -BeLessThan 768MB -Because "four sparse SDK bodies grew the peak RSS by $($result.SdkFour.Growth) bytes"
        $result.SdkFour.Errors | Should -Be (@('EnvelopeAuthenticationFailed') * 4)
        $result.Unprotect.Errors | Should -Be @('EnvelopeLegacyInvalid')
        $result.UnprotectFour.Errors | Should -Be (@('EnvelopeLegacyInvalid') * 4)
        $result.TestResult | Should -BeFalse
        $result.Convert.Errors.Count | Should -Be 1
        $result.Convert.Errors[0] | Should -BeLike 'Envelope*'
        @(Get-ChildItem -LiteralPath $dir -Recurse -File | Where-Object Name -Match '\.out$|ekms-tmp$').Count | Should -Be 0
        @(Get-ChildItem -LiteralPath (Join-Path $dir 'sdk-outs') -File).Count | Should -Be 0
    }
}

Describe 'Output permissions and the umask (issue 18)' {
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

Describe 'The source by another path, and -RemoveSource (issue 18)' {
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
