#Requires -Version 7.4
<#
.SYNOPSIS
    Builds, stages, tests, benchmarks and packages the EnvelopeKms module.

.DESCRIPTION
    One entry point with named tasks (the PSToml/PSOpenAD layout):

      Build    compile the solution and stage the module folder under out/EnvelopeKms
      Test     Build, then run every suite (xunit, Node.js interop, then Pester and the demo's round trip on
               PowerShell 7.6 / .NET 10 and on PowerShell 7.4 LTS / .NET 8) and print one totals line:
               "Tests: N passed, N failed"
      Demo     Build, then run the whole envelope flow on the local KMS server
      Bench    Build, then run the benchmark against its peers (see docs/performance.md)
      Package  Build, then produce the .nupkg a Gallery publish would upload
      Crash    Build, then kill a pwsh at random points while it encrypts or decrypts, 50 times
               (-Iterations), and check what is left on disk (docs/reliability.md)
      Faults   Build, then the KMS fault-injection tests with a batch of 1000 files (-Files)
      Fuzz     instrument the parsers with SharpFuzz and run afl++ on some targets (-Target a,b) or all, each for
               -Duration seconds, nice'd; then minimise its corpus (afl-cmin) into tests/fuzz/corpus/<target> and
               turn every crash or hang into tests/fuzz/regressions/<target>/<id> + <id>.expected (docs/reliability.md)

.EXAMPLE
    dotnet tool restore; dotnet pwsh ./build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Package', 'Crash', 'Faults', 'Fuzz')]
    [string[]] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # Bench only: run the short form (small sizes, seconds) that the test suite uses.
    [switch] $Short,

    # Crash only: how many random kill points.
    [int] $Iterations = 50,

    # Faults only: files in the batch encrypted and decrypted through the faulty KMS.
    [int] $Files = 1000,

    # Fuzz only: the targets to run, one after the other (all when omitted; see tests/fuzz/EnvelopeKms.Fuzz.Targets/FuzzTargets.cs).
    [string[]] $Target,

    # Fuzz only: seconds of afl++ per target.
    [int] $Duration = 300
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$RepoRoot = $PSScriptRoot
$OutRoot = Join-Path $RepoRoot 'out'
$StagedModule = Join-Path $OutRoot 'EnvelopeKms'
$TestResults = Join-Path $OutRoot 'TestResults'
$Pwsh74Project = Join-Path $RepoRoot 'tests/hosts/pwsh74/pwsh74.csproj'

function Invoke-Native {
    # Runs a native command and fails the build when it fails.
    param([string] $FilePath, [string[]] $ArgumentList, [string] $WorkingDirectory = $RepoRoot)
    Push-Location $WorkingDirectory
    try {
        & $FilePath @ArgumentList
        if ($LASTEXITCODE -ne 0) { throw "$FilePath $($ArgumentList -join ' ') exited with $LASTEXITCODE" }
    }
    finally { Pop-Location }
}

