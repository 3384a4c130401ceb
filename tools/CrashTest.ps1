#Requires -Version 7.4
<#
.SYNOPSIS
    Kills (SIGKILL) a pwsh running Protect-/Unprotect-EnvelopeFile at random points and checks what is left on disk.

.DESCRIPTION
    Each iteration picks a scenario (one large file or a batch of files; encrypt, with or without -RemoveSource, or
    decrypt), starts a child pwsh that runs it against a local KMS server, and kills it after a random delay drawn
    from [0, the scenario's measured duration]. Then it checks the promises of docs/reliability.md:
      - every destination either does not exist or is complete and valid (decrypts to the original bytes);
      - every source is intact; a source removed by -RemoveSource has a valid output;
      - leftover temp files have the recognisable name .<name>.<32 hex>.ekms-tmp;
      - the next run into the directory warns once, listing them, and finishes the job;
      - the documented command removes them.
    Returns a summary object; Failures lists every broken promise (empty when all held).
    Used by tests/pester/Reliability.Crash.Tests.ps1 (short form) and `build.ps1 -Task Crash` (50 iterations).
#>
[CmdletBinding()]
param(
    [int] $Iterations = 5,
    [int] $Seed = (Get-Random),
    [string] $ModulePath,
    [string] $ServerPath,
    # An endpoint already running (the Pester file passes its own); otherwise a server is started and stopped here.
    [string] $Endpoint,
    [string] $KeyId,
    [string] $WorkRoot = (Join-Path ([IO.Path]::GetTempPath()) ("ekms-crash-" + [guid]::NewGuid().ToString('N')))
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Off # build.ps1 runs with strict mode; this script tolerates absent values on purpose
if ($ModulePath) { $env:ENVELOPEKMS_MODULE = $ModulePath }
if ($ServerPath) { $env:ENVELOPEKMS_SERVER = $ServerPath }
. (Join-Path $PSScriptRoot '../tests/pester/Common.ps1')
Import-Module (Join-Path $script:ModulePath 'EnvelopeKms.psd1')

$ownServer = $null
if (-not $Endpoint) {
    $ownServer = Start-TestKmsServer
    $Endpoint = $ownServer.Endpoint
}
$credential = Get-TestCredential
if (-not $KeyId) { $KeyId = (EnvelopeKms\New-KmsKey -Endpoint $Endpoint -Credential $credential -Description 'crash test').KeyId }
$kms = @{ Endpoint = $Endpoint; Credential = $credential }

$random = [Random]::new($Seed)
$scenarios = 'EncryptLarge', 'EncryptLargeRemoveSource', 'EncryptBatch', 'EncryptBatchRemoveSource', 'DecryptLarge', 'DecryptBatch'
$estimateMs = @{}
foreach ($s in $scenarios) { $estimateMs[$s] = 400 } # replaced by the measured duration once a run finishes first
$failures = [Collections.Generic.List[string]]::new()
$stats = [ordered]@{ Iterations = 0; Killed = 0; KilledBeforeAnyOutput = 0; FinishedFirst = 0; LeftoverTempFiles = 0; WarningsChecked = 0; OutputsChecked = 0; RemovedSources = 0 }
$started = [Diagnostics.Stopwatch]::StartNew()
$null = New-Item -ItemType Directory -Path $WorkRoot -Force

function Get-Sha { param([string] $Path) (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash }

try {
    for ($i = 1; $i -le $Iterations; $i++) {
        $scenario = $scenarios[$random.Next($scenarios.Count)]
        $dir = Join-Path $WorkRoot "it$i"
        $null = New-Item -ItemType Directory -Path $dir
        $large = $scenario -like '*Large*'
        $decrypt = $scenario -like 'Decrypt*'
        $removeSource = $scenario -like '*RemoveSource'
        # Plaintexts and their hashes.
        $names = if ($large) { @('large.bin') } else { 1..60 | ForEach-Object { 'f{0:000}.dat' -f $_ } }
        $hash = @{}
        foreach ($n in $names) {
            $len = if ($large) { 24MB + $random.Next(1MB) } else { 8KB + $random.Next(200KB) }
            New-RandomFile -Path (Join-Path $dir $n) -Length $len -Random $random
            $hash[$n] = Get-Sha (Join-Path $dir $n)
        }
        $ekmsHash = @{}
        if ($decrypt) {
            Get-ChildItem -LiteralPath $dir -File | EnvelopeKms\Protect-EnvelopeFile -KeyId $KeyId -DataKeyPerFile @kms
            foreach ($n in $names) { Remove-Item -LiteralPath (Join-Path $dir $n); $ekmsHash[$n] = Get-Sha (Join-Path $dir "$n.ekms") }
        }

        $q = "'" + ($dir -replace "'", "''") + "'"
        $op = switch -Wildcard ($scenario) {
            'EncryptLarge*' { "EnvelopeKms\Protect-EnvelopeFile -LiteralPath (Join-Path $q 'large.bin') -KeyId '$KeyId'" }
            'EncryptBatch*' { "Get-ChildItem -LiteralPath $q -File | EnvelopeKms\Protect-EnvelopeFile -KeyId '$KeyId' -DataKeyPerFile" }
            'DecryptLarge' { "EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath (Join-Path $q 'large.bin.ekms')" }
            'DecryptBatch' { "Get-ChildItem -LiteralPath $q -Filter *.ekms | EnvelopeKms\Unprotect-EnvelopeFile" }
        }
        if ($removeSource) { $op += ' -RemoveSource -Force' }
        $child = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$(Join-Path $script:ModulePath 'EnvelopeKms.psd1')'
EnvelopeKms\Connect-Kms -Endpoint '$Endpoint' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))
# Warm up (assemblies, JIT, the KMS connection) so that the kill window covers the real work.
`$w = Join-Path ([IO.Path]::GetTempPath()) ('ekms-warm-' + [guid]::NewGuid().ToString('N'))
Set-Content -LiteralPath `$w -Value warm
EnvelopeKms\Protect-EnvelopeFile -LiteralPath `$w -KeyId '$KeyId'
EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath "`$w.ekms" -Destination "`$w.out"
Remove-Item -LiteralPath `$w, "`$w.ekms", "`$w.out"
[Console]::Out.WriteLine('READY'); [Console]::Out.Flush()
$op
[Console]::Out.WriteLine('DONE')
"@
        $p = Start-TestPwsh -Script $child
        $null = $p.StandardError.ReadToEndAsync()
        $ready = $p.StandardOutput.ReadLine()
        if ($ready -ne 'READY') { $failures.Add("iteration $i ($scenario): child did not start: $ready"); continue }
        $delay = $random.Next([int] $estimateMs[$scenario] + 1)
        $clock = [Diagnostics.Stopwatch]::StartNew()
        if ($p.WaitForExit($delay)) {
            $stats.FinishedFirst++
            $estimateMs[$scenario] = [Math]::Max(50, [int] $clock.ElapsedMilliseconds)
        }
        else {
            $p.Kill() # SIGKILL: no finally blocks, no cleanup
            $p.WaitForExit()
            $stats.Killed++
            # Killed before it wrote anything: aim later next time.
            $produced = @(Get-ChildItem -LiteralPath $dir -Force -File | Where-Object { if ($decrypt) { $_.Name -notlike '*.ekms' } else { $_.Name -like '*.ekms*' } })
            if (-not $produced) { $stats.KilledBeforeAnyOutput++; $estimateMs[$scenario] = [Math]::Min(30000, 2 * $estimateMs[$scenario]) }
        }
        $stats.Iterations++
        $tag = "iteration $i ($scenario, kill point $delay ms)"

        # 1. Leftover temp files are recognisable.
        $temps = @(Get-EkmsTempFile $dir)
        $stats.LeftoverTempFiles += $temps.Count
        foreach ($t in $temps) {
            if ($t.Name -notmatch '^\..+\.[0-9a-f]{32}\.ekms-tmp$') { $failures.Add("$tag`: unrecognisable temp file $($t.Name)") }
        }

        # 2. Sources intact; outputs absent or complete and valid; nothing removed before its output verified.
        $check = Join-Path $dir '.check'
        $null = New-Item -ItemType Directory -Path $check
        foreach ($n in $names) {
            $plain = Join-Path $dir $n
            $ekms = "$plain.ekms"
            if ($decrypt) {
                if (-not (Test-Path -LiteralPath $ekms)) { $failures.Add("$tag`: source $n.ekms is gone") }
                elseif ((Get-Sha $ekms) -ne $ekmsHash[$n]) { $failures.Add("$tag`: source $n.ekms changed") }
                if (Test-Path -LiteralPath $plain) {
                    $stats.OutputsChecked++
                    if ((Get-Sha $plain) -ne $hash[$n]) { $failures.Add("$tag`: output $n exists but is not the original") }
                }
            }
            else {
                $srcPresent = Test-Path -LiteralPath $plain
                if ($srcPresent -and (Get-Sha $plain) -ne $hash[$n]) { $failures.Add("$tag`: source $n changed") }
                if (-not $srcPresent) {
                    $stats.RemovedSources++
                    if (-not $removeSource) { $failures.Add("$tag`: source $n vanished without -RemoveSource") }
                    if (-not (Test-Path -LiteralPath $ekms)) { $failures.Add("$tag`: source $n removed but it has no output") }
                }
                if (Test-Path -LiteralPath $ekms) {
                    $stats.OutputsChecked++
                    $out = Join-Path $check $n
                    EnvelopeKms\Unprotect-EnvelopeFile -LiteralPath $ekms -Destination $out @kms -ErrorAction SilentlyContinue -ErrorVariable bad
                    if ($bad -or -not (Test-Path -LiteralPath $out) -or (Get-Sha $out) -ne $hash[$n]) {
                        $failures.Add("$tag`: output $n.ekms exists but is not complete and valid: $bad")
                    }
                }
            }
        }
        Remove-Item -LiteralPath $check -Recurse -Force

        # 3. The next run into the directory warns once, listing the leftovers, and completes the job.
        $warnings = @()
        if ($decrypt) {
            $todo = @(Get-ChildItem -LiteralPath $dir -Filter *.ekms | Where-Object { -not (Test-Path -LiteralPath ($_.FullName -replace '\.ekms$', '')) })
            if ($todo) { $todo | EnvelopeKms\Unprotect-EnvelopeFile @kms -WarningVariable warnings -WarningAction SilentlyContinue }
        }
        else {
            $todo = @(Get-ChildItem -LiteralPath $dir -File -Exclude *.ekms | Where-Object { -not (Test-Path -LiteralPath "$($_.FullName).ekms") })
            $extra = if ($removeSource) { @{ RemoveSource = $true; Force = $true } } else { @{} }
            if ($todo) { $todo | EnvelopeKms\Protect-EnvelopeFile -KeyId $KeyId @kms @extra -WarningVariable warnings -WarningAction SilentlyContinue }
        }
        if ($temps.Count -gt 0) {
            $stats.WarningsChecked++
            $w = @($warnings | Where-Object { "$_" -like '*temp file(s)*' })
            if ($w.Count -ne 1) { $failures.Add("$tag`: expected one warning about $($temps.Count) temp file(s), got $($w.Count): $warnings") }
            elseif (-not ("$($w[0])" -like "*$($temps[0].Name)*")) { $failures.Add("$tag`: the warning does not list $($temps[0].Name): $($w[0])") }
        }
        foreach ($n in $names) {
            $plain = Join-Path $dir $n
            if ($decrypt -or -not $removeSource) {
                if (-not (Test-Path -LiteralPath $plain) -or (Get-Sha $plain) -ne $hash[$n]) { $failures.Add("$tag`: after the next run, $n is not the original") }
            }
            if (-not (Test-Path -LiteralPath "$plain.ekms")) { $failures.Add("$tag`: after the next run, $n.ekms is missing") }
        }

        # 4. The documented command removes the leftovers (here without the age filter: nothing else is running).
        Get-ChildItem -LiteralPath $dir -Force -Filter '*.ekms-tmp' | Remove-Item -Force
        if (@(Get-EkmsTempFile $dir).Count) { $failures.Add("$tag`: temp files survived their removal") }
        Remove-Item -LiteralPath $dir -Recurse -Force
        Write-Verbose "$tag`: $($temps.Count) temp file(s) left, next delay bound $($estimateMs[$scenario]) ms"
    }
}
finally {
    if ($ownServer) { Stop-TestKmsServer $ownServer }
    Remove-Item -LiteralPath $WorkRoot -Recurse -Force -ErrorAction SilentlyContinue
}

[pscustomobject]@{
    Seed              = $Seed
    Iterations        = $stats.Iterations
    Killed            = $stats.Killed
    KilledBeforeAnyOutput = $stats.KilledBeforeAnyOutput
    FinishedFirst     = $stats.FinishedFirst
    LeftoverTempFiles = $stats.LeftoverTempFiles
    WarningsChecked   = $stats.WarningsChecked
    OutputsChecked    = $stats.OutputsChecked
    RemovedSources    = $stats.RemovedSources
    Seconds           = [Math]::Round($started.Elapsed.TotalSeconds, 1)
    Failures          = $failures.ToArray()
}
