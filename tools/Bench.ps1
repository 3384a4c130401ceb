#Requires -Version 7.4
<#
.SYNOPSIS
    Benchmarks EnvelopeKms against its peers in one run: a table of medians and ratios to cp (build.ps1 -Task Bench).
    Also times Update-EnvelopeFileKey -AddKeyId (a header-only re-wrap) on the large and the medium file.

.DESCRIPTION
    Peers: cp (the floor), openssl speed -evp aes-256-gcm (the limit of one core), age (X25519), the AWS Encryption
    SDK for JavaScript 5.0.2 with a RawAesKeyringNode in one Node process, and the KMS documentation sample's approach
    (python3 + pycryptodome AES-EAX over the whole file in memory, base64 lines). It installs them itself (apt-get,
    npm into out/bench/node) unless -NoInstall; a missing peer is reported and skipped.

    Inputs live on a tmpfs when it can mount one (root), else in a folder under the output path (with a note).
    Contenders are interleaved in rounds (so machine noise hits all alike) and the median of -Runs runs is reported.
    The module is timed inside this pwsh process, which imported it and connected to a local KMS server once
    (import + connect are reported separately; every timed run includes its KMS calls), and each timed file run also
    records the CPU time of this pwsh and of its background JIT thread. Peak memory of the module
    is measured in a fresh pwsh per file. KMS call counts come from the local server's /__control/stats.

    It never fails on a timing: goals are marked met / not met in the summary. Writes results.md and results.json
    under -OutPath (default out/bench).

.EXAMPLE
    dotnet pwsh -NoProfile -NonInteractive ./build.ps1 -Task Bench          # long form (~10 min)
    dotnet pwsh -NoProfile -NonInteractive ./build.ps1 -Task Bench -Short   # tiny sizes, one run (< 1 min)
#>
[CmdletBinding()]
param(
    [string] $RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path,
    [string] $ModulePath,
    [string] $ServerPath,
    # Tiny sizes (8 MiB, 1 MiB, 50 files) and one run: a smoke test of the benchmark itself.
    [switch] $Short,
    # Also run the documentation sample's approach on the large file (needs ~6x its size in RAM).
    [switch] $Long,
    # Install nothing; skip peers that are missing.
    [switch] $NoInstall,
    # Runs per contender (median reported). Default 5, or 1 with -Short.
    [int] $Runs,
    # Where results.md / results.json and the work folder go.
    [string] $OutPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

if (-not $ModulePath) { $ModulePath = if ($env:ENVELOPEKMS_MODULE) { $env:ENVELOPEKMS_MODULE } else { Join-Path $RepoRoot 'out/EnvelopeKms' } }
if (-not $ServerPath) { $ServerPath = if ($env:ENVELOPEKMS_SERVER) { $env:ENVELOPEKMS_SERVER } else { Join-Path $RepoRoot 'out/server/EnvelopeKms.Server.dll' } }
if (-not $OutPath) { $OutPath = Join-Path $RepoRoot 'out/bench' }
if (-not $Runs) { $Runs = $Short ? 1 : 5 }
$null = New-Item -ItemType Directory -Force -Path $OutPath
$OutPath = (Resolve-Path $OutPath).Path
$NodeDir = Join-Path $RepoRoot 'out/bench/node'   # npm packages: shared by every -OutPath, never committed

$Sizes = if ($Short) { @{ Large = 8MB; Medium = 1MB; Files = 50; FileSize = 4KB } } else { @{ Large = 1GB; Medium = 64MB; Files = 2000; FileSize = 4KB } }
$Notes = [System.Collections.Generic.List[string]]::new()
$Rows = [System.Collections.Generic.List[object]]::new()
$Cred = [pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force))

$Clock = [Diagnostics.Stopwatch]::StartNew()
function Write-Step([string] $Text) { Write-Host ("== [{0,5:0.0} s] {1}" -f $Clock.Elapsed.TotalSeconds, $Text) -ForegroundColor Cyan }
function Add-Note([string] $Text) { $Notes.Add($Text); Write-Host "   note: $Text" -ForegroundColor Yellow }
function Get-Median([double[]] $Values) {
    if (-not $Values -or $Values.Count -eq 0) { return $null }
    $s = @($Values | Sort-Object); $n = $s.Count
    if ($n % 2) { $s[($n - 1) / 2] } else { ($s[$n / 2 - 1] + $s[$n / 2]) / 2 }
}
function Format-Size([long] $Bytes) {
    if ($Bytes -ge 1GB) { '{0:0.##} GiB' -f ($Bytes / 1GB) } elseif ($Bytes -ge 1MB) { '{0:0.##} MiB' -f ($Bytes / 1MB) } else { '{0:0.##} KiB' -f ($Bytes / 1KB) }
}
function Test-Command([string] $Name) { [bool] (Get-Command $Name -CommandType Application -ErrorAction SilentlyContinue) }

# ---------------------------------------------------------------------------------------------------------------
# 1. Peers
# ---------------------------------------------------------------------------------------------------------------
$Python = '/usr/bin/python3'   # Debian's python3, where python3-pycryptodome installs (not a pyenv shim)
function Test-Pycryptodome { (Test-Path $Python) -and $(& $Python -c 'import Cryptodome' 2>$null; $LASTEXITCODE -eq 0) }
function Test-AwsSdk { Test-Path (Join-Path $NodeDir 'node_modules/@aws-crypto/client-node/package.json') }

Write-Step 'Peers'
if (-not $NoInstall) {
    $packages = @()
    if (-not (Test-Command age) -or -not (Test-Command age-keygen)) { $packages += 'age' }
    if (-not (Test-Command hyperfine)) { $packages += 'hyperfine' }
    if (-not (Test-Pycryptodome)) { $packages += 'python3-pycryptodome' }
    if (-not (Test-Path /usr/bin/time)) { $packages += 'time' }
    if ($packages) {
        if ((Test-Command apt-get) -and (& id -u) -eq '0') {
            Write-Host "   apt-get install -y $($packages -join ' ')"
            & apt-get update -qq *> $null
            & apt-get install -y -qq @packages *> $null
            if ($LASTEXITCODE -ne 0) { Add-Note "apt-get install $($packages -join ' ') failed (exit $LASTEXITCODE)." }
        }
        else { Add-Note "Cannot install $($packages -join ', ') (needs root and apt-get)." }
    }
    if ((Test-Command npm) -and -not (Test-AwsSdk)) {
        Write-Host "   npm install @aws-crypto/client-node@5.0.2 in $NodeDir"
        $null = New-Item -ItemType Directory -Force -Path $NodeDir
        Push-Location $NodeDir
        try { & npm install --no-audit --no-fund --loglevel=error '@aws-crypto/client-node@5.0.2' *> $null } finally { Pop-Location }
        if ($LASTEXITCODE -ne 0) { Add-Note "npm install @aws-crypto/client-node@5.0.2 failed (exit $LASTEXITCODE)." }
    }
}
# The bare .NET AesGcm loop of the performance anchors (1 and 2 threads), built from tools/bench/BareAesGcm.
$BareDll = Join-Path $RepoRoot 'out/bench/bare/BareAesGcm.dll'
Write-Host "   dotnet build tools/bench/BareAesGcm -> $(Split-Path $BareDll)"
& dotnet build (Join-Path $PSScriptRoot 'bench/BareAesGcm/BareAesGcm.csproj') -c Release -o (Split-Path $BareDll) --nologo -v q *> $null
if ($LASTEXITCODE -ne 0) { Add-Note "dotnet build of tools/bench/BareAesGcm failed (exit $LASTEXITCODE)." }
$Have = [ordered]@{
    bare       = Test-Path $BareDll
    age        = (Test-Command age) -and (Test-Command age-keygen)
    openssl    = Test-Command openssl
    awsSdk     = (Test-Command node) -and (Test-AwsSdk)
    pycrypto   = Test-Pycryptodome
    hyperfine  = Test-Command hyperfine
    time       = Test-Path /usr/bin/time
}
$peerNames = @{ bare = 'the bare .NET AesGcm loop (tools/bench/BareAesGcm)'; age = 'age (Debian package age)'; openssl = 'openssl'; awsSdk = 'AWS Encryption SDK for JS (node + npm @aws-crypto/client-node@5.0.2)'; pycrypto = 'python3-pycryptodome'; hyperfine = 'hyperfine (optional; not used for timing)'; time = '/usr/bin/time (peak RSS of peers)' }
foreach ($k in $Have.Keys) {
    if ($Have[$k]) { Write-Host "   found   $($peerNames[$k])" } else { Add-Note "MISSING peer: $($peerNames[$k]); its rows are skipped." }
}
if ($Have.awsSdk) { Copy-Item -LiteralPath (Join-Path $PSScriptRoot 'bench/aws-sdk-bench.mjs') -Destination $NodeDir -Force }

