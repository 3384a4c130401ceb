#Requires -Version 7.4
# Documentation that runs: every powershell block of README.md, every example of every cmdlet's help (as Get-Help of
# the staged module shows it) and every powershell block of about_EnvelopeKms runs, in order, against two local KMS
# servers (cn-hangzhou, cn-shanghai), and must succeed without writing an error. The examples are found, not listed:
# a new example runs as soon as it is written. Only the examples that cannot run offline are listed, with the reason
# ($NotOffline below), and the list must match the examples that exist.
#
# How an example runs (README.md, "How the examples are tested", says the same for readers):
#  - one PowerShell session per page (README.md, each cmdlet, about_EnvelopeKms) with the staged module, its host
#    answering as a reader would: "Yes" to confirmations, testid / testsecret (the local server's development
#    AccessKey) to Get-Credential, a fixed text to Read-Host;
#  - before each example the session is connected as a reader's would be (Connect-Kms -Region cn-hangzhou, the
#    environment's AccessKey testid) and moved to a fresh folder holding the files the example names ($Fixture);
#  - the aliases the example names exist (in the region of an alias ARN), except those it creates with
#    New-KmsAlias, which do not; the keys it restores with Restore-KmsKey are pending deletion; the envelopes it
#    takes a key from with -RemoveKeyId are wrapped under that key too;
#  - what a reader substitutes is substituted: <port> and https://kms[-vpc].<region>.aliyuncs.com by the local
#    servers (Convert-DocEndpointToLocal), example key ids and key ARNs by real keys, the account of alias ARNs by
#    the local servers' account, the module's name or repository path in Import-Module by the staged module;
#  - variables an example takes as given ($Givens: $blob, a secret protected with the context app=billing) are set.

BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'DocTest.ps1')
    $repo = Join-Path $PSScriptRoot '../..'
    $moduleRoot = if ($env:ENVELOPEKMS_MODULE) { $env:ENVELOPEKMS_MODULE } else { Join-Path $repo 'out/EnvelopeKms' }

    # The examples that cannot run offline, with the reason. Changing this list is a decision.
    $NotOffline = [ordered]@{
        'Connect-Kms: Example 3: A dedicated KMS instance with a private CA' = 'a dedicated KMS instance (kst-….cryptoservice.kms.aliyuncs.com) and the CA of its private certificate exist only in Alibaba Cloud'
    }

    function New-Page([string] $Name, [object[]] $Blocks) {
        $n = 0
        @{
            Page = $Name
            Examples = @(foreach ($block in $Blocks) {
                    $n++
                    @{ Id = $block.Id; Code = $block.Code; First = (($block.Code -split "`n") | Where-Object { $_.Trim() } | Select-Object -First 1) }
                })
        }
    }
    function Get-PowerShellBlock([string] $Path, [string] $Page) {
        $n = 0
        foreach ($block in Get-MarkdownCodeBlock -Path $Path | Where-Object Language -EQ 'powershell') {
            $n++
            @{ Id = "${Page}: block $n (line $($block.Line))"; Code = $block.Text }
        }
    }

    $pages = [Collections.Generic.List[object]]::new()
    $pages.Add((New-Page 'README.md' @(Get-PowerShellBlock (Join-Path $repo 'README.md') 'README.md')))
    # The help as shipped: what Get-Help shows, from the staged module's MAML.
    $module = Import-Module (Join-Path $moduleRoot 'EnvelopeKms.psd1') -Force -PassThru
    foreach ($name in $module.ExportedCmdlets.Keys | Sort-Object) {
        $examples = foreach ($example in @((Get-Help -Name $name -Examples).examples.example)) {
            @{ Id = "${name}: $($example.title.Trim('-', ' '))"; Code = [string] $example.code }
        }
        $pages.Add((New-Page $name @($examples)))
    }
    Remove-Module EnvelopeKms -Force
    $pages.Add((New-Page 'about_EnvelopeKms' @(Get-PowerShellBlock (Join-Path $repo 'docs/en-US/about_EnvelopeKms.md') 'about_EnvelopeKms')))

    $AllIds = @($pages | ForEach-Object { $_.Examples } | ForEach-Object { $_.Id })
    foreach ($page in $pages) { $page.Examples = @($page.Examples | Where-Object { -not $NotOffline.Contains($_.Id) }) }
    $script:Pages = @($pages | Where-Object { $_.Examples.Count })
    $script:Exemptions = @{ NotOffline = $NotOffline; AllIds = $AllIds }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'DocTest.ps1')
    $script:Manifest = Join-Path $ModulePath 'EnvelopeKms.psd1'
    Import-Module $Manifest -Force
    $script:Account = '1234567890123456'   # the local server's account, in its ARNs
    $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou
    $script:Shanghai = Start-TestKmsServer -Region cn-shanghai
    $script:Endpoints = [ordered]@{ 'cn-hangzhou' = $Hangzhou.Endpoint; 'cn-shanghai' = $Shanghai.Endpoint }
    $script:Kms = @{
        'cn-hangzhou' = @{ Endpoint = $Hangzhou.Endpoint; Region = 'cn-hangzhou'; Credential = (Get-TestCredential) }
        'cn-shanghai' = @{ Endpoint = $Shanghai.Endpoint; Region = 'cn-shanghai'; Credential = (Get-TestCredential) }
    }
    $script:hz = $Kms['cn-hangzhou']
    $sh = $Kms['cn-shanghai']
    # The key an example's placeholder key id or key ARN stands for, in each region.
    $script:PlaceholderKey = @{
        'cn-hangzhou' = New-KmsKey -Description 'doc examples: the key of key-… placeholders' @hz
        'cn-shanghai' = New-KmsKey -Description 'doc examples: the key of key-… placeholders' @sh
    }

    # The reader's environment: an AccessKey in the environment, and an aliyun profile 'apollo' (both the local
    # server's development AccessKey).
    $script:SavedEnvironment = @{}
    foreach ($name in 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN', 'ALIBABA_CLOUD_PROFILE', 'ALIBABA_CLOUD_CREDENTIALS_FILE', 'ALIBABA_CLOUD_REGION_ID') {
        $SavedEnvironment[$name] = [Environment]::GetEnvironmentVariable($name)
    }
    $credentialsFile = Join-Path $TestDrive 'alibabacloud-credentials'
    Set-Content -LiteralPath $credentialsFile -Value "[apollo]`ntype = access_key`naccess_key_id = testid`naccess_key_secret = testsecret`nregion_id = cn-hangzhou"
    $env:ALIBABA_CLOUD_ACCESS_KEY_ID = 'testid'
    $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = 'testsecret'
    $env:ALIBABA_CLOUD_SECURITY_TOKEN = $null
    $env:ALIBABA_CLOUD_PROFILE = $null
    $env:ALIBABA_CLOUD_REGION_ID = $null
    $env:ALIBABA_CLOUD_CREDENTIALS_FILE = $credentialsFile

    # Variables an example takes as given.
    $script:Givens = @{
        blob = Protect-KmsSecret -KeyId $PlaceholderKey['cn-hangzhou'].KeyId -Bytes ([Text.Encoding]::UTF8.GetBytes('billing password')) -EncryptionContext @{ app = 'billing' } @hz
    }

    # The files the examples name, created in an example's folder when it names them (./name) and does not write
    # them. Folders hold files of the kinds below; a name ending in .ekms is an EKMS envelope (context
    # Project=Apollo), .encrypted a file of the KMS documentation sample's format, in from-java/ and inbox/ (files
    # from elsewhere, to convert) an Encryption SDK message; other files are random bytes.
    $script:Fixture = [ordered]@{
        'data' = 'sales.csv', 'notes.txt', '2024/q1.csv'
        'exports' = 'customers.csv', 'orders.csv'
        'outgoing' = @('budget.xlsx')
        'archive' = '2023-report.pdf.ekms', '2023/ledger.csv.ekms', '2022-notes.txt.encrypted'
        'inbox' = 'invoice.pdf.ekms', 'orders.csv.encrypted'
        'outbox' = @('summary.csv.ekms')
        'legacy' = @('settings.ini.encrypted')
        'from-java/report.bin.ekms' = $null
        'backup[2024].dump.ekms' = $null
        'report.pdf.ekms' = $null
        'db.dump.ekms' = $null
        'download.bin' = $null
        'secrets.txt' = $null
        'hmac.key' = $null
        'db.dump' = $null; 'report.pdf' = $null; 'contract.pdf' = $null; 'notes.txt' = $null; 'report.csv' = $null
        'ledger.csv' = $null; 'export.csv' = $null; 'config.json' = $null
    }

    function New-FixtureFile([string] $Path, [string[]] $KeyIds) {
        $KeyId = $KeyIds[0]   # the formats of other tools carry one key here
        $null = New-Item -ItemType Directory -Path (Split-Path -Parent $Path) -Force
        $name = Split-Path -Leaf $Path
        $plain = Join-Path $TestDrive "plain-$([guid]::NewGuid().ToString('N'))"
        New-RandomFile -Path $plain -Length 3000
        if ($Path -match '[\\/](from-java|inbox)[\\/]') { Protect-EnvelopeFile -LiteralPath $plain -Destination $Path -KeyId $KeyId -Format AlibabaSdk @hz }
        elseif ($name -like '*.encrypted') { Protect-EnvelopeFile -LiteralPath $plain -Destination $Path -KeyId $KeyId -Format Legacy @hz }
        elseif ($name -like '*.ekms' -or $name -eq 'download.bin') { Protect-EnvelopeFile -LiteralPath $plain -Destination $Path -KeyId $KeyIds -EncryptionContext @{ Project = 'Apollo' } @hz }
        elseif ($name -eq 'secrets.txt') {
            $lines = foreach ($secret in 'first', 'second') { Protect-KmsSecret -KeyId $KeyId -Bytes ([Text.Encoding]::UTF8.GetBytes($secret)) @hz }
            Set-Content -LiteralPath $Path -Value $lines
        }
        elseif ($name -eq 'hmac.key') { New-RandomFile -Path $Path -Length 32 }
        else { Copy-Item -LiteralPath $plain -Destination $Path }
        Remove-Item -LiteralPath $plain
    }

    function Test-Mentioned([string] $Code, [string] $Entry) {
        $Code -match ('(?<![\w.])\./' + [regex]::Escape($Entry) + '(?![\w.\[\]-])')
    }

    function New-ExampleFixture([string] $Code, [string] $Directory) {
        # Envelopes under the work key when it exists (examples name it in -AllowedKeyId), else the placeholder key,
        # and (EKMS) also under the keys the example removes from them with -RemoveKeyId.
        $work = Get-KmsAlias -AliasName alias/Apollo/WorkKey @hz -ErrorAction SilentlyContinue
        $keyIds = @($(if ($work) { $work.KeyId } else { $PlaceholderKey['cn-hangzhou'].KeyId })) +
            @([regex]::Matches($Code, '-RemoveKeyId\s+([^\s|]+)') | ForEach-Object { $_.Groups[1].Value -split ',' } | ForEach-Object { $_.Trim('''', '"') })
        foreach ($entry in $Fixture.GetEnumerator()) {
            if (-not (Test-Mentioned $Code $entry.Key)) { continue }
            # What the example writes is not there before it: a -Destination, or X.ekms when it also names X.
            if ($Code -match ('-Destination\s+[''"]?\./' + [regex]::Escape($entry.Key) + '(?![\w.\[\]-])')) { continue }
            if ($entry.Key -like '*.ekms' -and (Test-Mentioned $Code $entry.Key.Substring(0, $entry.Key.Length - 5))) { continue }
            $path = Join-Path $Directory $entry.Key
            if (Test-Path -LiteralPath $path) { continue }
            if ($null -eq $entry.Value) { New-FixtureFile $path $keyIds }
            else { foreach ($file in $entry.Value) { New-FixtureFile (Join-Path $path $file) $keyIds } }
        }
    }

    function Set-ExampleKeys([string] $Code) {
        # The aliases the example names exist, except those it creates.
        $created = @([regex]::Matches($Code, 'New-KmsAlias\s+(?:-AliasName\s+)?[''"]?(alias/[A-Za-z0-9_/-]+)') | ForEach-Object { $_.Groups[1].Value })
        foreach ($m in [regex]::Matches($Code, '(?:acs:kms:(?<region>[a-z0-9-]+):\d+:)?(?<alias>alias/[A-Za-z0-9_/-]*)(?<wildcard>\*)?')) {
            $alias = $m.Groups['alias'].Value
            if ($alias.EndsWith('/')) { continue }   # alias/Apollo/* names no alias of its own
            $server = $Kms[$(if ($m.Groups['region'].Success) { $m.Groups['region'].Value } else { 'cn-hangzhou' })]
            $existing = Get-KmsAlias -AliasName $alias @server -ErrorAction SilentlyContinue
            if ($alias -in $created) {
                if ($existing) { Remove-KmsAlias -AliasName $alias -Confirm:$false @server }
            }
            elseif (-not $existing) { $null = New-KmsKey -Description "doc examples: $alias" @server | New-KmsAlias -AliasName $alias @server }
        }
        # A key the example restores is pending deletion.
        foreach ($m in [regex]::Matches($Code, 'Restore-KmsKey\s+-KeyId\s+([^\s|]+)')) {
            $key = Get-KmsKey -KeyId $m.Groups[1].Value @hz
            if ($key.KeyState -ne 'PendingDeletion') { Remove-KmsKey -KeyId $key.KeyId -PendingWindowInDays 7 -Confirm:$false @hz }
        }
    }

    function Convert-Example([string] $Code) {
        $Code = $Code.Replace('http://127.0.0.1:<port>', $Hangzhou.Endpoint)
        $Code = [regex]::Replace($Code, 'acs:kms:(?<region>[a-z0-9-]+):\d+:key/key-[\w-]+', { param($m) $PlaceholderKey[$m.Groups['region'].Value].Arn })
        $Code = [regex]::Replace($Code, 'acs:kms:(?<region>[a-z0-9-]+):\d+:alias/', { param($m) "acs:kms:$($m.Groups['region'].Value):${Account}:alias/" })
        $Code = [regex]::Replace($Code, '(?<![\w/:-])key-[0-9a-z]+(?![\w-])', $PlaceholderKey['cn-hangzhou'].KeyId)
        $quoted = "'" + $Manifest.Replace("'", "''") + "'"
        $Code = $Code.Replace('./out/EnvelopeKms/EnvelopeKms.psd1', $quoted)
        $Code = [regex]::Replace($Code, 'Import-Module\s+EnvelopeKms\b', "Import-Module $quoted")
        Convert-DocEndpointToLocal -Text $Code -Endpoints $Endpoints
    }

    $script:Connect = "Connect-Kms -Region cn-hangzhou -RegionEndpoint @{ 'cn-hangzhou' = '$($Hangzhou.Endpoint)'; 'cn-shanghai' = '$($Shanghai.Endpoint)' }"
}

AfterAll {
    foreach ($entry in $SavedEnvironment.GetEnumerator()) { [Environment]::SetEnvironmentVariable($entry.Key, $entry.Value) }
    Remove-Module EnvelopeKms -Force -ErrorAction SilentlyContinue
    Stop-TestKmsServer $Hangzhou
    Stop-TestKmsServer $Shanghai
}

Describe 'Examples that cannot run offline' -ForEach @($Exemptions) {
    It 'are exactly the listed ones, each with its reason, and each still exists' {
        # A listed example that was renamed or removed must leave the list; a new one that needs the cloud joins it.
        @($NotOffline.Keys | Where-Object { $_ -notin $AllIds }) | Should -BeNullOrEmpty -Because 'every listed example must exist'
        @($NotOffline.Values | Where-Object { -not "$_".Trim() }) | Should -BeNullOrEmpty
        @($NotOffline.Keys) | Should -Be @('Connect-Kms: Example 3: A dedicated KMS instance with a private CA')
    }

    It 'leaves many examples to run (README and help)' {
        $AllIds.Count | Should -BeGreaterThan 60
        @($AllIds | Where-Object { $_ -like 'README.md:*' }).Count | Should -BeGreaterThan 8
    }
}

Describe '<Page>' -ForEach $Pages {
    BeforeAll {
        $pageRoot = Join-Path $TestDrive ($Page -replace '[^\w.-]', '_')
        $null = New-Item -ItemType Directory -Path $pageRoot
        $session = New-DocSession -ModuleManifest $Manifest -WorkingDirectory $pageRoot
        foreach ($given in $Givens.GetEnumerator()) { $session.Runspace.SessionStateProxy.SetVariable($given.Key, $given.Value) }
        $script:ExampleNumber = 0
    }
    AfterAll { Remove-DocSession $session }

    It '<Id> runs: <First>' -ForEach $Examples {
        $script:ExampleNumber++
        $folder = Join-Path $pageRoot "example-$ExampleNumber"
        $null = New-Item -ItemType Directory -Path $folder
        $script = Convert-Example $Code
        Set-ExampleKeys $script
        New-ExampleFixture $script $folder
        $null = Invoke-DocSession $session "Set-Location -LiteralPath '$($folder.Replace("'", "''"))'; $Connect"
        $transcript = $session.ReaderHost.ReaderUI.Transcript
        $null = $transcript.Clear()
        try { $null = Invoke-DocSession $session $script }
        catch { throw "$($_.Exception.Message)`n--- as run:`n$script`n--- host:`n$transcript" }
    }
}
