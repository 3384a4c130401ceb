#Requires -Version 7.4
# No secret ever reaches a user-visible surface: the whole flow, successes and failures, with -Verbose -Debug,
# a transcript, every stream, every error record and exception, is searched for the AccessKey secrets, the STS
# secret and token, and every plaintext data key the flow used (learned by asking the local KMS server to unwrap
# each file's CiphertextBlob with a separate client), as raw text, base64, base64url, JSON-escaped base64,
# percent-encoding and hex in both cases, with whitespace removed so that wrapped lines cannot hide one.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    # The core assembly loads lazily with the first cmdlet; the test uses its types directly, so load it now (same file).
    Add-Type -LiteralPath (Join-Path $ModulePath 'bin/EnvelopeKms.Core.dll')
    $suffix = [guid]::NewGuid().ToString('N')
    $script:AkId = "ak$($suffix.Substring(0, 10))"
    $script:AkSecret = "Sk$($suffix)Zq"
    $script:WrongSecret = "Wr$([guid]::NewGuid().ToString('N'))Xy"
    $script:Server = Start-TestKmsServer -ArgumentList '--access-key', "$($AkId):$AkSecret"
    $script:Work = Join-Path $TestDrive 'secrets'
    $null = New-Item -ItemType Directory -Path $Work
    $script:SavedEnv = @{}
    foreach ($n in 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN') {
        $SavedEnv[$n] = [Environment]::GetEnvironmentVariable($n)
    }

    function Invoke-Failing {
        <# Runs a step expected to fail; a terminating error (bad credentials stop the batch) is emitted as a record. #>
        param([scriptblock] $Step)
        try { & $Step } catch { $_ }
    }

    function Get-SecretForm {
        <# Every encoding in which a secret string or secret bytes could leak. #>
        param([string] $Text, [byte[]] $Bytes)
        if ($Text) { $Bytes = [Text.Encoding]::UTF8.GetBytes($Text); $Text; [uri]::EscapeDataString($Text) }
        $b64 = [Convert]::ToBase64String($Bytes)
        $b64
        $b64.TrimEnd('=')
        $b64.Replace('+', '\u002B').TrimEnd('=')
        $b64.Replace('+', '-').Replace('/', '_').TrimEnd('=')
        [uri]::EscapeDataString($b64)
        [Convert]::ToHexString($Bytes).ToLowerInvariant()
        [Convert]::ToHexString($Bytes).ToUpperInvariant()
        ($Bytes | ForEach-Object { $_.ToString('x2') }) -join '-'
        ($Bytes | ForEach-Object { $_.ToString('X2') }) -join '-'
        if (-not $Text) { [Text.Encoding]::Latin1.GetString($Bytes) }
    }

    function Get-DataKey {
        <# Asks the KMS, with a separate client, for the plaintext data key of every wrapped key in a file. #>
        param([string] $Path)
        $header = [EnvelopeKms.Files.EnvelopeFileOperations]::ReadHeaderAsync($Path, $null, [Threading.CancellationToken]::None).GetAwaiter().GetResult()
        $client = [EnvelopeKms.Kms.KmsClient]::new([EnvelopeKms.Kms.KmsClientOptions]@{
                Endpoint    = [EnvelopeKms.Kms.KmsEndpoint]::FromUrl($Server.Endpoint, 'cn-hangzhou', [NullString]::Value)
                Credentials = [EnvelopeKms.Credentials.StaticCredentialsProvider]::new($AkId, $AkSecret, [NullString]::Value)
            })
        try {
            foreach ($entry in $header.WrappedKeys) {
                $result = $client.DecryptAsync($entry.CiphertextBlob, $header.EncryptionContext, [Threading.CancellationToken]::None).GetAwaiter().GetResult()
                try { , $result.Plaintext.Memory.ToArray() } finally { $result.Dispose() }
            }
        }
        finally { $client.Dispose() }
    }
}

AfterAll {
    Disconnect-Kms
    foreach ($n in $SavedEnv.Keys) { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) }
    Stop-TestKmsServer $Server
}

