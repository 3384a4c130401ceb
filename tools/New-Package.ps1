<#
.SYNOPSIS
    Packs the staged module into the .nupkg a PowerShell Gallery publish uploads (build.ps1 -Task Package).
.DESCRIPTION
    Checks what the Gallery checks first (a valid manifest with version, author and description, the explicit
    export list, help for every cmdlet), then packs with Compress-PSResource (PSResourceGet 1.1, bundled with
    PowerShell 7.5 and later: build.ps1 runs this in the repository's pwsh 7.6, the dotnet local tool; PowerShell 7.4
    bundles PSResourceGet 1.0.x, which has no Compress-PSResource), which writes the same package Publish-PSResource
    would upload. Publishing itself is
    `Publish-PSResource -NupkgPath <file> -Repository PSGallery -ApiKey <key>` on a release.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutputPath
)
$ErrorActionPreference = 'Stop'

$manifest = Test-ModuleManifest -Path (Join-Path $ModulePath 'EnvelopeKms.psd1')
foreach ($field in 'Version', 'Author', 'Description') {
    if (-not $manifest.$field) { throw "The manifest has no $field; the Gallery rejects it." }
}
if (-not $manifest.ExportedCmdlets.Count) { throw 'The manifest exports no cmdlet.' }
$help = Get-ChildItem -Path $ModulePath -Recurse -Filter 'EnvelopeKms.dll-Help.xml'
if (-not $help) { Write-Warning 'No en-US/EnvelopeKms.dll-Help.xml in the staged module: Get-Help would show only syntax.' }

if (-not (Get-Command Compress-PSResource -ErrorAction SilentlyContinue)) {
    throw "Compress-PSResource (PSResourceGet 1.1, bundled with PowerShell 7.5+) is not available in PowerShell $($PSVersionTable.PSVersion): pack with the repository's pwsh, 'dotnet tool restore; dotnet pwsh ./build.ps1 -Task Package'."
}
Get-ChildItem -Path $OutputPath -Filter 'EnvelopeKms.*.nupkg' -ErrorAction SilentlyContinue | Remove-Item
Compress-PSResource -Path $ModulePath -DestinationPath $OutputPath
$package = Get-ChildItem -Path $OutputPath -Filter "EnvelopeKms.$($manifest.Version).nupkg"
if (-not $package) { throw 'Compress-PSResource did not produce the package.' }
Write-Host "   packed $($package.FullName) ($([math]::Round($package.Length / 1KB)) KiB)"
