# Shared by the Pester files: the staged module and a local KMS server of the test's own.

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ModulePath = if ($env:ENVELOPEKMS_MODULE) { $env:ENVELOPEKMS_MODULE } else { Join-Path $RepoRoot 'out/EnvelopeKms' }
$script:ServerDll = if ($env:ENVELOPEKMS_SERVER) { $env:ENVELOPEKMS_SERVER } else { Join-Path $RepoRoot 'out/server/EnvelopeKms.Server.dll' }

function Start-TestKmsServer {
    <#
    Starts the local KMS server on a free loopback port; returns an object with Process, Endpoint, DataDir, Region.
    -Region is the region the server holds keys in (its ARNs; it refuses ARNs of other regions); default cn-hangzhou.
    #>
    param([string[]] $ArgumentList = @(), [string] $DataDir, [string] $Region = 'cn-hangzhou')
    if (-not $DataDir) { $DataDir = Join-Path ([IO.Path]::GetTempPath()) ("ekms-kms-" + [guid]::NewGuid().ToString('N')) }
    $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @($script:ServerDll, '--port', '0', '--data-dir', $DataDir, '--exit-on-stdin-close', '--region', $Region) + $ArgumentList) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $process = [Diagnostics.Process]::Start($psi)
    $line = $process.StandardOutput.ReadLine()
    if ($line -notmatch 'listening on (http://\S+)') {
        $err = $process.StandardError.ReadToEnd()
        throw "The local KMS server did not start: $line $err"
    }
    # Keep draining stderr so the server never blocks on a full pipe.
    $null = $process.StandardError.ReadToEndAsync()
    [pscustomobject]@{ Process = $process; Endpoint = $Matches[1]; DataDir = $DataDir; Region = $Region }
}

function Stop-TestKmsServer {
    param($Server)
    if (-not $Server) { return }
    try { $Server.Process.StandardInput.Close() } catch { }
    if (-not $Server.Process.WaitForExit(5000)) { $Server.Process.Kill($true) }
    Remove-Item -LiteralPath $Server.DataDir -Recurse -Force -ErrorAction SilentlyContinue
}

function Get-TestCredential {
    param([string] $Id = 'testid', [string] $Secret = 'testsecret')
    [pscredential]::new($Id, (ConvertTo-SecureString $Secret -AsPlainText -Force))
}

function Invoke-KmsControl {
    <# Calls the server's control endpoint (enabled with --enable-control). #>
    param($Server, [string] $Path, [string] $Method = 'GET', $Body)
    $params = @{ Uri = "$($Server.Endpoint)/__control/$Path"; Method = $Method }
    if ($null -ne $Body) { $params.Body = ($Body | ConvertTo-Json -Compress); $params.ContentType = 'application/json' }
    Invoke-RestMethod @params
}

function Get-TestPwshCommand {
    <#
    The command line of the pwsh running the tests: its executable, then the arguments before pwsh's own. The suite
    runs on several PowerShell versions (build.ps1 -Task Test), so a child pwsh must be this one, never whatever
    `dotnet pwsh` or `pwsh` resolves to: a self-contained pwsh (the 7.4 host) is its own executable; the dotnet local
    tool is dotnet running <PSHOME>/pwsh.dll.
    #>
    $exe = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { , @($exe, [Reflection.Assembly]::GetEntryAssembly().Location) }
    else { , @($exe) }
}

function Start-TestPwsh {
    <# Starts a child pwsh (the same one running the tests) on a script; stdout and stderr are redirected. #>
    param([string] $Script)
    $command = Get-TestPwshCommand
    $psi = [Diagnostics.ProcessStartInfo]::new($command[0])
    foreach ($a in @($command | Select-Object -Last (@($command).Count - 1))) { $psi.ArgumentList.Add($a) }
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($Script))
    foreach ($a in '-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    [Diagnostics.Process]::Start($psi)
}

function Get-EkmsTempFile {
    <# The temp files EnvelopeKms leaves beside a destination when it is killed: .<name>.<32 hex>.ekms-tmp #>
    param([string] $Directory)
    @(Get-ChildItem -LiteralPath $Directory -Force -File -Recurse -Filter '*.ekms-tmp' -ErrorAction SilentlyContinue)
}

function New-RandomFile {
    param([string] $Path, [long] $Length, [Random] $Random = [Random]::new())
    $buffer = [byte[]]::new([Math]::Min([Math]::Max($Length, 1), 1MB))
    $fs = [IO.File]::Create($Path)
    try {
        $left = $Length
        while ($left -gt 0) {
            $Random.NextBytes($buffer)
            $n = [int] [Math]::Min($left, $buffer.Length)
            $fs.Write($buffer, 0, $n)
            $left -= $n
        }
    }
    finally { $fs.Dispose() }
}

function Invoke-PythonSdk {
    <# Runs the independent Encryption SDK implementation (tests/interop/alibaba_sdk.py); throws with its output on a non-zero exit. #>
    param([string[]] $Arguments)
    $out = & '/usr/bin/python3' (Join-Path $RepoRoot 'tests/interop/alibaba_sdk.py') @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "alibaba_sdk.py $($Arguments[0]) exited with ${LASTEXITCODE}: $out" }
    $out
}

function Invoke-NodeKms {
    <# GenerateDataKey / Decrypt with the official Node.js SDK (tests/interop/datakey-crossclient.mjs) against a local server: one JSON object. #>
    param($Server, [string[]] $Arguments)
    $out = & node (Join-Path $RepoRoot 'tests/interop/datakey-crossclient.mjs') @Arguments --endpoint $Server.Endpoint 2>&1
    if ($LASTEXITCODE -ne 0) { throw "datakey-crossclient.mjs $($Arguments[0]) exited with ${LASTEXITCODE}: $out" }
    $out | ConvertFrom-Json
}