# ---------------------------------------------------------------------------------------------------------------
# 2. Inputs on a tmpfs
# ---------------------------------------------------------------------------------------------------------------
$Work = Join-Path $OutPath 'work'
$Mounted = $false
if (Test-Path $Work) {
    if ((Test-Command mountpoint) -and $(& mountpoint -q $Work; $LASTEXITCODE -eq 0)) { & umount $Work }
    Remove-Item -LiteralPath $Work -Recurse -Force
}
$null = New-Item -ItemType Directory -Path $Work
$Filesystem = 'disk folder'
if ((& id -u) -eq '0' -and (Test-Command mount)) {
    & mount -t tmpfs -o size=6g tmpfs $Work 2>$null
    if ($LASTEXITCODE -eq 0) { $Mounted = $true; $Filesystem = 'tmpfs (size=6g)' }
}
if (-not $Mounted) {
    $fsType = (& stat -f -c %T $Work 2>$null)
    $Filesystem = "folder on $fsType"
    Add-Note "Could not mount a tmpfs (needs root); inputs are in $Work on $fsType, so disk write-back may dominate large-file timings."
}

$Servers = @()
try {
    Write-Step "Inputs in $Work ($Filesystem)"
    $In = Join-Path $Work 'in'; $Out = Join-Path $Work 'out'
    $null = New-Item -ItemType Directory -Path $In, $Out
    function New-RandomFile([string] $Path, [long] $Length) {
        $buffer = [byte[]]::new([Math]::Min($Length, 1MB)); $fs = [IO.File]::Create($Path)
        try { for ($left = $Length; $left -gt 0; $left -= $buffer.Length) { [Random]::Shared.NextBytes($buffer); $fs.Write($buffer, 0, [Math]::Min($left, $buffer.Length)) } }
        finally { $fs.Dispose() }
    }
    function New-SmallFiles([string] $Dir, [int] $Count, [int] $Length) {
        $null = New-Item -ItemType Directory -Force -Path $Dir
        $buffer = [byte[]]::new($Length)
        for ($i = 0; $i -lt $Count; $i++) { [Random]::Shared.NextBytes($buffer); [IO.File]::WriteAllBytes((Join-Path $Dir ('f{0:000000}.bin' -f $i)), $buffer) }
    }
    $Inputs = [ordered]@{
        Large = @{ Path = (Join-Path $In 'large.bin'); Label = Format-Size $Sizes.Large }
        Medium = @{ Path = (Join-Path $In 'medium.bin'); Label = Format-Size $Sizes.Medium }
    }
    New-RandomFile $Inputs.Large.Path $Sizes.Large
    New-RandomFile $Inputs.Medium.Path $Sizes.Medium
    $SmallDir = Join-Path $In 'small'
    New-SmallFiles $SmallDir $Sizes.Files $Sizes.FileSize
    $FilesLabel = "$($Sizes.Files) x $(Format-Size $Sizes.FileSize)"
    Write-Host "   $($Inputs.Large.Label), $($Inputs.Medium.Label), $FilesLabel"

    # -----------------------------------------------------------------------------------------------------------
    # Local KMS servers: one plain, one with 50 ms latency on every call.
    # -----------------------------------------------------------------------------------------------------------
    function Start-KmsServer([string[]] $Extra) {
        $dataDir = Join-Path ([IO.Path]::GetTempPath()) ('ekms-bench-' + [guid]::NewGuid().ToString('N'))
        $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @($ServerPath, '--port', '0', '--data-dir', $dataDir, '--exit-on-stdin-close', '--enable-control') + $Extra) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardInput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        $p = [Diagnostics.Process]::Start($psi)
        $line = $p.StandardOutput.ReadLine()
        if ($line -notmatch 'listening on (http://\S+)') { throw "The local KMS server did not start: $line $($p.StandardError.ReadToEnd())" }
        $null = $p.StandardError.ReadToEndAsync()
        [pscustomobject]@{ Process = $p; Endpoint = $Matches[1].TrimEnd('/'); DataDir = $dataDir }
    }
    function Get-KmsStats($Server) { Invoke-RestMethod -Uri "$($Server.Endpoint)/__control/stats" }
    function Reset-KmsStats($Server) { $null = Invoke-RestMethod -Method Post -Uri "$($Server.Endpoint)/__control/reset-stats" }
    function Get-KmsCount($Stats, [string] $Operation) {
        $op = $Stats.operations.PSObject.Properties[$Operation]
        if ($op) { [int] $op.Value.success + [int] $op.Value.failure } else { 0 }
    }

    Write-Step 'Local KMS servers'
    $Kms = Start-KmsServer @(); $Servers += $Kms
    $KmsSlow = Start-KmsServer @('--latency-ms', '50'); $Servers += $KmsSlow
    Write-Host "   $($Kms.Endpoint)  and  $($KmsSlow.Endpoint) (--latency-ms 50)"

    # The module, imported and connected once in this process.
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    EnvelopeKms\Connect-Kms -Endpoint $Kms.Endpoint -Credential $Cred
    $sw.Stop()
    $ImportConnectSeconds = $sw.Elapsed.TotalSeconds
    $ModuleVersion = (Get-Module EnvelopeKms).Version.ToString()
    Write-Host ("   Import-Module + Connect-Kms: {0:0.000} s (EnvelopeKms {1})" -f $ImportConnectSeconds, $ModuleVersion)
    $KeyId = (EnvelopeKms\New-KmsKey -Description 'bench key').KeyId
    $DrKeyId = (EnvelopeKms\New-KmsKey -Description 'bench DR key (Update-EnvelopeFileKey)').KeyId
    $SlowKeyId = (EnvelopeKms\New-KmsKey -Description 'bench key (latency)' -Endpoint $KmsSlow.Endpoint -Credential $Cred).KeyId

    # -----------------------------------------------------------------------------------------------------------
    # 3. Measuring
    # -----------------------------------------------------------------------------------------------------------
    $Samples = [ordered]@{}       # key "tool|size|op" -> list of seconds
    $Peaks = @{}                  # key -> list of MiB
    $Meta = [ordered]@{}          # key -> @{Tool; Size; Operation; Group}
    function Add-Sample([string] $Tool, [string] $Size, [string] $Operation, [double] $Seconds, $PeakMiB = $null) {
        $key = "$Tool|$Size|$Operation"
        if (-not $Samples.Contains($key)) { $Samples[$key] = [System.Collections.Generic.List[double]]::new(); $Meta[$key] = @{ Tool = $Tool; Size = $Size; Operation = $Operation } }
        $Samples[$key].Add($Seconds)
        if ($null -ne $PeakMiB) { if (-not $Peaks.ContainsKey($key)) { $Peaks[$key] = [System.Collections.Generic.List[double]]::new() }; $Peaks[$key].Add($PeakMiB) }
    }

    # Each timed run starts on a quiet machine: this pwsh keeps compiling its own engine's hot code on a background
    # thread (tiered JIT) for a while after running new script code, and the KMS servers do the same after serving
    # new requests; left alone, that JIT took most of a core during some timed runs (of the module and of the peers
    # alike). So wait until, over two 150 ms windows in a row, the machine was < 10 % busy (/proc/stat; steal time is
    # not busy) and this process used < 10 ms of CPU; give up after 5 s and count it. (Not in -Short.)
    $Self = [Diagnostics.Process]::GetCurrentProcess()
    # CPU time of this process, every thread, in seconds. On .NET 8 (PowerShell 7.4) Process.TotalProcessorTime counts
    # whole clock ticks on Linux (10 ms), so a small timed run read 0; there clock_gettime(CLOCK_PROCESS_CPUTIME_ID)
    # gives nanoseconds. The .NET 10 under PowerShell 7.6 is already that fine, without compiling anything.
    if ([Environment]::Version.Major -ge 10) {
        function Get-ProcessCpuSeconds { $Self.Refresh(); $Self.TotalProcessorTime.TotalSeconds }
    }
    else {
        Add-Type -TypeDefinition @'
public static class EnvelopeKmsBenchCpu
{
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int clock_gettime(int clockId, out Timespec value);

    public static double ProcessSeconds()
    {
        // 2 = CLOCK_PROCESS_CPUTIME_ID on Linux.
        if (clock_gettime(2, out var t) != 0) { throw new System.ComponentModel.Win32Exception(); }
        return t.Seconds + t.Nanoseconds / 1e9;
    }
}
'@
        function Get-ProcessCpuSeconds { [EnvelopeKmsBenchCpu]::ProcessSeconds() }
    }
    $QuietTimeouts = 0
    function Get-CpuSample {
        if (-not (Test-Path /proc/stat)) { return $null }
        $f = ((Get-Content /proc/stat -TotalCount 1) -split '\s+')[1..7] | ForEach-Object { [long] $_ }
        @{ Busy = $f[0] + $f[1] + $f[2] + $f[5] + $f[6]; All = $f[0] + $f[1] + $f[2] + $f[3] + $f[4] + $f[5] + $f[6] }
    }
    function Wait-Quiet {
        if ($Short) { return } # a smoke test of the script: its timings mean nothing
        $sw = [Diagnostics.Stopwatch]::StartNew(); $quiet = 0
        while ($sw.ElapsedMilliseconds -lt 5000) {
            $a = Get-CpuSample; $p0 = Get-ProcessCpuSeconds
            [Threading.Thread]::Sleep(150)
            $b = Get-CpuSample; $p1 = Get-ProcessCpuSeconds
            $machineQuiet = -not $a -or ($b.All -gt $a.All -and ($b.Busy - $a.Busy) / ($b.All - $a.All) -lt 0.1)
            if ($machineQuiet -and ($p1 - $p0) -lt 0.010) { if (++$quiet -ge 2) { return } } else { $quiet = 0 }
        }
        $script:QuietTimeouts++
    }

    function Invoke-Timed {
        # Runs a native command; returns seconds (wall, from this process) and peak RSS in MiB (via /usr/bin/time).
        param([string] $FilePath, [string[]] $ArgumentList, [switch] $ParseElapsed)
        $peakFile = Join-Path $Work 'peak.txt'
        $psi = [Diagnostics.ProcessStartInfo]::new()
        if ($Have.time) { $psi.FileName = '/usr/bin/time'; foreach ($a in @('-f', '%M', '-o', $peakFile, $FilePath)) { $psi.ArgumentList.Add($a) } }
        else { $psi.FileName = $FilePath }
        foreach ($a in $ArgumentList) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        Wait-Quiet
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $p = [Diagnostics.Process]::Start($psi)
        $stdout = $p.StandardOutput.ReadToEndAsync(); $stderr = $p.StandardError.ReadToEndAsync()
        $p.WaitForExit()
        $sw.Stop()
        if ($p.ExitCode -ne 0) { throw "$FilePath $($ArgumentList -join ' ') exited with $($p.ExitCode): $($stderr.Result) $($stdout.Result)" }
        $seconds = $sw.Elapsed.TotalSeconds
        if ($ParseElapsed) {
            if ($stdout.Result -match 'elapsed_ms ([\d.]+)') { $seconds = [double] $Matches[1] / 1000 } else { throw "No elapsed_ms from $FilePath $($ArgumentList -join ' '): $($stdout.Result)" }
        }
        $peak = $null
        if ($Have.time -and (Test-Path $peakFile)) { $kb = (Get-Content $peakFile | Where-Object { $_ -match '^\d+$' } | Select-Object -Last 1); if ($kb) { $peak = [double] $kb / 1024 } }
        @{ Seconds = $seconds; Peak = $peak }
    }
    # CPU of a timed module run, all threads of this process, and how much of it was this pwsh's tiered JIT
    # compiling its own engine's methods on a background thread (/proc/self/task/*/stat; Linux only).
    $ClockTicks = (Test-Command getconf) ? [double] (& getconf CLK_TCK) : 100.0
    $ModuleCpu = @{}
    function Get-JitSeconds {
        $ticks = 0L
        if (-not (Test-Path /proc/self/task)) { return $null }
        foreach ($task in [IO.Directory]::GetDirectories('/proc/self/task')) {
            try { $stat = [IO.File]::ReadAllText("$task/stat") } catch { continue } # the thread ended meanwhile
            if ($stat -notmatch '\(\.NET Tiered Com') { continue }
            $f = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
            $ticks += [long] $f[11] + [long] $f[12] # utime, stime
        }
        $ticks / $ClockTicks
    }
    function Measure-Module([scriptblock] $Action) {
        [GC]::Collect(); [GC]::WaitForPendingFinalizers()
        Wait-Quiet
        $cpu0 = Get-ProcessCpuSeconds; $jit0 = Get-JitSeconds
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $null = & $Action
        $sw.Stop()
        $cpu1 = Get-ProcessCpuSeconds; $jit1 = Get-JitSeconds
        $script:LastModuleCpu = @{ Cpu = $cpu1 - $cpu0; Jit = ($null -ne $jit0) ? $jit1 - $jit0 : $null }
        $sw.Elapsed.TotalSeconds
    }
    function Add-ModuleCpu([string] $Size, [string] $Operation) {
        $k = "$Size|$Operation"
        if (-not $ModuleCpu.ContainsKey($k)) { $ModuleCpu[$k] = [System.Collections.Generic.List[object]]::new() }
        $ModuleCpu[$k].Add($script:LastModuleCpu)
    }
    function Clear-Out { Get-ChildItem -LiteralPath $Out -Force | Remove-Item -Recurse -Force }
    function Assert-SameLength([string] $A, [string] $B) {
        if ((Get-Item -LiteralPath $A).Length -ne (Get-Item -LiteralPath $B).Length) { throw "Round trip changed the length: $A vs $B" }
    }

    # Each step is an encrypt + decrypt pair (or a copy), run in turn with the others and cleaned up afterwards.
    # A step is @{ Name; Ctx; Run = { param($c) ... } }: Run sees this script's functions (no GetNewClosure, whose
    # module scope would hide them); loop values travel in Ctx.
    $Verified = @{}
    function New-Step([string] $Name, [hashtable] $Ctx, [scriptblock] $Run) { @{ Name = $Name; Ctx = $Ctx; Run = $Run } }
    function New-FileSteps([string] $Which) {
        $ctx = @{ src = $Inputs[$Which].Path; size = $Inputs[$Which].Label }
        $steps = [System.Collections.Generic.List[object]]::new()
        $steps.Add((New-Step 'cp' $ctx { param($c) $r = Invoke-Timed cp @($c.src, "$Out/copy"); Add-Sample 'cp' $c.size 'copy' $r.Seconds $r.Peak }))
        $steps.Add((New-Step 'EnvelopeKms' $ctx {
                    param($c)
                    $enc = "$Out/m.ekms"; $dec = "$Out/m.dec"
                    $t = Measure-Module { EnvelopeKms\Protect-EnvelopeFile -LiteralPath $c.src -KeyId $KeyId -Destination $enc }
                    Add-Sample 'EnvelopeKms' $c.size 'encrypt' $t; Add-ModuleCpu $c.size 'encrypt'
                    $t = Measure-Module { EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath $enc -Destination $dec }
                    Add-Sample 'EnvelopeKms' $c.size 'decrypt' $t; Add-ModuleCpu $c.size 'decrypt'
                    if (-not $Verified[$c.size]) {
                        if ((Get-FileHash -LiteralPath $c.src).Hash -ne (Get-FileHash -LiteralPath $dec).Hash) { throw "EnvelopeKms round trip of $($c.src) does not match" }
                        $Verified[$c.size] = $true
                    }
                }))
        # Re-wrapping: Update-EnvelopeFileKey -AddKeyId rewrites only the header, so its cost must not grow with the
        # file. The envelope is made once (untimed) outside $Out; each run adds the DR key (timed) and removes it again
        # (untimed), so every run does the same header-only update.
        $steps.Add((New-Step 'EnvelopeKms update' ($ctx + @{ which = $Which }) {
                    param($c)
                    $env = Join-Path $Work "update-$($c.which).ekms"
                    if (-not (Test-Path -LiteralPath $env)) { EnvelopeKms\Protect-EnvelopeFile -LiteralPath $c.src -KeyId $KeyId -Destination $env }
                    $before = (Get-Item -LiteralPath $env).Length
                    $r = $null
                    $t = Measure-Module { $script:UpdateResult = EnvelopeKms\Update-EnvelopeFileKey -LiteralPath $env -AddKeyId $DrKeyId -PassThru }
                    $r = $script:UpdateResult
                    if (-not $r -or -not $r.Changed -or $r.Rewritten) { throw "Update-EnvelopeFileKey did not update $env in place" }
                    if ((Get-Item -LiteralPath $env).Length -ne $before) { throw "Update-EnvelopeFileKey changed the length of $env" }
                    Add-Sample 'EnvelopeKms' $c.size 'update (-AddKeyId)' $t
                    EnvelopeKms\Update-EnvelopeFileKey -LiteralPath $env -RemoveKeyId $DrKeyId
                }))
        if ($Have.bare) {
            foreach ($threads in 1, 2) {
                $tool = "bare .NET AesGcm loop, 64 KiB frames, $threads thread$($threads -gt 1 ? 's' : '')"
                $steps.Add((New-Step "bare-$threads" ($ctx + @{ threads = "$threads"; tool = $tool }) {
                            param($c)
                            $r = Invoke-Timed dotnet @($BareDll, 'encrypt', $c.threads, $c.src, "$Out/b.enc") -ParseElapsed; Add-Sample $c.tool $c.size 'encrypt' $r.Seconds $r.Peak
                            $r = Invoke-Timed dotnet @($BareDll, 'decrypt', $c.threads, "$Out/b.enc", "$Out/b.dec") -ParseElapsed; Add-Sample $c.tool $c.size 'decrypt' $r.Seconds $r.Peak
                            Assert-SameLength $c.src "$Out/b.dec"
                        }))
            }
        }
        if ($Have.age) {
            $steps.Add((New-Step 'age' $ctx {
                        param($c)
                        $r = Invoke-Timed age @('-r', $AgeRecipient, '-o', "$Out/a.age", $c.src); Add-Sample 'age (X25519)' $c.size 'encrypt' $r.Seconds $r.Peak
                        $r = Invoke-Timed age @('-d', '-i', $AgeKey, '-o', "$Out/a.dec", "$Out/a.age"); Add-Sample 'age (X25519)' $c.size 'decrypt' $r.Seconds $r.Peak
                        Assert-SameLength $c.src "$Out/a.dec"
                    }))
        }
        if ($Have.awsSdk) {
            foreach ($suite in ($Short ? @('unsigned') : @('unsigned', 'default'))) {
                $tool = $suite -eq 'unsigned' ? 'AWS Encryption SDK JS (unsigned suite, 64 KiB frames)' : 'AWS Encryption SDK JS (default suite, 4 KiB frames)'
                $steps.Add((New-Step "aws-$suite" ($ctx + @{ suite = $suite; tool = $tool }) {
                            param($c)
                            $r = Invoke-Timed node @("$NodeDir/aws-sdk-bench.mjs", 'encrypt', $c.suite, $c.src, "$Out/w.aws") -ParseElapsed; Add-Sample $c.tool $c.size 'encrypt' $r.Seconds $r.Peak
                            $r = Invoke-Timed node @("$NodeDir/aws-sdk-bench.mjs", 'decrypt', $c.suite, "$Out/w.aws", "$Out/w.dec") -ParseElapsed; Add-Sample $c.tool $c.size 'decrypt' $r.Seconds $r.Peak
                            Assert-SameLength $c.src "$Out/w.dec"
                        }))
            }
        }
        if ($Have.pycrypto -and ($Which -eq 'Medium' -or $Long)) {
            $steps.Add((New-Step 'docsample' $ctx {
                        param($c)
                        $py = Join-Path $PSScriptRoot 'bench/kms-doc-sample.py'; $tool = 'KMS doc sample approach (pycryptodome EAX, base64)'
                        $r = Invoke-Timed $Python @($py, 'encrypt', $c.src, "$Out/p.txt"); Add-Sample $tool $c.size 'encrypt' $r.Seconds $r.Peak
                        $r = Invoke-Timed $Python @($py, 'decrypt', "$Out/p.txt", "$Out/p.dec"); Add-Sample $tool $c.size 'decrypt' $r.Seconds $r.Peak
                        Assert-SameLength $c.src "$Out/p.dec"
                    }))
        }
        , $steps
    }

    $BatchCalls = [System.Collections.Generic.List[object]]::new()
    function New-BatchSteps {
        $ctx = @{ size = $FilesLabel }
        $steps = [System.Collections.Generic.List[object]]::new()
        $steps.Add((New-Step 'cp -r' $ctx { param($c) $r = Invoke-Timed cp @('-r', $SmallDir, "$Out/copy"); Add-Sample 'cp -r' $c.size 'copy' $r.Seconds $r.Peak }))
        foreach ($latency in 0, 50) {
            $stepCtx = $ctx + @{
                tool = $latency ? 'EnvelopeKms (KMS +50 ms latency)' : 'EnvelopeKms'; latency = $latency
                server = $latency ? $KmsSlow : $Kms; key = $latency ? $SlowKeyId : $KeyId
            }
            $steps.Add((New-Step "EnvelopeKms-$latency" $stepCtx {
                        param($c)
                        # Both batches use the session's Connect-Kms default (switched outside the timed region).
                        if ($c.latency) { EnvelopeKms\Connect-Kms -Endpoint $KmsSlow.Endpoint -Credential $Cred }
                        try {
                        $encDir = (New-Item -ItemType Directory -Path "$Out/menc").FullName; $decDir = (New-Item -ItemType Directory -Path "$Out/mdec").FullName
                        Reset-KmsStats $c.server
                        $t = Measure-Module { Get-ChildItem -LiteralPath $SmallDir -File | EnvelopeKms\Protect-EnvelopeFile -KeyId $c.key -Destination "$encDir/" }
                        Add-Sample $c.tool $c.size 'encrypt' $t
                        $gdk = Get-KmsCount (Get-KmsStats $c.server) 'GenerateDataKey'
                        Reset-KmsStats $c.server
                        $t = Measure-Module { Get-ChildItem -LiteralPath $encDir -Filter *.ekms | EnvelopeKms\Unprotect-EnvelopeFile -Destination "$decDir/" }
                        Add-Sample $c.tool $c.size 'decrypt' $t
                        $dk = Get-KmsCount (Get-KmsStats $c.server) 'Decrypt'
                        $BatchCalls.Add([pscustomobject]@{ Latency = $c.latency; GenerateDataKey = $gdk; Decrypt = $dk })
                        $n = @(Get-ChildItem -LiteralPath $decDir -File).Count
                        if ($n -ne $Sizes.Files) { throw "EnvelopeKms decrypted $n of $($Sizes.Files) files" }
                        }
                        finally { if ($c.latency) { EnvelopeKms\Connect-Kms -Endpoint $Kms.Endpoint -Credential $Cred } }
                    }))
        }
        if ($Have.age) {
            $steps.Add((New-Step 'age loop' $ctx {
                        param($c)
                        $null = New-Item -ItemType Directory -Path "$Out/aenc", "$Out/adec"
                        $r = Invoke-Timed bash @('-c', 'for f in "$1"/*; do age -r "$2" -o "$3/${f##*/}.age" "$f" || exit 1; done', 'bench', $SmallDir, $AgeRecipient, "$Out/aenc")
                        Add-Sample 'age, shell loop (one process per file)' $c.size 'encrypt' $r.Seconds
                        $r = Invoke-Timed bash @('-c', 'for f in "$1"/*.age; do n=${f##*/}; age -d -i "$2" -o "$3/${n%.age}" "$f" || exit 1; done', 'bench', "$Out/aenc", $AgeKey, "$Out/adec")
                        Add-Sample 'age, shell loop (one process per file)' $c.size 'decrypt' $r.Seconds
                    }))
        }
        if ($Have.awsSdk) {
            foreach ($suite in ($Short ? @('unsigned') : @('unsigned', 'default'))) {
                $tool = $suite -eq 'unsigned' ? 'AWS Encryption SDK JS, one process (unsigned, 64 KiB frames)' : 'AWS Encryption SDK JS, one process (default suite)'
                $steps.Add((New-Step "aws-$suite" ($ctx + @{ suite = $suite; tool = $tool }) {
                            param($c)
                            $null = New-Item -ItemType Directory -Path "$Out/wenc", "$Out/wdec"
                            $r = Invoke-Timed node @("$NodeDir/aws-sdk-bench.mjs", 'encrypt', $c.suite, $SmallDir, "$Out/wenc") -ParseElapsed; Add-Sample $c.tool $c.size 'encrypt' $r.Seconds $r.Peak
                            $r = Invoke-Timed node @("$NodeDir/aws-sdk-bench.mjs", 'decrypt', $c.suite, "$Out/wenc", "$Out/wdec") -ParseElapsed; Add-Sample $c.tool $c.size 'decrypt' $r.Seconds $r.Peak
                        }))
            }
        }
        , $steps
    }

    if ($Have.age) {
        $AgeKey = Join-Path $Work 'age-key.txt'
        & age-keygen -o $AgeKey 2>$null
        $AgeRecipient = (& age-keygen -y $AgeKey).Trim()
    }

    # openssl speed: the limit of one core, in memory (16 KiB blocks).
    $OpenSsl = @{}
    if ($Have.openssl) {
        Write-Step 'openssl speed -evp aes-256-gcm (16 KiB blocks)'
        $secs = $Short ? 1 : 2
        foreach ($dir in 'encrypt', 'decrypt') {
            $a = @('speed', '-seconds', "$secs", '-bytes', '16384', '-evp', 'aes-256-gcm')
            if ($dir -eq 'decrypt') { $a = @('speed', '-decrypt') + $a[1..($a.Count - 1)] }
            $text = & openssl @a 2>$null
            $line = $text | Where-Object { $_ -match '^(AES-256-GCM|aes-256-gcm)\s' } | Select-Object -Last 1
            if ($line -and $line -match '([\d.]+)k\s*$') { $OpenSsl[$dir] = [double] $Matches[1] * 1000 / 1e6; Write-Host ("   {0}: {1:0} MB/s" -f $dir, $OpenSsl[$dir]) }
            else { Add-Note "Could not parse openssl speed ($dir): $($text -join ' | ')" }
        }
    }

    # Warm-up (untimed): JIT and the first HTTP connection, so one-run short forms are not mostly start-up.
    $warm = Join-Path $Work 'warm.bin'; New-RandomFile $warm 64KB
    EnvelopeKms\Protect-EnvelopeFile -LiteralPath $warm -KeyId $KeyId -Destination "$Out/warm.ekms"
    EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath "$Out/warm.ekms" -Destination "$Out/warm.dec"
    EnvelopeKms\Update-EnvelopeFileKey -LiteralPath "$Out/warm.ekms" -AddKeyId $DrKeyId
    Clear-Out; Remove-Item -LiteralPath $warm

    $Groups = [ordered]@{ Large = (New-FileSteps 'Large'); Medium = (New-FileSteps 'Medium'); Files = (New-BatchSteps) }
    foreach ($g in $Groups.Keys) {
        $steps = $Groups[$g]
        Write-Step "$g : $($steps.Count) contenders x $Runs rounds (interleaved, order rotated each round)"
        for ($round = 0; $round -lt $Runs; $round++) {
            for ($i = 0; $i -lt $steps.Count; $i++) {
                $step = $steps[($i + $round) % $steps.Count]
                try { & $step.Run $step.Ctx }
                catch { Add-Note "$g / $($step.Name) failed in round $($round + 1): $($_.Exception.Message)" }
                finally { Clear-Out }
            }
            Write-Host "   round $($round + 1) done"
        }
        if ($g -in 'Large', 'Files' -and -not $Short) {
            # Twice as many rounds more of the rows the goals compare, still interleaved, steady their medians. The
            # batch rows last ~0.2 s, where host noise is as large as the 50 ms under test (cp -r and the module with
            # and without latency); the 1 GiB goals sit near the line while cp alone varies by 1.5-2x between rounds on
            # these shared hosts (cp, the module, and the bare loop with two threads).
            $names = $g -eq 'Large' ? @('cp', 'EnvelopeKms', 'bare-2') : @('cp -r', 'EnvelopeKms-0', 'EnvelopeKms-50')
            $cheap = @($steps | Where-Object { $_.Name -in $names })
            for ($round = 0; $round -lt 2 * $Runs; $round++) {
                for ($i = 0; $i -lt $cheap.Count; $i++) {
                    $step = $cheap[($i + $round) % $cheap.Count]
                    try { & $step.Run $step.Ctx }
                    catch { Add-Note "$g / $($step.Name) failed in extra round $($round + 1): $($_.Exception.Message)" }
                    finally { Clear-Out }
                }
            }
            Write-Host "   $(2 * $Runs) extra rounds of $($names -join ', ') done"
        }
    }
    if ($QuietTimeouts) { Add-Note "$QuietTimeouts timed run(s) started without a quiet machine (gave up waiting after 5 s): other load may be in them." }

    # Peak working set of the module: a fresh pwsh per measurement.
    Write-Step 'Peak working set of the module (fresh pwsh per file)'
    $PeakRuns = [Math]::Min($Runs, 3)
    function Measure-ModulePeak([string] $Operation, [string] $Source) {
        $dest = $Operation -eq 'encrypt' ? "$Out/peak.ekms" : "$Out/peak.dec"
        $action = switch ($Operation) {
            'encrypt' { "EnvelopeKms\Protect-EnvelopeFile -LiteralPath '$Source' -KeyId '$KeyId' -Destination '$dest'" }
            'decrypt' { "EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath '$Source' -Destination '$dest'" }
            default { '' }
        }
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$(Join-Path $ModulePath 'EnvelopeKms.psd1')'
EnvelopeKms\Connect-Kms -Endpoint '$($Kms.Endpoint)' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))
$action
"PEAK `$([Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64)"
"@
        # This pwsh's own executable (dotnet <PSHOME>/pwsh.dll for the local tool), so the figures are those of the
        # PowerShell version that runs the benchmark (tests/pester/Bench.Tests.ps1 runs it on each one tested).
        $pwshExe = [Environment]::ProcessPath
        $pwshPrefix = @()
        if ([IO.Path]::GetFileNameWithoutExtension($pwshExe) -eq 'dotnet') { $pwshPrefix = @(Join-Path $PSHOME 'pwsh.dll') }
        $text = & $pwshExe @pwshPrefix -NoProfile -NonInteractive -Command $script 2>&1
        $line = $text | ForEach-Object { "$_" } | Where-Object { $_ -match '^PEAK (\d+)' } | Select-Object -Last 1
        if (-not $line) { throw "no PEAK line: $($text -join ' ')" }
        [double] ($line -replace '^PEAK ', '') / 1MB
    }
    $ModulePeaks = [ordered]@{}
    try {
        $list = [System.Collections.Generic.List[double]]::new()
        if (-not $Short) {
            for ($i = 0; $i -lt $PeakRuns; $i++) { $list.Add((Measure-ModulePeak 'none' '')) }
            $ModulePeaks['import + connect only (no file)'] = Get-Median $list
        }
        foreach ($which in 'Large', 'Medium') {
            $src = $Inputs[$which].Path; $size = $Inputs[$which].Label
            $encList = [System.Collections.Generic.List[double]]::new(); $decList = [System.Collections.Generic.List[double]]::new()
            $cipher = Join-Path $Work "peak-src.ekms"
            EnvelopeKms\Protect-EnvelopeFile -LiteralPath $src -KeyId $KeyId -Destination $cipher -Force
            for ($i = 0; $i -lt $PeakRuns; $i++) {
                $encList.Add((Measure-ModulePeak 'encrypt' $src)); Clear-Out
                $decList.Add((Measure-ModulePeak 'decrypt' $cipher)); Clear-Out
            }
            Remove-Item -LiteralPath $cipher
            $ModulePeaks["$size encrypt"] = Get-Median $encList
            $ModulePeaks["$size decrypt"] = Get-Median $decList
            foreach ($op in 'encrypt', 'decrypt') { $k = "EnvelopeKms|$size|$op"; $Peaks[$k] = [System.Collections.Generic.List[double]]::new(); $Peaks[$k].Add($ModulePeaks["$size $op"]) }
        }
        $ModulePeaks.GetEnumerator() | ForEach-Object { Write-Host ("   {0}: {1:0.0} MiB" -f $_.Key, $_.Value) }
    }
    catch { Add-Note "Peak working set measurement failed: $($_.Exception.Message)" }

    # KMS calls for a large batch (long form only): 100,000 files if it fits in ~2 minutes, else 20,000.
    $LargeBatch = $null
    if (-not $Short) {
        $encMed = Get-Median $Samples["EnvelopeKms|$FilesLabel|encrypt"]; $decMed = Get-Median $Samples["EnvelopeKms|$FilesLabel|decrypt"]
        if ($null -ne $encMed -and $null -ne $decMed) {
            $estimate = ($encMed + $decMed) * 100000 / $Sizes.Files + 100000 * 0.0001
            $count = $estimate -lt 120 ? 100000 : 20000
            Write-Step ("KMS calls for {0:N0} files (100,000 estimated at {1:0} s)" -f $count, $estimate)
            $bigDir = Join-Path $Work 'many'; New-SmallFiles $bigDir $count $Sizes.FileSize
            $encDir = (New-Item -ItemType Directory -Path "$Out/menc").FullName; $decDir = (New-Item -ItemType Directory -Path "$Out/mdec").FullName
            try {
                Reset-KmsStats $Kms
                $te = Measure-Module { Get-ChildItem -LiteralPath $bigDir -File | EnvelopeKms\Protect-EnvelopeFile -KeyId $KeyId -Destination "$encDir/" }
                $gdk = Get-KmsCount (Get-KmsStats $Kms) 'GenerateDataKey'
                Reset-KmsStats $Kms
                $td = Measure-Module { Get-ChildItem -LiteralPath $encDir -Filter *.ekms | EnvelopeKms\Unprotect-EnvelopeFile -Destination "$decDir/" }
                $dk = Get-KmsCount (Get-KmsStats $Kms) 'Decrypt'
                $LargeBatch = [ordered]@{ Files = $count; EncryptSeconds = $te; DecryptSeconds = $td; GenerateDataKey = $gdk; Decrypt = $dk
                    GenerateDataKeyPer10k = $gdk * 10000 / $count; DecryptPer10k = $dk * 10000 / $count }
                Write-Host ("   {0:N0} files: encrypt {1:0.00} s, {2} GenerateDataKey; decrypt {3:0.00} s, {4} Decrypt" -f $count, $te, $gdk, $td, $dk)
            }
            catch { Add-Note "Large batch failed: $($_.Exception.Message)" }
            finally { Clear-Out; Remove-Item -LiteralPath $bigDir -Recurse -Force }
        }
    }
}
finally {
    foreach ($s in $Servers) {
        try { $s.Process.StandardInput.Close() } catch { }
        if (-not $s.Process.WaitForExit(5000)) { $s.Process.Kill($true) }
        Remove-Item -LiteralPath $s.DataDir -Recurse -Force -ErrorAction SilentlyContinue
    }
    if (Get-Command EnvelopeKms\Disconnect-Kms -ErrorAction SilentlyContinue) { EnvelopeKms\Disconnect-Kms -ErrorAction SilentlyContinue }
    if ($Mounted) { & umount $Work }
    Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue
}