function Invoke-Build {
    Write-Host "== Build ($Configuration)" -ForegroundColor Cyan
    Invoke-Native dotnet @('build', (Join-Path $RepoRoot 'EnvelopePS.sln'), '-c', $Configuration, '--nologo', '-v', 'quiet', '-clp:ErrorsOnly')

    # Stage the module folder: manifest, hand-written module files, help, and the assemblies.
    if (Test-Path $StagedModule) { Remove-Item $StagedModule -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $StagedModule
    $psBin = Join-Path $RepoRoot "src/EnvelopeKms.PowerShell/bin/$Configuration/net8.0"
    $binDir = New-Item -ItemType Directory -Path (Join-Path $StagedModule 'bin')
    foreach ($file in Get-ChildItem -LiteralPath $psBin -File) {
        if ($file.Extension -in '.dll', '.pdb' -and $file.Name -notlike 'System.Management.Automation*') {
            Copy-Item -LiteralPath $file.FullName -Destination $binDir
        }
    }
    Copy-Item -LiteralPath (Join-Path $RepoRoot 'EnvelopeKms.psd1'), (Join-Path $RepoRoot 'LICENSE') -Destination $StagedModule
    $moduleSource = Join-Path $RepoRoot 'module'
    if (Test-Path $moduleSource) {
        Get-ChildItem -LiteralPath $moduleSource | Copy-Item -Destination $StagedModule -Recurse
    }
    $helpScript = Join-Path $RepoRoot 'tools/New-MamlHelp.ps1'
    if (Test-Path $helpScript) {
        # MAML + about_ topic next to the manifest (<module>/en-US): Get-Help looks in the module base, not in bin/.
        # A child pwsh reads the cmdlet metadata, so this process never loads the module's assemblies.
        Invoke-Native dotnet @('pwsh', '-NoProfile', '-NonInteractive', '-File', $helpScript,
            '-SourcePath', (Join-Path $RepoRoot 'docs/en-US'), '-OutputPath', (Join-Path $StagedModule 'en-US'), '-ModulePath', $StagedModule)
    }
    # The local KMS server ships beside the module so a new user can run everything on one machine.
    $serverBin = Join-Path $RepoRoot "src/EnvelopeKms.Server/bin/$Configuration/net10.0"
    $serverDir = Join-Path $OutRoot 'server'
    if (Test-Path $serverDir) { Remove-Item $serverDir -Recurse -Force }
    Copy-Item -LiteralPath $serverBin -Destination $serverDir -Recurse
    Write-Host "   staged $StagedModule"
}

function Get-TrxCount {
    param([string] $Path)
    [xml] $trx = Get-Content -LiteralPath $Path -Raw
    $counters = $trx.TestRun.ResultSummary.Counters
    [pscustomobject]@{
        Passed = [int] $counters.passed
        Failed = [int] $counters.failed + [int] $counters.error + [int] $counters.timeout + [int] $counters.aborted
    }
}

function Install-TestPrerequisite {
    # Debian packages the suites need, installed when missing so that CI passes on a clean machine. A suite whose
    # tool is still missing afterwards fails with this reason (ENVELOPEKMS_PREREQUISITES_NOTE); it never skips.
    #   python3-pycryptodome: tests/pester/LegacyInterop.Tests.ps1 (the KMS documentation sample's approach).
    #   python3-asn1crypto, python3-cryptography: tests/interop/alibaba_sdk.py, the independent Encryption SDK
    #     implementation that the xunit (AlibabaSdkPythonInteropTests) and Pester (AlibabaSdk.Tests.ps1) suites run.
    $python = '/usr/bin/python3'
    $missing = @()
    if (-not ((Test-Path $python) -and $(& $python -c 'from Cryptodome.Cipher import AES' 2>$null; $LASTEXITCODE -eq 0))) { $missing += 'python3-pycryptodome' }
    if (-not ((Test-Path $python) -and $(& $python -c 'import asn1crypto' 2>$null; $LASTEXITCODE -eq 0))) { $missing += 'python3-asn1crypto' }
    if (-not ((Test-Path $python) -and $(& $python -c 'import cryptography.hazmat.primitives.ciphers.aead' 2>$null; $LASTEXITCODE -eq 0))) { $missing += 'python3-cryptography' }
    if (-not $missing) { return }
    $env:ENVELOPEKMS_PREREQUISITES_NOTE = $null
    $root = (& id -u) -eq '0'
    if (-not (Get-Command apt-get -ErrorAction SilentlyContinue)) {
        $env:ENVELOPEKMS_PREREQUISITES_NOTE = "apt-get is not available to install $($missing -join ', ')"
    }
    elseif (-not $root -and -not (Get-Command sudo -ErrorAction SilentlyContinue)) {
        $env:ENVELOPEKMS_PREREQUISITES_NOTE = "installing $($missing -join ', ') needs root (not root, and no sudo)"
    }
    else {
        Write-Host "== apt-get install $($missing -join ' ')" -ForegroundColor Cyan
        # As root: env ...; otherwise sudo -n env ... (never prompts).
        $exe = 'env'; $pre = @()
        if (-not $root) { $exe = 'sudo'; $pre = @('-n', 'env') }
        $log = & $exe @pre DEBIAN_FRONTEND=noninteractive apt-get update -qq 2>&1
        if ($LASTEXITCODE -eq 0) { $log = & $exe @pre DEBIAN_FRONTEND=noninteractive apt-get install -y -qq @missing 2>&1 }
        if ($LASTEXITCODE -ne 0) {
            $env:ENVELOPEKMS_PREREQUISITES_NOTE = "apt-get install $($missing -join ' ') failed (exit $LASTEXITCODE): $(($log | Select-Object -Last 3) -join ' ')"
        }
    }
    if ($env:ENVELOPEKMS_PREREQUISITES_NOTE) { Write-Warning "$($env:ENVELOPEKMS_PREREQUISITES_NOTE); the suites that need them will fail." }
}

function Get-Pwsh74 {
    # PowerShell 7.4 LTS on .NET 8 (tests/hosts/pwsh74): the oldest release the manifest claims, built from NuGet
    # because no 7.4 dotnet tool is served. It is published self-contained into a cache outside the repository, so a
    # clean clone on the same machine (a CI rerun) reuses it; the key hashes the host's folder and the .NET SDK
    # version (which picks the .NET 8 runtime pack), so any change to either publishes a new one. Returns its pwsh.
    $projectDir = Split-Path $Pwsh74Project
    $sdk = "$(& dotnet --version)".Trim()
    $hash = [System.Security.Cryptography.IncrementalHash]::CreateHash([System.Security.Cryptography.HashAlgorithmName]::SHA256)
    try {
        foreach ($file in Get-ChildItem -LiteralPath $projectDir -File | Sort-Object Name) {
            $hash.AppendData([Text.Encoding]::UTF8.GetBytes("$($file.Name)`n"))
            $hash.AppendData([IO.File]::ReadAllBytes($file.FullName))
        }
        $hash.AppendData([Text.Encoding]::UTF8.GetBytes("dotnet sdk $sdk`n"))
        $key = [Convert]::ToHexString($hash.GetHashAndReset()).Substring(0, 16).ToLowerInvariant()
    }
    finally { $hash.Dispose() }
    $cacheRoot = $env:ENVELOPEKMS_HOST_CACHE
    if (-not $cacheRoot) {
        $base = $env:XDG_CACHE_HOME
        if (-not $base) { $base = Join-Path ([Environment]::GetFolderPath('UserProfile')) '.cache' }
        $cacheRoot = Join-Path $base 'envelopekms/hosts'
    }
    $dir = Join-Path $cacheRoot "pwsh74-$key"
    # The marker is written last, after the host proved itself, and the folder appears by one rename: a folder
    # without it is never used.
    $marker = Join-Path $dir '.envelopekms-host'
    if (Test-Path -LiteralPath $marker) {
        Write-Host "   PowerShell 7.4 host: $dir (cached)"
        return (Join-Path $dir 'pwsh')
    }
    Write-Host "== Publishing the PowerShell 7.4 host (tests/hosts/pwsh74) into $dir" -ForegroundColor Cyan
    $null = New-Item -ItemType Directory -Force -Path $cacheRoot
    $staging = Join-Path $cacheRoot ".pwsh74-$key.$PID.tmp" # beside $dir: the move below is a rename
    if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force }
    try {
        Invoke-Native dotnet @('publish', $Pwsh74Project, '-c', 'Release', '-o', $staging, '--nologo', '-v', 'quiet', '-clp:ErrorsOnly')
        $reported = "$(& (Join-Path $staging 'pwsh') -NoProfile -NonInteractive -Command '"$($PSVersionTable.PSVersion) $([Environment]::Version)"')".Trim()
        if ($LASTEXITCODE -ne 0 -or $reported -notmatch '^7\.4\.\d+ 8\.0\.\d+$') {
            throw "the published host reports '$reported' (exit $LASTEXITCODE), not PowerShell 7.4 on .NET 8"
        }
        Set-Content -LiteralPath (Join-Path $staging '.envelopekms-host') -Value $reported
        if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force } # left without its marker
        try { [IO.Directory]::Move($staging, $dir) }
        catch [IO.IOException] {
            # Another run (another clone on this machine) published the same key meanwhile: use that one.
            if (-not (Test-Path -LiteralPath $marker)) { throw }
        }
    }
    finally { if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force } }
    Join-Path $dir 'pwsh'
}

