<#
.SYNOPSIS
    The whole envelope flow on the local KMS server, as a user would run it (build.ps1 -Task Demo).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $ServerPath,
    [string] $WorkPath = (Join-Path (Split-Path $ModulePath) 'demo')
)
$ErrorActionPreference = 'Stop'

function Show([string] $Text) { Write-Host "`n> $Text" -ForegroundColor Green }
# Redirected output is 80 columns wide by default; paths need more.
function Out-Wide { param([Parameter(ValueFromPipeline)] $InputObject) end { $input | Out-String -Width 200 | Write-Host } }

if (Test-Path $WorkPath) { Remove-Item $WorkPath -Recurse -Force }
$null = New-Item -ItemType Directory -Path $WorkPath
$dataDir = Join-Path $WorkPath 'kms-data'

Write-Host '== Starting the local KMS server (development and tests only; not for production secrets)' -ForegroundColor Cyan
$psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
foreach ($a in $ServerPath, '--port', '0', '--data-dir', $dataDir, '--exit-on-stdin-close') { $psi.ArgumentList.Add($a) }
$psi.RedirectStandardOutput = $true; $psi.RedirectStandardInput = $true; $psi.UseShellExecute = $false
$server = [Diagnostics.Process]::Start($psi)
try {
    $line = $server.StandardOutput.ReadLine()
    if ($line -notmatch 'listening on (http://\S+)') { throw "The local KMS server did not start: $line" }
    $endpoint = $Matches[1]
    Write-Host "   $line"

    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    Push-Location $WorkPath
    try {
        Show "Connect-Kms -Endpoint $endpoint -Credential testid  (the server's development AccessKey)"
        EnvelopeKms\Connect-Kms -Endpoint $endpoint -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))

        Show "New-KmsKey -Description 'Apollo work key' | New-KmsAlias -AliasName alias/Apollo/WorkKey"
        EnvelopeKms\New-KmsKey -Description 'Apollo work key' | EnvelopeKms\New-KmsAlias -AliasName alias/Apollo/WorkKey | Format-Table -AutoSize | Out-Wide

        Show 'Writing sample files to ./data'
        $null = New-Item -ItemType Directory -Path data, data/reports, 'data/q3 archive'
        $rows = @('date,region,product,units,revenue') + (1..500 | ForEach-Object { '2026-{0:00}-{1:00},{2},{3},{4},{5}' -f (1 + $_ % 12), (1 + $_ % 28), ('north', 'south', 'east', 'west')[$_ % 4], "SKU-$(1000 + $_ % 37)", ($_ * 7 % 90), ($_ * 131 % 9000) })
        Set-Content -Path data/sales.csv -Value $rows
        Set-Content -Path data/reports/summary.md -Value "# Q3 summary`nRevenue up 12%."
        Set-Content -LiteralPath 'data/q3 archive/customers [eu].json' -Value '[{"id":1,"name":"Zoë"}]'
        $bytes = [byte[]]::new(3MB); [Random]::new(7).NextBytes($bytes); [IO.File]::WriteAllBytes((Join-Path $WorkPath 'data/reports/scan.bin'), $bytes)
        $before = Get-ChildItem data -Recurse -File | ForEach-Object { [pscustomobject]@{ Path = $_.FullName; Hash = (Get-FileHash -LiteralPath $_.FullName).Hash } }
        Get-ChildItem data -Recurse -File | Format-Table Length, FullName -AutoSize | Out-Wide

        Show "Get-ChildItem ./data -Recurse -File | Protect-EnvelopeFile -KeyId alias/Apollo/WorkKey -EncryptionContext @{ project = 'Apollo' } -RemoveSource -Confirm:`$false -PassThru"
        Get-ChildItem ./data -Recurse -File | EnvelopeKms\Protect-EnvelopeFile -KeyId alias/Apollo/WorkKey -EncryptionContext @{ project = 'Apollo' } -RemoveSource -Confirm:$false -PassThru | Format-Table -AutoSize | Out-Wide

        Show 'Get-ChildItem ./data -Recurse -Filter *.ekms | Get-EnvelopeFileInfo   (no KMS call)'
        Get-ChildItem ./data -Recurse -Filter *.ekms | EnvelopeKms\Get-EnvelopeFileInfo | Format-Table -AutoSize | Out-Wide
        EnvelopeKms\Get-EnvelopeFileInfo -LiteralPath data/sales.csv.ekms | Format-List | Out-Wide

        Show "Get-ChildItem ./data -Recurse -Filter *.ekms | Unprotect-EnvelopeFile -EncryptionContext @{ project = 'Apollo' } -PassThru"
        Get-ChildItem ./data -Recurse -Filter *.ekms | EnvelopeKms\Unprotect-EnvelopeFile -EncryptionContext @{ project = 'Apollo' } -PassThru | Format-Table -AutoSize | Out-Wide

        Show 'Checking every file against its original hash'
        $bad = 0
        foreach ($file in $before) {
            $ok = (Get-FileHash -LiteralPath $file.Path).Hash -eq $file.Hash
            if (-not $ok) { $bad++ }
            Write-Host ('   {0}  {1}' -f ($ok ? 'OK      ' : 'MISMATCH'), $file.Path)
        }
        if ($bad) { throw "$bad file(s) did not round-trip." }
        Write-Host "`nDemo complete: $($before.Count) files encrypted with alias/Apollo/WorkKey and decrypted byte for byte." -ForegroundColor Cyan
    }
    finally {
        Pop-Location
        EnvelopeKms\Disconnect-Kms -ErrorAction SilentlyContinue
    }
}
finally {
    $server.StandardInput.Close()
    if (-not $server.WaitForExit(5000)) { $server.Kill($true) }
    Write-Host '== Local KMS server stopped' -ForegroundColor Cyan
}