# ---------------------------------------------------------------------------------------------------------------
# 4. Table, machine, goals
# ---------------------------------------------------------------------------------------------------------------
$cpKeyFor = @{ ($Inputs.Large.Label) = "cp|$($Inputs.Large.Label)|copy"; ($Inputs.Medium.Label) = "cp|$($Inputs.Medium.Label)|copy"; $FilesLabel = "cp -r|$FilesLabel|copy" }
function Get-Row([string] $Key) {
    $m = $Meta[$Key]; $med = Get-Median $Samples[$Key]
    $cpMed = ($cpKeyFor.ContainsKey($m.Size) -and $Samples.Contains($cpKeyFor[$m.Size])) ? (Get-Median $Samples[$cpKeyFor[$m.Size]]) : $null
    [pscustomobject][ordered]@{
        Tool = $m.Tool; Size = $m.Size; Operation = $m.Operation; Runs = $Samples[$Key].Count
        MedianSeconds = [Math]::Round($med, 4)
        RatioToCp = $cpMed ? [Math]::Round($med / $cpMed, 2) : $null
        PeakMiB = $Peaks.ContainsKey($Key) ? [Math]::Round((Get-Median $Peaks[$Key]), 1) : $null
        Samples = @($Samples[$Key] | ForEach-Object { [Math]::Round($_, 4) })
    }
}
foreach ($k in $Samples.Keys) { $Rows.Add((Get-Row $k)) }
foreach ($dir in 'encrypt', 'decrypt') {
    if (-not $OpenSsl.ContainsKey($dir)) { continue }
    foreach ($which in 'Large', 'Medium') {
        $bytes = $which -eq 'Large' ? $Sizes.Large : $Sizes.Medium; $size = $Inputs[$which].Label
        $s = $bytes / ($OpenSsl[$dir] * 1e6)
        $cpMed = $Samples.Contains($cpKeyFor[$size]) ? (Get-Median $Samples[$cpKeyFor[$size]]) : $null
        $Rows.Add([pscustomobject][ordered]@{ Tool = ('openssl speed AES-256-GCM, 1 core, in memory ({0:0} MB/s at 16 KiB)' -f $OpenSsl[$dir]); Size = $size; Operation = $dir; Runs = 1
                MedianSeconds = [Math]::Round($s, 4); RatioToCp = $cpMed ? [Math]::Round($s / $cpMed, 2) : $null; PeakMiB = $null; Samples = @() })
    }
}
$sizeOrder = @{ ($Inputs.Large.Label) = 0; ($Inputs.Medium.Label) = 1; $FilesLabel = 2 }
$Table = @($Rows | Sort-Object @{ e = { $sizeOrder[$_.Size] } }, @{ e = { $_.Tool -like 'cp*' ? 0 : ($_.Tool -like 'EnvelopeKms*' ? 1 : ($_.Tool -like 'openssl*' ? 9 : 2)) } }, Tool, Operation)

