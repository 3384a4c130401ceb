#Requires -Version 7.4
# Alibaba Cloud Encryption SDK messages through the cmdlets, against a local KMS server: -Format AlibabaSdk and
# AlibabaSdkStream, reading by content, Get-EnvelopeFileInfo, tampering, and messages written and read by the
# independent Python implementation (tests/interop/alibaba_sdk.py) with real blobs from the server, fetched with the
# official Node.js SDK (tests/interop/datakey-crossclient.mjs), and messages written by the official Java and Python
# Encryption SDKs (tests/vectors/alibaba-esdk) against a server started on a copy of the KMS state that wrapped them.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'pester sdk key'
    $script:Key2 = New-KmsKey -Description 'pester sdk second key'
    $script:Alias = "alias/Pester/Sdk$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = $Key | New-KmsAlias -AliasName $Alias



    function New-Sample {
        param([string] $Name, [int] $Length = 100000)
        $path = Join-Path $TestDrive $Name
        New-RandomFile -Path $path -Length $Length -Random ([Random]::new($Length))
        $path
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'Protect-EnvelopeFile -Format AlibabaSdk / AlibabaSdkStream' {
    It 'round-trips <_> through Unprotect-EnvelopeFile, recording the key ARN in the message' -ForEach 'AlibabaSdk', 'AlibabaSdkStream' {
        $source = New-Sample "round-$_.bin"
        $hash = (Get-FileHash -LiteralPath $source).Hash
        $written = Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format $_ -EncryptionContext @{ app = 'billing'; 'ключ' = 'значение' } -PassThru
        $written.Format | Should -Be $_
        $written.KeyId | Should -Be $Key.KeyId
        Remove-Item -LiteralPath $source
        $read = Unprotect-EnvelopeFile -LiteralPath "$source.ekms" -EncryptionContext @{ app = 'billing' } -PassThru
        $read.Format | Should -Be $_
        $read.KeyId | Should -Be $Key.KeyId
        (Get-FileHash -LiteralPath $source).Hash | Should -Be $hash
        (Get-EnvelopeFileInfo -LiteralPath "$source.ekms").KeyIds | Should -Be $Key.Arn
        Test-EnvelopeFile -LiteralPath "$source.ekms" | Should -BeTrue
    }

    It 'Get-EnvelopeFileInfo shows format, algorithm, ARNs and context without calling KMS' {
        $source = New-Sample 'info.bin' 5000
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Key.KeyId, $Key2.Arn -Format AlibabaSdk -EncryptionContext @{ app = 'billing' }
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        $info = Get-EnvelopeFileInfo -LiteralPath "$source.ekms"
        $stats = Invoke-KmsControl $Server 'stats'
        @($stats.operations.PSObject.Properties | Where-Object { $_.Value.success -gt 0 -or $_.Value.failure -gt 0 }).Count | Should -Be 0
        $info.Format | Should -Be 'AlibabaSdk'
        $info.Version | Should -Be 1
        $info.Suite | Should -Be 'AES_GCM_NOPADDING_256 (Encryption SDK algorithm 2)'
        $info.KeyIds | Sort-Object | Should -Be (@($Key.Arn, $Key2.Arn) | Sort-Object)
        $info.EncryptionContext['app'] | Should -Be 'billing'
        $info.PlaintextLength | Should -Be 5000
        $info.FrameLength | Should -BeNullOrEmpty
        ($info | Format-Table | Out-String) | Should -Match 'AlibabaSdk'
        # The counters do count: decrypting the same file is one Decrypt.
        Test-EnvelopeFile -LiteralPath "$source.ekms" | Should -BeTrue
        (Invoke-KmsControl $Server 'stats').operations.Decrypt.success | Should -Be 1
    }

    It 'wraps the data key under every -KeyId, so either key decrypts' {
        $source = New-Sample 'two-keys.bin' 3000
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias, $Key2.KeyId -Format AlibabaSdkStream
        $out = Join-Path $TestDrive 'two-keys.out'
        $read = Unprotect-EnvelopeFile -LiteralPath "$source.ekms" -Destination $out -AllowedKeyId $Key2.KeyId -PassThru
        $read.KeyId | Should -Be $Key2.KeyId
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $hash
    }

    It 'refuses two -KeyId values that name the same key' {
        $source = New-Sample 'dup.bin' 10
        { Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias, $Key.Arn -Format AlibabaSdk -ErrorAction Stop } |
            Should -Throw -ErrorId 'EnvelopeDuplicateKeyId,EnvelopeKms.PowerShell.Commands.ProtectEnvelopeFileCommand'
        Test-Path -LiteralPath "$source.ekms" | Should -BeFalse
    }

    It 'stops once with KmsKeyNotFound for a key that does not exist' {
        $source = New-Sample 'nokey.bin' 10
        { Protect-EnvelopeFile -LiteralPath $source -KeyId 'alias/Pester/NoSuchKey' -Format AlibabaSdk -ErrorAction Stop } |
            Should -Throw -ErrorId 'KmsKeyNotFound,EnvelopeKms.PowerShell.Commands.ProtectEnvelopeFileCommand'
        Test-Path -LiteralPath "$source.ekms" | Should -BeFalse
    }

    It 'calls no KMS under -WhatIf' {
        $source = New-Sample 'whatif.bin' 10
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format AlibabaSdk -WhatIf
        $stats = Invoke-KmsControl $Server 'stats'
        @($stats.operations.PSObject.Properties | Where-Object { $_.Value.success -gt 0 }).Count | Should -Be 0
        Test-Path -LiteralPath "$source.ekms" | Should -BeFalse
        # Without -WhatIf: one DescribeKey (the alias's ARN) and one GenerateDataKey.
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format AlibabaSdk
        $stats = Invoke-KmsControl $Server 'stats'
        $stats.operations.DescribeKey.success | Should -Be 1
        $stats.operations.GenerateDataKey.success | Should -Be 1
    }

    It '-RemoveSource removes the source only after the message decrypts' {
        $source = New-Sample 'remove.bin' 2000
        $hash = (Get-FileHash -LiteralPath $source).Hash
        $r = Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format AlibabaSdk -RemoveSource -Force -PassThru
        $r.SourceRemoved | Should -BeTrue
        Test-Path -LiteralPath $source | Should -BeFalse
        Unprotect-EnvelopeFile -LiteralPath "$source.ekms"
        (Get-FileHash -LiteralPath $source).Hash | Should -Be $hash
    }

    It 'skips .ekms files that already are Encryption SDK messages' {
        $source = New-Sample 'again.bin' 100
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format AlibabaSdkStream
        Protect-EnvelopeFile -LiteralPath "$source.ekms" -KeyId $Alias -WarningVariable warnings -WarningAction SilentlyContinue
        Test-Path -LiteralPath "$source.ekms.ekms" | Should -BeFalse
        "$warnings" | Should -Match 'already envelope files'
    }
}

Describe 'Reading bad Encryption SDK messages' {
    BeforeAll {
        $script:Good = New-Sample 'good.bin' 4000
        Protect-EnvelopeFile -LiteralPath $Good -KeyId $Alias -Format AlibabaSdk -EncryptionContext @{ app = 'billing' }
        $script:GoodBytes = [IO.File]::ReadAllBytes("$Good.ekms")
        $script:GoodStream = New-Sample 'good-stream.bin' 4000
        Protect-EnvelopeFile -LiteralPath $GoodStream -KeyId $Alias -Format AlibabaSdkStream
        $script:StreamBytes = [IO.File]::ReadAllBytes("$GoodStream.ekms")

        function Write-Variant {
            param([string] $Name, [byte[]] $Bytes)
            $path = Join-Path $TestDrive "$Name.ekms"
            [IO.File]::WriteAllBytes($path, $Bytes)
            $path
        }
    }

    It 'a tampered body gives EnvelopeAuthenticationFailed and writes nothing' {
        $bytes = $GoodBytes.Clone()
        $bytes[$bytes.Length - 100] = $bytes[$bytes.Length - 100] -bxor 1
        $path = Write-Variant 'tampered-body' $bytes
        Unprotect-EnvelopeFile -LiteralPath $path -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeAuthenticationFailed,*'
        $failed[0].CategoryInfo.Category | Should -Be 'SecurityError'
        Test-Path -LiteralPath (Join-Path $TestDrive 'tampered-body') | Should -BeFalse
        @(Get-EkmsTempFile $TestDrive).Count | Should -Be 0
        Test-EnvelopeFile -LiteralPath $path | Should -BeFalse
    }

    It 'a tampered header gives EnvelopeHeaderTampered and writes nothing' {
        $bytes = $StreamBytes.Clone()
        # The header tag is the 16 bytes before "00 00 00 0C <body IV>" at the end of the stream header.
        $tagAt = $bytes.Length - 4000 - 16 - 12 - 4 - 16
        $bytes[$tagAt] = $bytes[$tagAt] -bxor 0x80
        $path = Write-Variant 'tampered-header' $bytes
        Unprotect-EnvelopeFile -LiteralPath $path -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeHeaderTampered,*'
        Test-Path -LiteralPath (Join-Path $TestDrive 'tampered-header') | Should -BeFalse
    }

    It 'a truncated message gives EnvelopeTruncated' {
        $path = Write-Variant 'truncated' $GoodBytes[0..($GoodBytes.Length - 50)]
        Unprotect-EnvelopeFile -LiteralPath $path -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeTruncated,*'
        { Get-EnvelopeFileInfo -LiteralPath $path -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeTruncated,EnvelopeKms.PowerShell.Commands.GetEnvelopeFileInfoCommand'
        Test-Path -LiteralPath (Join-Path $TestDrive 'truncated') | Should -BeFalse
    }

    It 'an AES-CBC message gives EnvelopeSdkUnsupportedAlgorithm' {
        $bytes = $StreamBytes.Clone()
        $bytes[7] = 4 # int32 algorithm: AES_CBC_NOPADDING_256
        $path = Write-Variant 'cbc' $bytes
        Unprotect-EnvelopeFile -LiteralPath $path -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeSdkUnsupportedAlgorithm,*'
        "$($failed[0])" | Should -Match 'AES_CBC_NOPADDING_256'
        { Get-EnvelopeFileInfo -LiteralPath $path -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeSdkUnsupportedAlgorithm,EnvelopeKms.PowerShell.Commands.GetEnvelopeFileInfoCommand'
    }

    It 'bytes after the DER message give EnvelopeSdkMalformed' {
        $path = Write-Variant 'trailing' ($GoodBytes + [byte[]](0))
        Unprotect-EnvelopeFile -LiteralPath $path -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeSdkMalformed,*'
        $failed[0].CategoryInfo.Category | Should -Be 'InvalidData'
    }

    It 'a required context that the message lacks gives EnvelopeContextMismatch' {
        Unprotect-EnvelopeFile -LiteralPath "$Good.ekms" -Destination (Join-Path $TestDrive 'ctx.out') -EncryptionContext @{ app = 'payroll' } -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeContextMismatch,*'
        Test-Path -LiteralPath (Join-Path $TestDrive 'ctx.out') | Should -BeFalse
        Test-EnvelopeFile -LiteralPath "$Good.ekms" -EncryptionContext @{ app = 'payroll' } | Should -BeFalse
    }
}

Describe 'Interop with the independent Python implementation and real KMS blobs' {
    It 'decrypts a <_> message the Python encoder wrote around a data key from the local server' -ForEach 'asn1', 'stream' {
        $context = @{ app = 'billing'; 'file name' = 'a+b/c.txt' }
        $contextJson = $context | ConvertTo-Json -Compress
        $generated = Invoke-NodeKms $Server 'generate', '--key-id', $Key.KeyId, '--context-json', $contextJson
        $source = New-Sample "py-$_.bin" 70000
        $message = Join-Path $TestDrive "py-$_.bin.ekms"
        $null = Invoke-PythonSdk 'encrypt', '--layout', $_, '--key-b64', $generated.Plaintext, '--in', $source, '--out', $message,
            '--context-json', $contextJson, '--edk', $Key.Arn, $generated.CiphertextBlob
        $out = Join-Path $TestDrive "py-$_.out"
        $read = Unprotect-EnvelopeFile -LiteralPath $message -Destination $out -EncryptionContext $context -PassThru
        $read.Format | Should -Be ($_ -eq 'asn1' ? 'AlibabaSdk' : 'AlibabaSdkStream')
        $read.KeyId | Should -Be $Key.KeyId
        (Get-FileHash -LiteralPath $out).Hash | Should -Be (Get-FileHash -LiteralPath $source).Hash
        (Get-EnvelopeFileInfo -LiteralPath $message).KeyIds | Should -Be $Key.Arn
    }

    It 'writes <_> messages that the Python decoder reads with the data key KMS unwraps' -ForEach 'AlibabaSdk', 'AlibabaSdkStream' {
        $source = New-Sample "ps-$_.bin" 50000
        Protect-EnvelopeFile -LiteralPath $source -KeyId $Alias -Format $_ -EncryptionContext @{ app = 'billing' }
        $header = Invoke-PythonSdk 'header', '--in', "$source.ekms" | ConvertFrom-Json
        $header.encryptedDataKeys[0].cmkArn | Should -Be $Key.Arn
        $header.encryptionContext.app | Should -Be 'billing'
        $unwrapped = Invoke-NodeKms $Server 'decrypt', '--blob', $header.encryptedDataKeys[0].ciphertextBlob, '--context-json', '{"app":"billing"}'
        $out = Join-Path $TestDrive "ps-$_.out"
        $null = Invoke-PythonSdk 'decrypt', '--key-b64', $unwrapped.Plaintext, '--in', "$source.ekms", '--out', $out
        (Get-FileHash -LiteralPath $out).Hash | Should -Be (Get-FileHash -LiteralPath $source).Hash
    }
}

Describe 'Messages written by the official Encryption SDKs (tests/vectors/alibaba-esdk)' {
    BeforeDiscovery {
        $officialVectors = Get-ChildItem -LiteralPath (Join-Path $PSScriptRoot '../vectors/alibaba-esdk') -Filter '*.json' | ForEach-Object { @{ Name = $_.BaseName } }
    }

    BeforeAll {
        $script:VectorDir = Join-Path $RepoRoot 'tests/vectors/alibaba-esdk'
        # The server runs on a COPY of the state that wrapped the vectors' data keys, so the committed folder is never written.
        $stateCopy = Join-Path $TestDrive 'esdk-kms-state'
        Copy-Item -LiteralPath (Join-Path $VectorDir 'kms-state') -Destination $stateCopy -Recurse
        $script:EsdkServer = Start-TestKmsServer -DataDir $stateCopy -ArgumentList '--enable-control'
        Connect-Kms -Endpoint $EsdkServer.Endpoint -Credential (Get-TestCredential)

        function Get-OfficialVector([string] $Name) {
            $v = Get-Content -Raw -LiteralPath (Join-Path $VectorDir "$Name.json") | ConvertFrom-Json -AsHashtable
            $path = Join-Path $TestDrive "$Name.msg"
            [IO.File]::WriteAllBytes($path, [Convert]::FromBase64String($v.message_b64))
            $v.Path = $path
            $v.Plaintext = [Convert]::FromBase64String($v.plaintext_b64)
            $v.PlaintextHash = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($v.Plaintext))
            $v.Format = $v.layout -eq 'asn1' ? 'AlibabaSdk' : 'AlibabaSdkStream'
            $v
        }
    }

    AfterAll {
        Stop-TestKmsServer $EsdkServer
        Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    }

    It 'Get-EnvelopeFileInfo shows <Name> as the SDK wrote it' -ForEach $officialVectors {
        $v = Get-OfficialVector $Name
        $info = Get-EnvelopeFileInfo -LiteralPath $v.Path
        $info.Format | Should -Be $v.Format
        $info.Version | Should -Be 1
        $info.Suite | Should -Be "$($v.algorithm.name) (Encryption SDK algorithm $($v.algorithm.id))"
        @($info.KeyIds | Sort-Object) | Should -Be @($v.key_arns | Sort-Object)
        $info.EncryptionContext.Count | Should -Be $v.encryption_context.Count
        foreach ($key in $v.encryption_context.Keys) { $info.EncryptionContext[$key] | Should -BeExactly $v.encryption_context[$key] }
        $info.PlaintextLength | Should -Be $v.Plaintext.Length
        $info.Length | Should -Be (Get-Item -LiteralPath $v.Path).Length
    }

    It 'Unprotect-EnvelopeFile decrypts <Name> through the local server, under each of its keys' -ForEach $officialVectors {
        $v = Get-OfficialVector $Name
        $context = $v.encryption_context.Count ? $v.encryption_context : $null
        foreach ($arn in $v.key_arns) {
            $out = Join-Path $TestDrive "$Name.$($v.key_arns.IndexOf($arn)).out"
            $r = Unprotect-EnvelopeFile -LiteralPath $v.Path -Destination $out -AllowedKeyId $arn -EncryptionContext $context -PassThru
            $r.Format | Should -Be $v.Format
            $r.KeyId | Should -Be ($arn -replace '^.*:key/', '')
            (Get-FileHash -LiteralPath $out -Algorithm SHA256).Hash | Should -Be $v.PlaintextHash
        }
        Test-EnvelopeFile -LiteralPath $v.Path | Should -BeTrue
    }

    It 'refuses a stream file of EnvelopeKms 0.1.0 (body IV length big-endian), naming the file, and leaves it as it was' {
        $v = Get-OfficialVector 'java-stream-aes256-100b-ctx'
        $bytes = [Convert]::FromBase64String($v.message_b64)
        $offset = $bytes.Length - $v.Plaintext.Length - 16 - 12 - 4
        [Convert]::ToHexString($bytes, $offset, 4) | Should -Be '0C000000'
        [Array]::Reverse($bytes, $offset, 4) # 00 00 00 0C, as 0.1.0 wrote it
        $old = Join-Path $TestDrive 'written-by-0.1.0.ekms'
        [IO.File]::WriteAllBytes($old, $bytes)
        $hash = (Get-FileHash -LiteralPath $old).Hash
        $null = Invoke-KmsControl $EsdkServer 'reset-stats' -Method POST

        Unprotect-EnvelopeFile -LiteralPath $old -EncryptionContext $v.encryption_context -ErrorVariable failed -ErrorAction SilentlyContinue
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'EnvelopeSdkMalformed,*'
        $failed[0].CategoryInfo.Category | Should -Be 'InvalidData'
        "$($failed[0])" | Should -BeLike "'$old' is an Alibaba Cloud Encryption SDK stream message as EnvelopeKms 0.1.0 wrote it*00 00 00 0c at byte $offset*"
        Test-Path -LiteralPath (Join-Path $TestDrive 'written-by-0.1.0') | Should -BeFalse
        @(Get-EkmsTempFile $TestDrive).Count | Should -Be 0
        (Get-FileHash -LiteralPath $old).Hash | Should -Be $hash
        { Get-EnvelopeFileInfo -LiteralPath $old -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeSdkMalformed,EnvelopeKms.PowerShell.Commands.GetEnvelopeFileInfoCommand'
        Test-EnvelopeFile -LiteralPath $old | Should -BeFalse
        # Refused from the header alone: no KMS call.
        $stats = Invoke-KmsControl $EsdkServer 'stats'
        @($stats.operations.PSObject.Properties | Where-Object { $_.Value.success -gt 0 -or $_.Value.failure -gt 0 }).Count | Should -Be 0

        # The repair the message names: reversing the four bytes gives back the SDK's message.
        [Array]::Reverse($bytes, $offset, 4)
        [IO.File]::WriteAllBytes($old, $bytes)
        Unprotect-EnvelopeFile -LiteralPath $old -EncryptionContext $v.encryption_context
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([IO.File]::ReadAllBytes((Join-Path $TestDrive 'written-by-0.1.0')))) | Should -Be $v.PlaintextHash
    }
}

Describe 'Encryption SDK messages under keys of two regions' {
    BeforeAll {
        # Two local servers, one per region; the connection's home is Hangzhou, Shanghai is mapped.
        $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou -ArgumentList '--enable-control'
        $script:Shanghai = Start-TestKmsServer -Region cn-shanghai -ArgumentList '--enable-control'
        Connect-Kms -Endpoint $Hangzhou.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -Credential (Get-TestCredential) -MaxAttempts 2
        $script:KeyA = New-KmsKey -Description 'hangzhou sdk key'
        $script:KeyB = New-KmsKey -Description 'shanghai sdk key' -Endpoint $Shanghai.Endpoint -Region cn-shanghai
        function Get-Count($Server, [string] $Action) {
            $op = (Invoke-KmsControl $Server 'stats').operations.$Action
            if ($op) { [int] $op.success } else { 0 }
        }
    }

    AfterAll {
        Stop-TestKmsServer $Hangzhou
        Stop-TestKmsServer $Shanghai
    }

    It 'records both ARNs, wraps each key at its region, and decrypts through the other region when one key is disabled' {
        $source = New-Sample 'regions.bin' 20000
        $hash = (Get-FileHash -LiteralPath $source).Hash
        Protect-EnvelopeFile -LiteralPath $source -KeyId $KeyA.KeyId, $KeyB.Arn -Format AlibabaSdk
        (Get-Count $Hangzhou DescribeKey), (Get-Count $Hangzhou GenerateDataKey), (Get-Count $Shanghai Encrypt) | Should -Be 1, 1, 1
        $info = Get-EnvelopeFileInfo -LiteralPath "$source.ekms"
        $info.KeyIds | Sort-Object | Should -Be (@($KeyA.Arn, $KeyB.Arn) | Sort-Object)
        ($info.WrappedKeys | Sort-Object KeyId).Region | Should -Be 'cn-hangzhou', 'cn-shanghai' # taken from each ARN
        Disable-KmsKey -KeyId $KeyA.KeyId
        try {
            $out = Join-Path $TestDrive 'regions.out'
            $r = Unprotect-EnvelopeFile -LiteralPath "$source.ekms" -Destination $out -PassThru
            $r.KeyId | Should -Be $KeyB.KeyId
            $r.Region | Should -Be 'cn-shanghai'
            (Get-FileHash -LiteralPath $out).Hash | Should -Be $hash
            Get-Count $Shanghai Decrypt | Should -Be 1
        }
        finally { Enable-KmsKey -KeyId $KeyA.KeyId }
    }
}
