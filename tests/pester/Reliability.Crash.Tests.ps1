#Requires -Version 7.4
# Crashes (docs/reliability.md): a pwsh killed with SIGKILL at random points while encrypting or decrypting leaves
# no partial output, intact sources and recognisable temp files that the next run reports. The short form of
# `build.ps1 -Task Crash` (tools/CrashTest.ps1); ENVELOPEKMS_CRASH_ITERATIONS overrides the count.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    $script:KeyId = (New-KmsKey -Endpoint $Server.Endpoint -Credential (Get-TestCredential) -Description 'crash').KeyId
}

AfterAll {
    Stop-TestKmsServer $Server
}

Describe 'A process killed mid-operation' {
    It 'leaves outputs absent or complete, sources intact, and temp files the next run reports (random kill points)' {
        $iterations = if ($env:ENVELOPEKMS_CRASH_ITERATIONS) { [int] $env:ENVELOPEKMS_CRASH_ITERATIONS } else { 5 }
        $r = & (Join-Path $RepoRoot 'tools/CrashTest.ps1') -Iterations $iterations -Endpoint $Server.Endpoint -KeyId $KeyId
        Write-Host "    [reliability] crash: seed $($r.Seed), $($r.Iterations) iterations, $($r.Killed) killed mid-run ($($r.KilledBeforeAnyOutput) before writing anything), $($r.FinishedFirst) finished first, $($r.LeftoverTempFiles) temp file(s) left and reported ($($r.WarningsChecked) warnings checked), $($r.OutputsChecked) outputs verified, $($r.RemovedSources) sources removed, $($r.Seconds) s"
        $r.Failures | Should -BeNullOrEmpty
        $r.Iterations | Should -Be $iterations
    }
}

Describe 'Leftover temp files' {
    It 'the next Protect into the directory warns once, listing them, and removes nothing' {
        $dir = Join-Path $TestDrive 'leftover'
        $null = New-Item -ItemType Directory -Path $dir
        Set-Content -LiteralPath (Join-Path $dir 'a.txt') -Value 'a'
        Set-Content -LiteralPath (Join-Path $dir 'b.txt') -Value 'b'
        $stale = Join-Path $dir ".a.txt.ekms.$([guid]::NewGuid().ToString('N')).ekms-tmp"
        Set-Content -LiteralPath $stale -Value 'partial'
        (Get-Item -LiteralPath $stale -Force).LastWriteTime = (Get-Date).AddHours(-2)
        $notOurs = Join-Path $dir '.other.ekms-tmp'   # not our naming pattern: never reported
        Set-Content -LiteralPath $notOurs -Value 'x'
        Get-ChildItem -LiteralPath $dir -File | Protect-EnvelopeFile -KeyId $KeyId -Endpoint $Server.Endpoint -Credential (Get-TestCredential) -WarningVariable w -WarningAction SilentlyContinue
        $w.Count | Should -Be 1
        "$($w[0])" | Should -BeLike "*1 temp file(s)*$([IO.Path]::GetFileName($stale)) (2 h old)*Remove-Item*"
        "$($w[0])" | Should -Not -BeLike '*.other.ekms-tmp*'
        Test-Path -LiteralPath $stale | Should -BeTrue
        # The documented command removes what is no longer written to.
        $cmd = ("$($w[0])" -split 'with: ')[1]
        Invoke-Expression $cmd
        Test-Path -LiteralPath $stale | Should -BeFalse
        Test-Path -LiteralPath $notOurs | Should -BeTrue
        Get-ChildItem -LiteralPath $dir -Filter *.ekms | Unprotect-EnvelopeFile -Destination (Join-Path $dir 'out/') -Endpoint $Server.Endpoint -Credential (Get-TestCredential) -WarningVariable w2
        $w2 | Should -BeNullOrEmpty
    }
}