function Get-Med([string] $Tool, [string] $Size, [string] $Op) { $k = "$Tool|$Size|$Op"; $Samples.Contains($k) ? (Get-Median $Samples[$k]) : $null }
$L = $Inputs.Large.Label; $M = $Inputs.Medium.Label; $F = $FilesLabel
$Goals = [System.Collections.Generic.List[object]]::new()
function Add-Goal([string] $Goal, $Met, [string] $Evidence) {
    $state = $null -eq $Met ? 'n/a' : ($Met ? 'met' : 'NOT met')
    $Goals.Add([pscustomobject][ordered]@{ Goal = $Goal; Result = $state; Evidence = $Evidence })
}
$cpL = Get-Med 'cp' $L 'copy'
foreach ($op in 'encrypt', 'decrypt') {
    $t = Get-Med 'EnvelopeKms' $L $op
    if ($t -and $cpL) { Add-Goal "$L $op <= 1.25x cp" (($t / $cpL) -le 1.25) ('{0:0.000} s vs cp {1:0.000} s = {2:0.00}x' -f $t, $cpL, ($t / $cpL)) }
    else { Add-Goal "$L $op <= 1.25x cp" $null 'not measured' }
    $bare = Get-Med 'bare .NET AesGcm loop, 64 KiB frames, 2 threads' $L $op
    if ($t -and $bare) { Add-Goal "$L $op faster than the bare AesGcm loop with 2 threads, same run" ($t -lt $bare) ('{0:0.000} s vs {1:0.000} s ({2:0.00}x cp)' -f $t, $bare, ($cpL ? $bare / $cpL : 0)) }
    else { Add-Goal "$L $op faster than the bare AesGcm loop with 2 threads, same run" $null 'bare loop missing or not measured' }
}
foreach ($op in 'encrypt', 'decrypt') {
    $pl = $ModulePeaks["$L $op"]; $pm = $ModulePeaks["$M $op"]
    if ($pl -and $pm) { Add-Goal "peak working set, $L vs $M $op, differ < 16 MiB" ([Math]::Abs($pl - $pm) -lt 16) ('{0:0.0} vs {1:0.0} MiB: {2:+0.0;-0.0} MiB' -f $pl, $pm, ($pl - $pm)) }
    else { Add-Goal "peak working set, $L vs $M $op, differ < 16 MiB" $null 'not measured' }
}
foreach ($op in 'encrypt', 'decrypt') {
    $t = Get-Med 'EnvelopeKms' $F $op; $age = Get-Med 'age, shell loop (one process per file)' $F $op
    if ($t -and $age) { Add-Goal "$F $op < 1/4 of age's shell loop" ($t -lt $age / 4) ('{0:0.000} s vs age loop {1:0.000} s ({2:0.0}x faster)' -f $t, $age, ($age / $t)) }
    else { Add-Goal "$F $op < 1/4 of age's shell loop" $null 'age missing or not measured' }
    $aws = @('AWS Encryption SDK JS, one process (unsigned, 64 KiB frames)', 'AWS Encryption SDK JS, one process (default suite)' | ForEach-Object { Get-Med $_ $F $op } | Where-Object { $_ })
    if ($t -and $aws) { $best = ($aws | Measure-Object -Minimum).Minimum; Add-Goal "$F $op faster than the AWS SDK in one process" ($t -lt $best) ('{0:0.000} s vs AWS SDK best {1:0.000} s' -f $t, $best) }
    else { Add-Goal "$F $op faster than the AWS SDK in one process" $null 'AWS SDK missing or not measured' }
}
$uL = Get-Med 'EnvelopeKms' $L 'update (-AddKeyId)'; $uM = Get-Med 'EnvelopeKms' $M 'update (-AddKeyId)'
if ($uL -and $uM) {
    Add-Goal "Update-EnvelopeFileKey -AddKeyId: $L costs what $M does (header only)" ($uL -le [Math]::Max(2 * $uM, $uM + 0.05)) ('{0:0.000} s vs {1:0.000} s' -f $uL, $uM)
}
else { Add-Goal "Update-EnvelopeFileKey -AddKeyId: $L costs what $M does (header only)" $null 'not measured' }
$plain = @($BatchCalls | Where-Object Latency -EQ 0)
if ($plain) {
    $g = @($plain.GenerateDataKey | Sort-Object -Unique); $d = @($plain.Decrypt | Sort-Object -Unique)
    Add-Goal "exactly one GenerateDataKey for the $F batch" (($g.Count -eq 1) -and $g[0] -eq 1) "GenerateDataKey per batch over $($plain.Count) run(s): $($g -join ', ')"
    Add-Goal "exactly one Decrypt for the $F batch" (($d.Count -eq 1) -and $d[0] -eq 1) "Decrypt per batch over $($plain.Count) run(s): $($d -join ', ')"
}
else { Add-Goal "exactly one GenerateDataKey for the $F batch" $null 'not measured' }
foreach ($op in 'encrypt', 'decrypt') {
    $t = Get-Med 'EnvelopeKms' $F $op; $slow = Get-Med 'EnvelopeKms (KMS +50 ms latency)' $F $op
    if ($t -and $slow) { Add-Goal "50 ms KMS latency slows the $F $op < 10%" ($slow -lt $t * 1.10) ('{0:0.000} s vs {1:0.000} s: {2:+0;-0;0}%' -f $slow, $t, [Math]::Round(($slow / $t - 1) * 100)) }
    else { Add-Goal "50 ms KMS latency slows the $F $op < 10%" $null 'not measured' }
}