Describe 'Secrets never appear in output, transcripts or errors' {
    It 'keeps AccessKey secrets, STS tokens and data keys out of every stream, the transcript and every error record' {
        $endpoint = $Server.Endpoint
        # Temporary credentials from the server's STS AssumeRole, as an ECS role or a RamRoleArn profile would give.
        $static = [EnvelopeKms.Credentials.StaticCredentialsProvider]::new($AkId, $AkSecret, [NullString]::Value)
        $sts = [EnvelopeKms.Credentials.StsAssumeRoleCredentialsProvider]::new($static, 'acs:ram::1234567890123456:role/pester', 'pester', 3600,
            $null, $null, [uri]"$endpoint/", $null)
        $stsCredentials = $sts.GetCredentialsAsync([Threading.CancellationToken]::None).AsTask().GetAwaiter().GetResult()
        $stsCredentials.SecurityToken | Should -Not -BeNullOrEmpty
        $badToken = $stsCredentials.SecurityToken.Substring(0, $stsCredentials.SecurityToken.Length - 4) + 'QQQQ'

        $files = foreach ($name in 'a.csv', 'b.bin', 'c.txt', 'd.txt', 'e.txt') {
            $p = Join-Path $Work $name
            [IO.File]::WriteAllBytes($p, [byte[]](1..(100 * $name.Length) | ForEach-Object { $_ % 251 }))
            $p
        }
        $Error.Clear()
        $transcript = Join-Path $TestDrive 'transcript.txt'
        $null = Start-Transcript -LiteralPath $transcript -IncludeInvocationHeader
        $captured = & {
            $VerbosePreference = 'Continue'; $DebugPreference = 'Continue'; $InformationPreference = 'Continue'; $WarningPreference = 'Continue'
            $ErrorActionPreference = 'Continue'
            # Before PowerShell 7.6 (PowerShell/PowerShell#26081), -Debug also asks to confirm every ShouldProcess
            # operation, which fails in a non-interactive session (7.4); -Confirm:$false, bound to every command here,
            # keeps -Debug on each version tested.
            $PSDefaultParameterValues = @{ '*:Confirm' = $false }
            Connect-Kms -Endpoint $endpoint -Credential (Get-TestCredential $AkId $AkSecret) -PassThru -Verbose -Debug | Format-List * -Force
            Get-KmsConnection | Format-List * -Force
            Get-KmsConnection | ConvertTo-Json -Depth 4
            $key = New-KmsKey -Description 'secrets test' -Verbose -Debug
            $key | Format-List * -Force
            $files[0..2] | Protect-EnvelopeFile -KeyId $key.KeyId -EncryptionContext @{ purpose = 'secrets' } -PassThru -Verbose -Debug | Format-List * -Force
            Protect-EnvelopeFile -LiteralPath $files[3] -KeyId $key.KeyId -PassThru -Verbose -Debug | ConvertTo-Json -Depth 4
            Get-ChildItem $Work -Filter *.ekms | Get-EnvelopeFileInfo -Verbose -Debug | Format-List * -Force
            Get-ChildItem $Work -Filter *.ekms | Test-EnvelopeFile -Verbose -Debug
            Get-ChildItem $Work -Filter *.ekms | Unprotect-EnvelopeFile -Destination (New-Item -ItemType Directory (Join-Path $Work 'out')).FullName -PassThru -Verbose -Debug | Format-List * -Force
            # Re-wrapping unwraps and wraps the same data keys (Decrypt, then Encrypt under a second key).
            $key2 = New-KmsKey -Description 'secrets test, second key'
            Get-ChildItem $Work -Filter *.ekms | Update-EnvelopeFileKey -AddKeyId $key2.KeyId -PassThru -Verbose -Debug | Format-List * -Force
            Get-ChildItem $Work -Filter *.ekms | Update-EnvelopeFileKey -KeyId $key2.KeyId -PassThru -Verbose -Debug | ConvertTo-Json -Depth 4

            # Failures, some after the data key was unwrapped.
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath "$($files[0]).ekms" -EncryptionContext @{ purpose = 'other' } -Force -Verbose -Debug }
            $bytes = [IO.File]::ReadAllBytes("$($files[1]).ekms"); $bytes[-3] = $bytes[-3] -bxor 4
            [IO.File]::WriteAllBytes((Join-Path $Work 'frame-tampered.ekms'), $bytes)
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath (Join-Path $Work 'frame-tampered.ekms') -Verbose -Debug }
            $bytes = [IO.File]::ReadAllBytes("$($files[2]).ekms")
            $text = [Text.Encoding]::ASCII.GetString($bytes)
            for ($at = $text.IndexOf('secrets'); $at -ge 0; $at = $text.IndexOf('secrets', $at + 1)) { $bytes[$at] = [byte][char]'S' } # both v2 header slots
            [IO.File]::WriteAllBytes((Join-Path $Work 'context-tampered.ekms'), $bytes) # KMS refuses: the context differs
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath (Join-Path $Work 'context-tampered.ekms') -Verbose -Debug }
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath "$($files[0]).ekms" -AllowedKeyId 'key-not-allowed' -Force -Verbose -Debug }
            Invoke-Failing { Test-EnvelopeFile -LiteralPath (Join-Path $Work 'frame-tampered.ekms') -Verbose -Debug }

            # Bad credentials: a wrong secret, an unknown id, explicitly and through Connect-Kms.
            Invoke-Failing { Connect-Kms -Endpoint $endpoint -Credential (Get-TestCredential $AkId $WrongSecret) -Verbose -Debug }
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath "$($files[3]).ekms" -Force -Verbose -Debug }
            Invoke-Failing { Protect-EnvelopeFile -LiteralPath $files[4] -KeyId $key.KeyId -Verbose -Debug }
            Invoke-Failing { Get-KmsKey -KeyId $key.KeyId -Verbose -Debug }
            Invoke-Failing { New-KmsKey -Credential (Get-TestCredential 'no-such-id' $WrongSecret) -Verbose -Debug }
            Disconnect-Kms

            # STS credentials from the environment: the whole flow, then a damaged token.
            $env:ALIBABA_CLOUD_ACCESS_KEY_ID = $stsCredentials.AccessKeyId
            $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = $stsCredentials.AccessKeySecret
            $env:ALIBABA_CLOUD_SECURITY_TOKEN = $stsCredentials.SecurityToken
            Protect-EnvelopeFile -LiteralPath $files[4] -KeyId $key.KeyId -Endpoint $endpoint -PassThru -Verbose -Debug | Format-List * -Force
            Unprotect-EnvelopeFile -LiteralPath "$($files[4]).ekms" -Destination (Join-Path $Work 'out/e-sts.txt') -Endpoint $endpoint -PassThru -Verbose -Debug | Format-List * -Force
            $env:ALIBABA_CLOUD_SECURITY_TOKEN = $badToken
            Invoke-Failing { Unprotect-EnvelopeFile -LiteralPath "$($files[4]).ekms" -Destination (Join-Path $Work 'out/e-bad.txt') -Endpoint $endpoint -Verbose -Debug }
            Invoke-Failing { Get-KmsKey -KeyId $key.KeyId -Endpoint $endpoint -Verbose -Debug }
            $env:ALIBABA_CLOUD_ACCESS_KEY_SECRET = $WrongSecret
            $env:ALIBABA_CLOUD_SECURITY_TOKEN = $stsCredentials.SecurityToken
            Invoke-Failing { Get-KmsKey -KeyId $key.KeyId -Endpoint $endpoint -Verbose -Debug }
            foreach ($n in $SavedEnv.Keys) { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) }
        } *>&1 | Out-String -Width 4096
        $null = Stop-Transcript
        $errors = @($Error)

        # The flow ran, and failed where it should, in the ways the module documents.
        $ids = $errors | ForEach-Object { $_.FullyQualifiedErrorId -replace ',.*' }
        $ids | Should -Contain 'EnvelopeContextMismatch'
        $ids | Should -Contain 'EnvelopeAuthenticationFailed'
        $ids | Should -Contain 'KmsAuthenticationFailed'
        $ids | Should -Contain 'KmsNoAllowedKey'
        (Join-Path $Work 'out/e-sts.txt') | Should -Exist
        (Get-FileHash (Join-Path $Work 'out/e-sts.txt')).Hash | Should -Be (Get-FileHash $files[4]).Hash

        # Every surface a user (or a log collector) can see.
        $surfaces = [Collections.Generic.List[string]]::new()
        $surfaces.Add($captured)
        $surfaces.Add([IO.File]::ReadAllText($transcript))
        $surfaces.Add(($errors | Format-List * -Force | Out-String -Width 4096))
        $surfaces.Add(($errors | Get-Error | Out-String -Width 4096))
        foreach ($e in $errors) {
            $surfaces.Add($e.ToString())
            $surfaces.Add(($e | Out-String -Width 4096))
            $surfaces.Add([string]$e.ErrorDetails)
            $surfaces.Add(($e.CategoryInfo | Format-List * -Force | Out-String -Width 4096))
            $surfaces.Add(($e.InvocationInfo | Format-List * -Force | Out-String -Width 4096))
            for ($x = $e.Exception; $x; $x = $x.InnerException) {
                $surfaces.Add($x.ToString())
                $surfaces.Add(($x | Format-List * -Force | Out-String -Width 4096))
                $surfaces.Add(($x | Select-Object * -ExcludeProperty TargetSite | ConvertTo-Json -Depth 3 -WarningAction SilentlyContinue))
            }
        }
        $haystack = $surfaces -join "`n"
        $flat = $haystack -replace '\s', ''

        # Controls: the surfaces hold the verbose lines, the errors and the non-secret identifiers.
        $haystack | Should -Match 'Encrypted '''
        $haystack | Should -Match 'Decrypted '''
        $haystack | Should -Match 'EnvelopeAuthenticationFailed'
        $haystack | Should -Match ([regex]::Escape($files[0]))

        # The data keys: every file the flow wrote (and the tampered copies, which share their originals' keys).
        $dataKeys = @(Get-ChildItem $Work -Filter *.ekms | Where-Object Name -NotMatch 'tampered' | ForEach-Object { Get-DataKey $_.FullName })
        $dataKeys.Count | Should -BeGreaterOrEqual 2
        foreach ($k in $dataKeys) { $k.Length | Should -Be 32 }

        $secrets = [ordered]@{
            'AccessKey secret'         = @(Get-SecretForm -Text $AkSecret)
            'wrong AccessKey secret'   = @(Get-SecretForm -Text $WrongSecret)
            'STS AccessKey secret'     = @(Get-SecretForm -Text $stsCredentials.AccessKeySecret)
            'STS security token'       = @(Get-SecretForm -Text $stsCredentials.SecurityToken)
            'damaged STS token'        = @(Get-SecretForm -Text $badToken)
        }
        $i = 0
        foreach ($k in $dataKeys) { $secrets["data key $i"] = @(Get-SecretForm -Bytes $k); $i++ }

        function Find-Leak([string] $Text) {
            foreach ($name in $secrets.Keys) {
                foreach ($form in $secrets[$name]) {
                    $needle = $form -replace '\s', ''
                    if ($needle.Length -ge 8 -and $Text.Contains($needle, [StringComparison]::Ordinal)) { "$name as '$form'" }
                }
            }
        }
        # Control: the search finds a key that leaked as wrapped upper-case hex, and a token cut across lines.
        $hex = [Convert]::ToHexString($dataKeys[-1])
        $planted = "$($hex.Substring(0, 30))`n   $($hex.Substring(30))" + $stsCredentials.SecurityToken.Insert(10, "`r`n")
        @(Find-Leak ($planted -replace '\s', '')).Count | Should -BeGreaterOrEqual 2

        Find-Leak $flat | Should -BeNullOrEmpty
    }
}