function Invoke-Pwsh {
    # Runs one pwsh of the test matrix (its command line in $Command) with a module path of its own: PSModulePath is
    # inherited, and a 7.4 started from this 7.6 would otherwise find 7.6's bundled modules (PSResourceGet,
    # ThreadJob, PSReadLine...), which a real 7.4 does not have. Returns its output, stderr included.
    param([string[]] $Command, [string[]] $ArgumentList)
    $saved = $env:PSModulePath
    $env:PSModulePath = $null
    Push-Location $RepoRoot # dotnet finds the pwsh local tool from the repo's manifest
    $argv = @($Command | Select-Object -Skip 1) + @($ArgumentList)
    try { & $Command[0] @argv 2>&1 }
    finally { Pop-Location; $env:PSModulePath = $saved }
}

function Invoke-Test {
    $totals = [ordered]@{ Passed = 0; Failed = 0 }
    $suiteFailures = [System.Collections.Generic.List[string]]::new()
    $counts = [System.Collections.Generic.List[string]]::new() # one line per PowerShell, repeated before the totals
    if (Test-Path $TestResults) { Remove-Item $TestResults -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $TestResults

    # 0. Debian packages, before xunit too: its Encryption SDK interop tests run tests/interop/alibaba_sdk.py.
    Install-TestPrerequisite

    # 1. xunit: the core and the server.
    foreach ($project in Get-ChildItem -Path (Join-Path $RepoRoot 'tests') -Filter '*.Tests.csproj' -Recurse) {
        $name = $project.BaseName
        Write-Host "== xunit: $name" -ForegroundColor Cyan
        $trxName = "$name.trx"
        & dotnet test $project.FullName -c $Configuration --no-build --nologo `
            --logger "trx;LogFileName=$trxName" --logger 'console;verbosity=minimal' --results-directory $TestResults
        $trxPath = Join-Path $TestResults $trxName
        if (Test-Path $trxPath) {
            $count = Get-TrxCount $trxPath
            $totals.Passed += $count.Passed; $totals.Failed += $count.Failed
            Write-Host "   $name`: $($count.Passed) passed, $($count.Failed) failed"
        }
        else {
            $suiteFailures.Add($name); $totals.Failed++
        }
    }

    # 2. Node.js: the independent format implementation and the official Alibaba Cloud SDKs.
    $interop = Join-Path $RepoRoot 'tests/interop'
    if (Test-Path (Join-Path $interop 'package.json')) {
        Write-Host '== node: tests/interop' -ForegroundColor Cyan
        if (-not (Test-Path (Join-Path $interop 'node_modules'))) {
            Invoke-Native npm @('ci', '--no-audit', '--no-fund', '--loglevel=error') $interop
        }
        $env:ENVELOPEKMS_REPO = $RepoRoot
        $env:ENVELOPEKMS_CONFIGURATION = $Configuration
        $testFiles = @(Get-ChildItem -LiteralPath $interop -Filter '*.test.mjs' | ForEach-Object FullName)
        $tap = & node --test --test-reporter=tap @testFiles 2>&1
        $tap | ForEach-Object { "$_" } | Where-Object { $_ -match '^\s*(not ok|# (pass|fail|tests))' -or $_ -match '^\s+(error|message|expected|actual):' } | Write-Host
        $pass = ($tap | Where-Object { "$_" -match '^# pass (\d+)' } | Select-Object -Last 1) -replace '^# pass ', ''
        $fail = ($tap | Where-Object { "$_" -match '^# fail (\d+)' } | Select-Object -Last 1) -replace '^# fail ', ''
        if ($null -eq $pass -or $pass -eq '') { $suiteFailures.Add('node'); $totals.Failed++ }
        else {
            $totals.Passed += [int] $pass; $totals.Failed += [int] $fail
            Write-Host "   node: $pass passed, $fail failed"
        }
    }

    # 3. Pester and the demo's round trip: the module as users run it, in a fresh pwsh importing the staged module,
    #    on each PowerShell the manifest supports: 7.6 on .NET 10 (the dotnet local tool) and 7.4 LTS on .NET 8.
    $pesterTests = Join-Path $RepoRoot 'tests/pester'
    Install-TestPrerequisite
    Invoke-Native dotnet @('restore', (Join-Path $RepoRoot 'tests/tools/TestTools.csproj'), '--nologo', '-v', 'quiet')
    $pester = Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages/pester/5.7.1/tools/Pester.psd1'
    if ($env:NUGET_PACKAGES) { $pester = Join-Path $env:NUGET_PACKAGES 'pester/5.7.1/tools/Pester.psd1' }
    $env:ENVELOPEKMS_MODULE = $StagedModule
    $env:ENVELOPEKMS_SERVER = Join-Path $OutRoot 'server/EnvelopeKms.Server.dll'
    $pwshList = [System.Collections.Generic.List[object]]::new()
    $pwshList.Add(@('dotnet', 'pwsh'))
    try { $pwshList.Add(@(Get-Pwsh74)) }
    catch {
        Write-Host "   the PowerShell 7.4 host could not be built: $_" -ForegroundColor Red
        $suiteFailures.Add('PowerShell 7.4 (host not built)'); $totals.Failed++
    }
    foreach ($pwsh in $pwshList) {
        $about = "$(Invoke-Pwsh $pwsh @('-NoProfile', '-NonInteractive', '-Command', '"$($PSVersionTable.PSVersion) $([Environment]::Version)"'))".Trim()
        if ($about -notmatch '^(\d+)\.(\d+)\.\d+\S* (\d+\.\d+\.\d+)') {
            Write-Host "   $($pwsh -join ' ') did not start: $about" -ForegroundColor Red
            $suiteFailures.Add($pwsh -join ' '); $totals.Failed++
            continue
        }
        $short = "$($Matches[1]).$($Matches[2])"
        $name = "PowerShell $($about -replace ' ', ' / .NET ')"
        $mine = [ordered]@{ Passed = 0; Failed = 0 }

        Write-Host "== demo round trip: tools/Demo.ps1 on $name" -ForegroundColor Cyan
        $demoOut = @(Invoke-Pwsh $pwsh @('-NoProfile', '-NonInteractive', '-File', (Join-Path $RepoRoot 'tools/Demo.ps1'),
                '-ModulePath', $StagedModule, '-ServerPath', $env:ENVELOPEKMS_SERVER, '-WorkPath', (Join-Path $OutRoot "demo-$short")) | ForEach-Object { "$_" })
        $complete = $demoOut | Where-Object { $_ -match '^Demo complete: ' } | Select-Object -Last 1
        if ($LASTEXITCODE -eq 0 -and $complete) { $mine.Passed++; Write-Host "   $complete" }
        else {
            $mine.Failed++
            $demoOut | Select-Object -Last 25 | Write-Host
            Write-Host "   demo: failed (exit $LASTEXITCODE)" -ForegroundColor Red
        }

        if (Get-ChildItem -LiteralPath $pesterTests -Filter '*.Tests.ps1' -ErrorAction SilentlyContinue) {
            Write-Host "== pester: tests/pester on $name" -ForegroundColor Cyan
            $resultFile = Join-Path $TestResults "pester-$short.xml"
            $runner = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester'
`$config = New-PesterConfiguration
`$config.Run.Path = '$pesterTests'
`$config.Run.PassThru = `$true
`$config.Output.Verbosity = 'Normal'
`$config.TestResult.Enabled = `$true
`$config.TestResult.OutputFormat = 'NUnitXml'
`$config.TestResult.OutputPath = '$resultFile'
`$r = Invoke-Pester -Configuration `$config
"PESTER-TOTALS `$(`$r.PassedCount) `$(`$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount)"
"@
            $pwshOut = Invoke-Pwsh $pwsh @('-NoProfile', '-NonInteractive', '-Command', $runner)
            $pwshOut | ForEach-Object { "$_" } | Where-Object { $_ -notmatch '^PESTER-TOTALS' } | Write-Host
            $line = $pwshOut | ForEach-Object { "$_" } | Where-Object { $_ -match '^PESTER-TOTALS' } | Select-Object -Last 1
            if ($line) {
                $parts = $line -split ' '
                $mine.Passed += [int] $parts[1]; $mine.Failed += [int] $parts[2]
                Write-Host "   pester: $($parts[1]) passed, $($parts[2]) failed"
            }
            else { $suiteFailures.Add("pester ($name)"); $mine.Failed++ }
        }
        $totals.Passed += $mine.Passed; $totals.Failed += $mine.Failed
        $counts.Add("   ${name}: $($mine.Passed) passed, $($mine.Failed) failed (Pester and the demo's round trip)")
    }
    foreach ($c in $counts) { Write-Host $c }

    if ($suiteFailures.Count) { Write-Host "Suites that did not report results: $($suiteFailures -join ', ')" -ForegroundColor Red }
    Write-Host "Tests: $($totals.Passed) passed, $($totals.Failed) failed"
    if ($totals.Failed -gt 0) { exit 1 }
}

function Invoke-Fuzz {
    # Coverage-guided fuzzing (issue 20). Test tooling only: SharpFuzz and afl++ never reach the build, the module or CI.
    $fuzzRoot = Join-Path $RepoRoot 'tests/fuzz'
    $work = Join-Path $OutRoot 'fuzz'
    $null = New-Item -ItemType Directory -Force -Path $work
    if (-not (Get-Command afl-fuzz -ErrorAction SilentlyContinue)) {
        Write-Host '== apt-get install afl++' -ForegroundColor Cyan
        $exe = 'env'; $pre = @()
        if ((& id -u) -ne '0') { $exe = 'sudo'; $pre = @('-n', 'env') }
        & $exe @pre DEBIAN_FRONTEND=noninteractive apt-get update -qq
        & $exe @pre DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++
        if ($LASTEXITCODE -ne 0 -or -not (Get-Command afl-fuzz -ErrorAction SilentlyContinue)) { throw 'afl++ could not be installed (apt-get install afl++).' }
    }
    # The instrumenter, in its own folder (not in .config/dotnet-tools.json, so CI's tool restore never fetches it).
    $tools = Join-Path $work 'tools'
    $sharpfuzz = Join-Path $tools 'sharpfuzz'
    if (-not (Test-Path $sharpfuzz)) {
        Invoke-Native dotnet @('tool', 'install', 'SharpFuzz.CommandLine', '--version', '2.3.0', '--tool-path', $tools)
    }
    Write-Host '== build and instrument the fuzz driver' -ForegroundColor Cyan
    $driverDir = Join-Path $work 'driver'
    if (Test-Path $driverDir) { Remove-Item $driverDir -Recurse -Force }
    Invoke-Native dotnet @('build', (Join-Path $fuzzRoot 'EnvelopeKms.Fuzz.Driver/EnvelopeKms.Fuzz.Driver.csproj'), '-c', 'Release', '-o', $driverDir, '--nologo', '-v', 'quiet', '-clp:ErrorsOnly')
    # Only the assemblies under test carry coverage: the harness and the framework stay uninstrumented.
    foreach ($assembly in 'EnvelopeKms.Core.dll', 'EnvelopeKms.Server.dll') { Invoke-Native $sharpfuzz @((Join-Path $driverDir $assembly)) }
    $driver = Join-Path $driverDir 'EnvelopeKms.Fuzz.Driver.dll'
    # afl-cmin looks the program up itself and wants a path, not a command name.
    $dotnet = (Get-Command dotnet -CommandType Application | Select-Object -First 1).Source

    $known = @(& dotnet $driver --list)
    if ($LASTEXITCODE -ne 0) { throw 'the fuzz driver could not list its targets' }
    # -Target a,b arrives as one string when build.ps1 is run through `dotnet pwsh ./build.ps1 ...`.
    $targets = if ($Target) { @($Target | ForEach-Object { $_ -split ',' } | ForEach-Object Trim | Where-Object { $_ }) } else { $known }
    foreach ($name in $targets) { if ($name -notin $known) { throw "No fuzz target '$name'; targets: $($known -join ', ')" } }
    # afl++ on a shared machine: no CPU binding, no core_pattern or governor demands; the driver is a managed
    # program started through `dotnet`, which afl++'s binary check cannot recognise.
    $env:AFL_SKIP_BIN_CHECK = '1'; $env:AFL_NO_AFFINITY = '1'; $env:AFL_SKIP_CPUFREQ = '1'; $env:AFL_NO_UI = '1'
    $env:AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES = '1'; $env:AFL_AUTORESUME = '0'
    $log = Join-Path $fuzzRoot 'campaigns.tsv'
    if (-not (Test-Path $log)) { "date`ttarget`tseconds`texecs`texecs_per_sec`tcorpus_count`tedges_found`ttotal_edges`tcrashes`thangs`tcorpus_after_cmin" | Set-Content $log }
    foreach ($name in $targets) {
        Write-Host "== fuzz $name for $Duration s" -ForegroundColor Cyan
        $corpus = Join-Path $fuzzRoot "corpus/$name"
        $inputDir = $corpus
        if (-not (Test-Path $corpus) -or -not (Get-ChildItem -LiteralPath $corpus -File)) {
            # First campaign of a target: its seeds from the test vectors.
            Invoke-Native python3 @((Join-Path $fuzzRoot 'make-seeds.py'))
            $inputDir = Join-Path $fuzzRoot "seeds/$name"
        }
        $null = New-Item -ItemType Directory -Force -Path (Join-Path $work 'findings')
        $findings = Join-Path $work "findings/$name"
        if (Test-Path $findings) { Remove-Item $findings -Recurse -Force }
        # -t: a case that takes 10 s on this loaded machine is a hang; -G: inputs of at most 1 MiB; -m none: .NET
        # reserves far more virtual memory than afl++'s default limit.
        # Dictionaries (tests/fuzz/dictionaries): the target's own tokens, and JSON's for the targets that read JSON,
        # so that afl++ can splice in what a byte-level mutation rarely builds (an escape such as \ud800, a key name).
        $dictArgs = @()
        foreach ($dict in "$name.dict", $(if ($name -in 'context', 'kms-response', 'cli-config', 'credentials-uri') { 'json.dict' })) {
            if ($dict -and (Test-Path (Join-Path $fuzzRoot "dictionaries/$dict"))) { $dictArgs += '-x', (Join-Path $fuzzRoot "dictionaries/$dict") }
        }
        # The harnesses' scratch files (credential files, the server's state) go to a folder removed afterwards:
        # afl++ ends each driver with SIGKILL, so their own clean-up at exit never runs.
        $scratch = Join-Path $work "tmp/$name"
        $null = New-Item -ItemType Directory -Force -Path $scratch
        $savedTmp = $env:TMPDIR; $env:TMPDIR = $scratch
        & nice -n 10 afl-fuzz -i $inputDir -o $findings -t 10000 -m none -G 1048576 -V $Duration @dictArgs -- $dotnet $driver $name
        $aflExit = $LASTEXITCODE
        $env:TMPDIR = $savedTmp
        Remove-Item $scratch -Recurse -Force -ErrorAction SilentlyContinue
        if ($aflExit -ne 0) { throw "afl-fuzz on $name exited with $aflExit" }
        $stats = @{}
        foreach ($line in Get-Content (Join-Path $findings 'default/fuzzer_stats')) {
            if ($line -match '^(\w+)\s*:\s*(.*)$') { $stats[$Matches[1]] = $Matches[2].Trim() }
        }

        # Every crash and hang becomes a regression input whose .expected says TRIAGE until the bug is fixed and
        # the line is replaced with the outcome the fixed parser gives: the replay fails on it until then.
        $regressions = Join-Path $fuzzRoot "regressions/$name"
        foreach ($kind in 'crashes', 'hangs') {
            foreach ($file in Get-ChildItem -LiteralPath (Join-Path $findings "default/$kind") -File -ErrorAction SilentlyContinue | Where-Object Name -ne 'README.txt') {
                $null = New-Item -ItemType Directory -Force -Path $regressions
                $id = (Get-FileHash -LiteralPath $file.FullName -Algorithm SHA256).Hash.Substring(0, 16).ToLowerInvariant()
                $dest = Join-Path $regressions $id
                if (Test-Path $dest) { continue }
                Copy-Item -LiteralPath $file.FullName -Destination $dest
                $what = (& dotnet $driver $name $dest 2>&1 | Select-Object -Last 1) -replace "^$([regex]::Escape($dest)): ", ''
                if ($kind -eq 'hangs') { $what = "no answer within 10 s under afl++; alone: $what" }
                "TRIAGE: afl++ $kind ($(Get-Date -Format 'yyyy-MM-dd')): $what" | Set-Content (Join-Path $regressions "$id.expected")
                Write-Host "   new regression input $dest ($kind)" -ForegroundColor Yellow
            }
        }

        # The kept corpus: the old one plus what afl++ found, minimised to the inputs that each cover something new.
        $pool = Join-Path $work "pool/$name"
        $min = Join-Path $work "min/$name"
        foreach ($d in $pool, $min) { if (Test-Path $d) { Remove-Item $d -Recurse -Force } }
        $null = New-Item -ItemType Directory -Force -Path $pool
        Get-ChildItem -LiteralPath $inputDir -File | Copy-Item -Destination $pool
        Get-ChildItem -LiteralPath (Join-Path $findings 'default/queue') -File | ForEach-Object { Copy-Item -LiteralPath $_.FullName -Destination (Join-Path $pool ($_.Name -replace '[^\w.-]', '_')) }
        & nice -n 10 afl-cmin -i $pool -o $min -t 10000 -m none -- $dotnet $driver $name | Select-Object -Last 2 | Write-Host
        if ($LASTEXITCODE -eq 0 -and (Get-ChildItem -LiteralPath $min -File)) {
            if (Test-Path $corpus) { Remove-Item $corpus -Recurse -Force }
            $null = New-Item -ItemType Directory -Force -Path $corpus
            # Content-named, so that the same input never lands twice under afl++'s long generated names.
            foreach ($file in Get-ChildItem -LiteralPath $min -File) {
                $id = (Get-FileHash -LiteralPath $file.FullName -Algorithm SHA256).Hash.Substring(0, 16).ToLowerInvariant()
                Copy-Item -LiteralPath $file.FullName -Destination (Join-Path $corpus $id)
            }
        }
        $kept = @(Get-ChildItem -LiteralPath $corpus -File -ErrorAction SilentlyContinue).Count
        $row = (Get-Date -Format 'yyyy-MM-ddTHH:mm:ssZ' -AsUTC), $name, $stats.run_time, $stats.execs_done, $stats.execs_per_sec, $stats.corpus_count,
            $stats.edges_found, $stats.total_edges, $stats.saved_crashes, $stats.saved_hangs, $kept
        $row -join "`t" | Add-Content $log
        Write-Host "   $name`: $($stats.run_time) s, $($stats.execs_done) execs, $($stats.edges_found)/$($stats.total_edges) edges, $($stats.saved_crashes) crashes, $($stats.saved_hangs) hangs; corpus $kept inputs"
    }
}

foreach ($t in $Task) {
    switch ($t) {
        'Build' { Invoke-Build }
        'Test' { Invoke-Build; Invoke-Test }
        'Demo' { Invoke-Build; & (Join-Path $RepoRoot 'tools/Demo.ps1') -ModulePath $StagedModule -ServerPath (Join-Path $OutRoot 'server/EnvelopeKms.Server.dll') }
        'Bench' { Invoke-Build; & (Join-Path $RepoRoot 'tools/Bench.ps1') -RepoRoot $RepoRoot -ModulePath $StagedModule -ServerPath (Join-Path $OutRoot 'server/EnvelopeKms.Server.dll') -Short:$Short }
        'Crash' {
            Invoke-Build
            $r = & (Join-Path $RepoRoot 'tools/CrashTest.ps1') -Iterations $Iterations -ModulePath $StagedModule -ServerPath (Join-Path $OutRoot 'server/EnvelopeKms.Server.dll')
            $r | Format-List | Out-String | Write-Host
            if ($r.Failures.Count) { exit 1 }
        }
        'Faults' {
            Invoke-Build
            Invoke-Native dotnet @('restore', (Join-Path $RepoRoot 'tests/tools/TestTools.csproj'), '--nologo', '-v', 'quiet')
            $pester = Join-Path ($env:NUGET_PACKAGES ?? (Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages')) 'pester/5.7.1/tools/Pester.psd1'
            $env:ENVELOPEKMS_FAULT_FILES = $Files
            $env:ENVELOPEKMS_MODULE = $StagedModule
            $env:ENVELOPEKMS_SERVER = Join-Path $OutRoot 'server/EnvelopeKms.Server.dll'
            & dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$pester'; `$r = Invoke-Pester -Path '$(Join-Path $RepoRoot 'tests/pester/Reliability.KmsFaults.Tests.ps1')' -Output Detailed -PassThru; exit `$r.FailedCount"
            if ($LASTEXITCODE -ne 0) { exit 1 }
        }
        'Fuzz' { Invoke-Fuzz }
        'Package' { Invoke-Build; & (Join-Path $RepoRoot 'tools/New-Package.ps1') -ModulePath $StagedModule -OutputPath $OutRoot }
    }
}
