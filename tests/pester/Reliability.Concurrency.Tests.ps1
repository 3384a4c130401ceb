#Requires -Version 7.4
# Concurrency and the disk (docs/reliability.md): two processes encrypting one folder at once; a full disk; a
# read-only destination.

BeforeDiscovery {
    # The disk tests mount a tmpfs, which needs root on Linux (as on CI). Where that is impossible they fail and
    # say why, rather than being skipped: a skipped test would report nothing checked as if all were well.
    $script:CanMount = $false
    if ($IsLinux -and (& id -u) -eq '0') {
        $probe = Join-Path ([IO.Path]::GetTempPath()) ("ekms-mnt-" + [guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $probe
        & mount -t tmpfs -o size=64k tmpfs $probe 2>$null
        if ($LASTEXITCODE -eq 0) { $script:CanMount = $true; & umount $probe }
        Remove-Item -LiteralPath $probe -Force
    }
    if (-not $CanMount) { Write-Host '    [reliability] cannot mount a tmpfs here (needs root on Linux): the disk-full and read-only tests are skipped' }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    $script:Kms = @{ Endpoint = $Server.Endpoint; Credential = (Get-TestCredential) }
    $script:KeyId = (New-KmsKey @Kms -Description 'concurrency').KeyId
    function Mount-SmallDisk {
        param([string] $Size = '2m')
        $dir = Join-Path ([IO.Path]::GetTempPath()) ("ekms-mnt-" + [guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $dir
        & mount -t tmpfs -o "size=$Size,mode=0755" tmpfs $dir
        if ($LASTEXITCODE -ne 0) { throw "mount failed" }
        $dir
    }
    function Dismount-SmallDisk { param([string] $Dir) & umount $Dir; Remove-Item -LiteralPath $Dir -Force }
}

AfterAll {
    Stop-TestKmsServer $Server
}

Describe 'Two processes encrypting the same folder at once' {
    It 'loses no file, corrupts none, and gives the loser of each file a ResourceExists error' {
        $root = Join-Path $TestDrive 'shared'
        $null = New-Item -ItemType Directory -Path $root
        $random = [Random]::new(3)
        $hashes = @{}
        for ($i = 0; $i -lt 300; $i++) {
            $p = Join-Path $root ('f{0:000}.dat' -f $i)
            New-RandomFile -Path $p -Length (1KB + $random.Next(64KB)) -Random $random
            $hashes[$p] = (Get-FileHash -LiteralPath $p).Hash
        }
        # Both children list the folder first, then wait for a go file, so their work really overlaps.
        $go = Join-Path $TestDrive 'go'
        $child = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$(Join-Path $ModulePath 'EnvelopeKms.psd1')'
`$files = @(Get-ChildItem -LiteralPath '$root' -Filter *.dat)
while (-not (Test-Path '$go')) { Start-Sleep -Milliseconds 10 }
`$ok = @(`$files | Protect-EnvelopeFile -KeyId '$KeyId' -Endpoint '$($Server.Endpoint)' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force))) -DataKeyPerFile -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue)
"OK `$(`$ok.Count)"
foreach (`$e in `$errs) { "ERR `$(`$e.CategoryInfo.Category) `$(`$e.FullyQualifiedErrorId)" }
"@
        $a = Start-TestPwsh -Script $child
        $b = Start-TestPwsh -Script $child
        $outA = $a.StandardOutput.ReadToEndAsync(); $outB = $b.StandardOutput.ReadToEndAsync()
        $null = $a.StandardError.ReadToEndAsync(); $null = $b.StandardError.ReadToEndAsync()
        Start-Sleep -Seconds 1
        Set-Content -LiteralPath $go -Value go
        $a.WaitForExit(120000) | Should -BeTrue
        $b.WaitForExit(120000) | Should -BeTrue
        $lines = ($outA.Result + "`n" + $outB.Result) -split "`n" | ForEach-Object Trim | Where-Object { $_ }
        $ok = ($lines | Where-Object { $_ -like 'OK *' } | ForEach-Object { [int] ($_ -split ' ')[1] } | Measure-Object -Sum).Sum
        $errors = @($lines | Where-Object { $_ -like 'ERR *' })
        $ok | Should -Be 300
        $errors.Count | Should -Be 300
        $errors | ForEach-Object { $_ | Should -BeLike 'ERR ResourceExists EnvelopeDestinationExists*' }
        Get-EkmsTempFile $root | Should -BeNullOrEmpty
        $out = Join-Path $TestDrive 'shared-out'
        Get-ChildItem -LiteralPath $root -Filter *.ekms | Unprotect-EnvelopeFile @Kms -Destination "$out/"
        foreach ($p in $hashes.Keys) {
            (Get-FileHash -LiteralPath $p).Hash | Should -Be $hashes[$p]
            (Get-FileHash -LiteralPath (Join-Path $out ([IO.Path]::GetFileName($p)))).Hash | Should -Be $hashes[$p]
        }
        $late = @($lines | Where-Object { $_ -like 'ERR*' }).Count
        Write-Host "    [reliability] two processes, 300 files: $ok written, $late ResourceExists errors, no temp files, all outputs verified"
    }
}

Describe 'A full disk and a read-only destination' {
    BeforeEach {
        $script:Src = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $Src
        New-RandomFile -Path (Join-Path $Src 'big.bin') -Length 4MB
        Set-Content -LiteralPath (Join-Path $Src 'small.txt') -Value 'fits'
        $script:SrcHashes = @{}
        Get-ChildItem -LiteralPath $Src -File | ForEach-Object { $SrcHashes[$_.FullName] = (Get-FileHash -LiteralPath $_.FullName).Hash }
    }

    It 'a full disk (2 MiB tmpfs) gives WriteError for the file that does not fit, no partial file, sources intact' -ForEach @{ CanMount = $CanMount } {
        if (-not $CanMount) { throw 'This test mounts a small tmpfs: run the suite as root on Linux (as CI does).' }
        $disk = Mount-SmallDisk '2m'
        try {
            # One at a time: files written side by side would share the shortage and both could fail.
            Get-ChildItem -LiteralPath $Src -File | Protect-EnvelopeFile -KeyId $KeyId @Kms -Destination "$disk/" -ThrottleLimit 1 -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs.Count | Should -Be 1
            $errs[0].CategoryInfo.Category | Should -Be 'WriteError'
            "$($errs[0].Exception.Message)" | Should -BeLike '*space*'
            $errs[0].TargetObject | Should -BeLike '*big.bin'
            @(Get-ChildItem -LiteralPath $disk -Force).Name | Should -Be 'small.txt.ekms'
            Test-EnvelopeFile -LiteralPath (Join-Path $disk 'small.txt.ekms') @Kms | Should -BeTrue
            foreach ($p in $SrcHashes.Keys) { (Get-FileHash -LiteralPath $p).Hash | Should -Be $SrcHashes[$p] }

            # Decrypting onto the full disk: same promise.
            Protect-EnvelopeFile -LiteralPath (Join-Path $Src 'big.bin') -KeyId $KeyId @Kms
            Remove-Item -LiteralPath (Join-Path $disk 'small.txt.ekms')
            Unprotect-EnvelopeFile -LiteralPath (Join-Path $Src 'big.bin.ekms') @Kms -Destination "$disk/" -ErrorVariable derrs -ErrorAction SilentlyContinue
            $derrs.Count | Should -Be 1
            $derrs[0].CategoryInfo.Category | Should -Be 'WriteError'
            Get-ChildItem -LiteralPath $disk -Force | Should -BeNullOrEmpty
            Write-Host "    [reliability] disk full: $($errs[0].FullyQualifiedErrorId) / $($errs[0].CategoryInfo.Category): $($errs[0].Exception.Message)"
        }
        finally { Dismount-SmallDisk $disk }
    }

    It 'a read-only destination (tmpfs remounted ro) gives WriteError, writes nothing, sources intact' -ForEach @{ CanMount = $CanMount } {
        if (-not $CanMount) { throw 'This test mounts a small tmpfs: run the suite as root on Linux (as CI does).' }
        $disk = Mount-SmallDisk '8m'
        try {
            & mount -o remount,ro $disk
            # One at a time: files written side by side would share the shortage and both could fail.
            Get-ChildItem -LiteralPath $Src -File | Protect-EnvelopeFile -KeyId $KeyId @Kms -Destination "$disk/" -ThrottleLimit 1 -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs.Count | Should -Be 2
            $errs | ForEach-Object { $_.CategoryInfo.Category | Should -Be 'WriteError' }
            "$($errs[0].Exception.Message)" | Should -BeLike '*read-only*'
            Get-ChildItem -LiteralPath $disk -Force | Should -BeNullOrEmpty
            foreach ($p in $SrcHashes.Keys) { (Get-FileHash -LiteralPath $p).Hash | Should -Be $SrcHashes[$p] }
            Write-Host "    [reliability] read-only: $($errs[0].FullyQualifiedErrorId) / $($errs[0].CategoryInfo.Category): $($errs[0].Exception.Message)"
        }
        finally { Dismount-SmallDisk $disk }
    }
}