function Get-Version([string] $Exe, [string[]] $ArgumentList) {
    if (-not (Test-Command $Exe)) { return 'missing' }
    try { ((& $Exe @ArgumentList 2>&1 | Select-Object -First 1) -as [string]).Trim() } catch { 'unknown' }
}
$cpuModel = (Get-Content /proc/cpuinfo -ErrorAction SilentlyContinue | Where-Object { $_ -match '^model name' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
$memKb = (Get-Content /proc/meminfo -ErrorAction SilentlyContinue | Where-Object { $_ -match '^MemTotal' }) -replace '\D', ''
$Machine = [ordered]@{
    Date = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
    Nproc = (& nproc).Trim()
    Cpu = $cpuModel
    MemoryGiB = $memKb ? [Math]::Round([double] $memKb / 1MB, 1) : $null
    Filesystem = $Filesystem
    Form = $Short ? "short ($Runs run)" : "long (median of $Runs runs; $(3 * $Runs) for cp, the module and the bare loop with two threads at $($Inputs.Large.Label), and for cp -r and the module's $($Sizes.Files.ToString('N0'))-file rows)"
    Dotnet = Get-Version dotnet @('--version')
    Pwsh = $PSVersionTable.PSVersion.ToString()
    EnvelopeKms = $ModuleVersion
    Age = Get-Version age @('--version')
    Node = Get-Version node @('--version')
    AwsSdk = $Have.awsSdk ? (Get-Content (Join-Path $NodeDir 'node_modules/@aws-crypto/client-node/package.json') -Raw | ConvertFrom-Json).version : 'missing'
    Pycryptodome = $Have.pycrypto ? ((& $Python -c 'import Cryptodome; print(Cryptodome.__version__)') -as [string]) : 'missing'
    OpenSsl = Get-Version openssl @('version')
    Hyperfine = Get-Version hyperfine @('--version')
    LoadAverageAtEnd = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -as [string]
}

# CPU of the module's timed file runs: what the two cores had to do, and how much of it was pwsh's own JIT.
$CpuRows = @(foreach ($k in $ModuleCpu.Keys) {
        $size, $op = $k.Split('|'); $list = $ModuleCpu[$k]
        $wall = Get-Median $Samples["EnvelopeKms|$k"]; $cpu = Get-Median @($list | ForEach-Object { $_.Cpu })
        $jits = @($list | Where-Object { $null -ne $_.Jit } | ForEach-Object { $_.Jit })
        [pscustomobject][ordered]@{ Size = $size; Operation = $op; Runs = $list.Count; MedianSeconds = [Math]::Round($wall, 3)
            MedianCpuSeconds = [Math]::Round($cpu, 3); MedianJitCpuSeconds = $jits.Count ? [Math]::Round((Get-Median $jits), 3) : $null
            CpuSamples = @($list | ForEach-Object { [Math]::Round($_.Cpu, 3) }); JitCpuSamples = @($jits | ForEach-Object { [Math]::Round($_, 3) }) }
    }) | Sort-Object @{ e = { $sizeOrder[$_.Size] } }, Operation

$Summary = [ordered]@{
    Machine = $Machine
    ImportConnectSeconds = [Math]::Round($ImportConnectSeconds, 3)
    OpenSslMBps = $OpenSsl
    ModulePeakMiB = $ModulePeaks
    ModuleCpu = $CpuRows
    KmsCalls = [ordered]@{ Batch = $FilesLabel; Runs = @($BatchCalls); LargeBatch = $LargeBatch }
    Rows = $Table
    Goals = @($Goals)
    Notes = @($Notes)
}

function Format-Cell($v, [string] $fmt) { if ($null -eq $v) { '' } else { $fmt -f $v } }
$md = [System.Text.StringBuilder]::new()
$null = $md.AppendLine("# EnvelopeKms benchmark — $($Machine.Date)").AppendLine()
$null = $md.AppendLine("Machine: $($Machine.Nproc) cores ($($Machine.Cpu)), $($Machine.MemoryGiB) GiB, inputs on $($Machine.Filesystem); $($Machine.Form). ")
$null = $md.AppendLine("dotnet $($Machine.Dotnet), pwsh $($Machine.Pwsh), EnvelopeKms $($Machine.EnvelopeKms), age $($Machine.Age -replace '^v', ''), node $($Machine.Node) (AWS SDK $($Machine.AwsSdk)), pycryptodome $($Machine.Pycryptodome), $($Machine.OpenSsl), $($Machine.Hyperfine). Load average at the end: $($Machine.LoadAverageAtEnd).").AppendLine()
$null = $md.AppendLine(('Module: Import-Module + Connect-Kms once, {0:0.000} s (not in the rows below; every row includes its KMS calls).' -f $ImportConnectSeconds)).AppendLine()
$null = $md.AppendLine('| tool | size | operation | median s | × cp | peak MiB |').AppendLine('|---|---|---|---:|---:|---:|')
foreach ($r in $Table) { $null = $md.AppendLine("| $($r.Tool) | $($r.Size) | $($r.Operation) | $(Format-Cell $r.MedianSeconds '{0:0.000}') | $(Format-Cell $r.RatioToCp '{0:0.00}') | $(Format-Cell $r.PeakMiB '{0:0}') |") }
$null = $md.AppendLine().AppendLine('× cp: the median divided by the median of `cp` (`cp -r` for the small files) of the same input in the same run. Peak MiB: peak working set of a fresh `dotnet pwsh` that imports the module, connects and processes one file (EnvelopeKms), or max RSS from `/usr/bin/time` (peers). The AWS SDK rows time the work inside one Node process (start-up with the SDK loaded excluded, as pwsh start-up is for the module); age and cp are whole processes. openssl rows are the file size divided by `openssl speed` throughput: a one-core, in-memory limit, not a file-to-file run.').AppendLine()
$null = $md.AppendLine('## Peak working set of the module').AppendLine().AppendLine('| measurement | peak MiB |').AppendLine('|---|---:|')
foreach ($e in $ModulePeaks.GetEnumerator()) { $null = $md.AppendLine(('| {0} | {1:0.0} |' -f $e.Key, $e.Value)) }
if ($CpuRows) {
    $null = $md.AppendLine().AppendLine("## CPU of the module's timed file runs").AppendLine()
    $null = $md.AppendLine('| size | operation | runs | median s | median CPU s (all threads) | of which pwsh tiered JIT | cores busy |').AppendLine('|---|---|---:|---:|---:|---:|---:|')
    foreach ($r in $CpuRows) { $null = $md.AppendLine(('| {0} | {1} | {2} | {3:0.000} | {4:0.000} | {5} | {6:0.00} |' -f $r.Size, $r.Operation, $r.Runs, $r.MedianSeconds, $r.MedianCpuSeconds, (Format-Cell $r.MedianJitCpuSeconds '{0:0.000}'), ($r.MedianSeconds ? $r.MedianCpuSeconds / $r.MedianSeconds : 0))) }
    $null = $md.AppendLine().AppendLine('CPU: user + system time of this pwsh over each timed run (every thread: the pipeline, the frame workers, and whatever else the process ran meanwhile). Tiered JIT: the CPU of the runtime''s background thread that recompiles hot methods (mostly the PowerShell engine''s own) while a young pwsh warms up; it competes with the frame workers for the two cores.')
}
$null = $md.AppendLine().AppendLine("## KMS calls ($FilesLabel batch)").AppendLine().AppendLine('| server | run | GenerateDataKey (encrypt) | Decrypt (decrypt) |').AppendLine('|---|---:|---:|---:|')
$i = 0; foreach ($c in $BatchCalls) { $i++; $null = $md.AppendLine("| $($c.Latency ? '+50 ms latency' : 'plain') | $i | $($c.GenerateDataKey) | $($c.Decrypt) |") }
if ($LargeBatch) {
    $null = $md.AppendLine().AppendLine(('Large batch: {0:N0} files, encrypt {1:0.00} s with {2} GenerateDataKey, decrypt {3:0.00} s with {4} Decrypt: {5:0.##} GenerateDataKey and {6:0.##} Decrypt per 10,000 files (a data key serves up to 20,000 files by default).' -f $LargeBatch.Files, $LargeBatch.EncryptSeconds, $LargeBatch.GenerateDataKey, $LargeBatch.DecryptSeconds, $LargeBatch.Decrypt, $LargeBatch.GenerateDataKeyPer10k, $LargeBatch.DecryptPer10k))
}
$null = $md.AppendLine().AppendLine('## Goals').AppendLine().AppendLine('| goal | result | evidence |').AppendLine('|---|---|---|')
foreach ($g in $Goals) { $null = $md.AppendLine("| $($g.Goal) | $($g.Result) | $($g.Evidence) |") }
if ($Notes.Count) { $null = $md.AppendLine().AppendLine('## Notes').AppendLine(); foreach ($n in $Notes) { $null = $md.AppendLine("- $n") } }
if ($Short) { $null = $md.AppendLine().AppendLine('Short form: tiny inputs and one run; the figures only show that the benchmark works, not how fast anything is.') }

$mdPath = Join-Path $OutPath 'results.md'; $jsonPath = Join-Path $OutPath 'results.json'
Set-Content -LiteralPath $mdPath -Value $md.ToString() -Encoding utf8NoBOM
Set-Content -LiteralPath $jsonPath -Value ($Summary | ConvertTo-Json -Depth 8) -Encoding utf8NoBOM

Write-Step 'Results'
$Table | Format-Table Tool, Size, Operation, Runs, @{ n = 'Median s'; e = { '{0:0.000}' -f $_.MedianSeconds }; a = 'right' }, @{ n = '× cp'; e = { Format-Cell $_.RatioToCp '{0:0.00}' }; a = 'right' }, @{ n = 'Peak MiB'; e = { Format-Cell $_.PeakMiB '{0:0}' }; a = 'right' } -AutoSize | Out-String -Width 220 | Write-Host
$Goals | Format-Table -AutoSize -Wrap | Out-String -Width 220 | Write-Host
Write-Host "   $mdPath"
Write-Host "   $jsonPath"
