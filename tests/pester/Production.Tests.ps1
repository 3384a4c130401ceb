#Requires -Version 7.4
# The doc test of docs/production.md: every powershell block runs, in order, in one PowerShell session, against two
# local KMS servers (cn-hangzhou, cn-shanghai) that enforce the page's example policies. The markers and the
# substitutions are described at the end of the page ("How this page is tested"); this file implements exactly those.

BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'DocTest.ps1')
    $blocks = @(Get-MarkdownCodeBlock -Path (Join-Path $PSScriptRoot '../../docs/production.md'))
    $script:PowerShellBlocks = @($blocks | Where-Object Language -EQ 'powershell' | ForEach-Object -Begin { $n = 0 } -Process {
            $n++
            @{ Number = $n; Line = $_.Line; Marker = $_.Marker; Text = $_.Text; First = ($_.Text -split "`n")[0] }
        })
    $script:Runnable = @($PowerShellBlocks | Where-Object { $_.Marker -notlike 'not offline:*' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    . (Join-Path $PSScriptRoot 'DocTest.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Account = '1234567890123456'
    $script:Principals = 'keyadmin', 'writer', 'reader', 'rotation', 'ci'
    $script:PolicyFile = Join-Path $TestDrive 'policies.json'
    Set-Content -LiteralPath $PolicyFile -Value '{}'
    $serverArgs = @('--policy-file', $PolicyFile) + @($Principals | ForEach-Object { '--access-key', "${_}:$_-secret" })
    $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou -ArgumentList $serverArgs
    $script:Shanghai = Start-TestKmsServer -Region cn-shanghai -ArgumentList $serverArgs

    # The page's policies: "policy NAME[, role ROLE]" before a json block.
    $script:Policies = @(
        foreach ($block in (Get-Content -LiteralPath (Join-Path $PSScriptRoot '../../docs/production.md') -Raw |
                    Select-String -Pattern '(?s)<!-- doc-test: policy ([^>]+?) -->\r?\n```json\r?\n(.*?)\r?\n```' -AllMatches).Matches) {
            $names = $block.Groups[1].Value -split ',\s*'
            [pscustomobject]@{ AccessKey = $names[0]; Role = ($names | Where-Object { $_ -like 'role *' } | ForEach-Object { $_.Substring(5) }); Text = $block.Groups[2].Value }
        })

    # The page's working folder and its example files.
    $script:Work = Join-Path $TestDrive 'work'
    foreach ($file in 'backup/db.dump', 'artifacts/app.tar') {
        $path = Join-Path $Work $file
        $null = New-Item -ItemType Directory -Path (Split-Path $path) -Force
        New-RandomFile -Path $path -Length 100000
    }
    $script:Original = @{
        Db = (Get-FileHash -LiteralPath (Join-Path $Work 'backup/db.dump')).Hash
        App = (Get-FileHash -LiteralPath (Join-Path $Work 'artifacts/app.tar')).Hash
    }

    # One session for the whole page, as one admin would have.
    $script:Session = New-DocSession -ModuleManifest (Join-Path $ModulePath 'EnvelopeKms.psd1') -WorkingDirectory $Work
    function Invoke-InSession([string] $Script) { Invoke-DocSession $Session $Script }
    function Get-SessionValue([string] $Name) { $Session.Runspace.SessionStateProxy.GetVariable($Name) }

    function Get-PlaceholderValues {
        @{
            region = 'cn-hangzhou'; 'dr-region' = 'cn-shanghai'; account = $Account
            'key-id' = (Get-SessionValue key).KeyId; 'dr-key-id' = (Get-SessionValue drKey).KeyId; 'new-key-id' = (Get-SessionValue newKey).KeyId
        }
    }
    function Expand-Placeholders([string] $Text) {
        $values = Get-PlaceholderValues
        [regex]::Replace($Text, '\$\{([a-z-]+)\}', { param($m) if ($values[$m.Groups[1].Value]) { $values[$m.Groups[1].Value] } else { $m.Value } })
    }

    # Writes the policy file with every policy whose placeholders are all known; returns the principals installed.
    function Update-PolicyFile {
        $accessKeys = [ordered]@{}; $roles = [ordered]@{}
        foreach ($policy in $Policies) {
            $text = Expand-Placeholders $policy.Text
            if ($text -match '\$\{') { continue }
            $accessKeys[$policy.AccessKey] = $text
            if ($policy.Role) { $roles["acs:ram::${Account}:role/$($policy.Role)"] = $text }
        }
        $json = '{"AccessKeys":{' + (($accessKeys.GetEnumerator() | ForEach-Object { "`"$($_.Key)`":$($_.Value)" }) -join ',') +
            '},"Roles":{' + (($roles.GetEnumerator() | ForEach-Object { "`"$($_.Key)`":$($_.Value)" }) -join ',') + '}}'
        Set-Content -LiteralPath $PolicyFile -Value $json
        @($accessKeys.Keys) + @($roles.Keys | ForEach-Object { 'role ' + ($_ -split '/')[-1] })
    }

    # The page's endpoints and regions, pointed at the local servers.
    function Convert-ToLocal([string] $Text) {
        Convert-DocEndpointToLocal -Text $Text -Endpoints ([ordered]@{ 'cn-hangzhou' = $Hangzhou.Endpoint; 'cn-shanghai' = $Shanghai.Endpoint })
    }

    function Set-Identity([string] $Id, [string] $Secret, [string] $Token) {
        $env:ALIBABA_CLOUD_ACCESS_KEY_ID = $Id
        $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = $Secret
        $env:ALIBABA_CLOUD_SECURITY_TOKEN = $Token
    }
    $script:SavedEnvironment = @{}
    foreach ($name in 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN', 'ALIBABA_CLOUD_PROFILE') {
        $SavedEnvironment[$name] = [Environment]::GetEnvironmentVariable($name)
    }
    $env:ALIBABA_CLOUD_PROFILE = $null
}

AfterAll {
    foreach ($entry in $SavedEnvironment.GetEnumerator()) { [Environment]::SetEnvironmentVariable($entry.Key, $entry.Value) }
    Remove-DocSession $Session
    Stop-TestKmsServer $Hangzhou
    Stop-TestKmsServer $Shanghai
}

Describe 'docs/production.md' {
    It 'has a doc-test marker on every powershell block' {
        @($PowerShellBlocks | Where-Object { -not $_.Marker } | ForEach-Object { "line $($_.Line): $($_.First)" }) | Should -BeNullOrEmpty
        @($PowerShellBlocks | Where-Object { $_.Marker -notmatch '^(as (role )?[a-z-]+|not offline: .+)$' } | ForEach-Object { $_.Marker }) | Should -BeNullOrEmpty
    }

    It 'lists the blocks that cannot run offline: ECS instance metadata, and Cloud Assistant on ECS' {
        # Changing this list is a decision: a block that stops running must be named here.
        @($PowerShellBlocks | Where-Object { $_.Marker -like 'not offline:*' } | ForEach-Object { $_.Marker }) | Should -Be @(
            'not offline: needs the ECS instance metadata service (100.100.100.200) and a RAM role bound to the instance'
            'not offline: runs on ECS through Cloud Assistant, with the instance RAM role''s credentials'
        )
    }

    It 'gives a policy to every principal the blocks run as' {
        $Policies.AccessKey | Sort-Object | Should -Be ($Principals | Sort-Object)
        $Policies.Role | Should -Be 'backup-reader'
    }

    It 'block <Number> (line <Line>, <Marker>) runs: <First>' -ForEach $Runnable {
        $installed = Update-PolicyFile
        if ($Marker -match '^as role (.+)$') {
            $role = $Matches[1]
            $installed | Should -Contain "role $role" -Because 'the role''s policy must be in force, not absent (absent means unrestricted)'
            $installed | Should -Contain 'ci'
            # What the CI step before would do: AssumeRole with the CI user's AccessKey, then export the session.
            $source = [EnvelopeKms.Credentials.StaticCredentialsProvider]::new('ci', 'ci-secret')
            $sts = [EnvelopeKms.Credentials.StsAssumeRoleCredentialsProvider]::new($source, "acs:ram::${Account}:role/$role", 'doc-test', 3600, $null, $null, [uri] $Hangzhou.Endpoint, $null)
            $credentials = $sts.GetCredentialsAsync([Threading.CancellationToken]::None).AsTask().GetAwaiter().GetResult()
            Set-Identity $credentials.AccessKeyId $credentials.AccessKeySecret $credentials.SecurityToken
        }
        else {
            $principal = $Marker.Substring(3)
            $installed | Should -Contain $principal -Because 'the principal''s policy must be in force, not absent (absent means unrestricted)'
            Set-Identity $principal "$principal-secret" $null
        }
        Invoke-InSession (Convert-ToLocal $Text)
    }

    It 'the rehearsal block (sh) starts a server that enforces its policy file' {
        # Run as written, in a fresh folder, with the staged server in place of out/server (the block uses the repo layout).
        $doc = Get-Content -LiteralPath (Join-Path $PSScriptRoot '../../docs/production.md') -Raw
        $blocks = [regex]::Matches($doc, '(?s)```sh\r?\n(.*?)\r?\n```')
        $blocks.Count | Should -Be 1 -Because 'this test knows one sh block; a new one needs a test of its own'
        $script = $blocks[0].Groups[1].Value.Replace('out/server/EnvelopeKms.Server.dll', $ServerDll)
        $dir = Join-Path $TestDrive 'rehearsal'
        $null = New-Item -ItemType Directory -Path $dir
        $psi = [Diagnostics.ProcessStartInfo]::new('/bin/bash')
        foreach ($a in '-c', $script) { $psi.ArgumentList.Add($a) }
        $psi.WorkingDirectory = $dir
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        $process = [Diagnostics.Process]::Start($psi)
        try {
            $line = $process.StandardOutput.ReadLine()
            $line -match 'listening on (http://\S+)' | Should -BeTrue -Because "the server's first line was: $line"
            $endpoint = $Matches[1]
            $null = $process.StandardError.ReadToEndAsync()
            $admin = @{ Endpoint = $endpoint; Region = 'cn-hangzhou'; Credential = (Get-TestCredential 'admin-ak' 'admin-secret') }
            $writer = @{ Endpoint = $endpoint; Region = 'cn-hangzhou'; Credential = (Get-TestCredential 'writer-ak' 'writer-secret') }
            $rehearsalKey = New-KmsKey -Description 'rehearsal' @admin
            $source = Join-Path $dir 'data.bin'
            New-RandomFile -Path $source -Length 1000
            Protect-EnvelopeFile -LiteralPath $source -KeyId $rehearsalKey.KeyId @writer
            Test-Path -LiteralPath "$source.ekms" | Should -BeTrue
            New-KmsKey -Description 'not allowed' @writer -ErrorAction SilentlyContinue -ErrorVariable refused
            $refused[0].Exception.Message | Should -BeLike '*this needs kms:CreateKey on acs:kms:cn-hangzhou:1234567890123456:key (*'
        }
        finally {
            $process.Kill($true)
            $process.WaitForExit()
        }
    }

    Context 'what the blocks did' {
        It 'the writer was refused its own files, and told which grant that would need' {
            $denied = Get-SessionValue denied
            $denied.Count | Should -BeGreaterThan 0
            $denied[0].FullyQualifiedErrorId | Should -BeLike 'KmsRefused*'
            Write-Host "The writer's refusal: $($denied[0].Exception.Message)"
            $denied[0].Exception.Message | Should -BeLike "*this needs kms:Decrypt on acs:kms:cn-hangzhou:${Account}:key/$((Get-SessionValue key).KeyId) *"
        }

        It 'the STS role restored the CI artifact and the reader the backup, byte for byte' {
            (Get-FileHash -LiteralPath (Join-Path $Work 'artifacts/app.tar')).Hash | Should -Be $Original.App
            (Get-FileHash -LiteralPath (Join-Path $Work 'backup/db.dump')).Hash | Should -Be $Original.Db
        }

        It 'rotation left the new key and the DR key in the file, not the old key; the DR drill restored it' {
            $info = Get-EnvelopeFileInfo -LiteralPath (Join-Path $Work 'backup/db.dump.ekms')
            # The kept entry stays first; the added one follows it.
            $info.WrappedKeys.KeyId | Should -Be (Get-SessionValue drKey).KeyId, (Get-SessionValue newKey).KeyId
            (Get-FileHash -LiteralPath (Join-Path $Work 'dr-restore/db.dump')).Hash | Should -Be $Original.Db
        }

        It 'the inventories list the keys and the alias' {
            $keys = Import-Csv -LiteralPath (Join-Path $Work 'kms-keys.csv')
            $keys.KeyId | Should -Contain (Get-SessionValue key).KeyId
            $keys.KeyId | Should -Contain (Get-SessionValue ledgerKey).KeyId
            (Import-Csv -LiteralPath (Join-Path $Work 'kms-aliases.csv') | Where-Object AliasName -EQ 'alias/backups').KeyId | Should -Be (Get-SessionValue newKey).KeyId
        }
    }
}
