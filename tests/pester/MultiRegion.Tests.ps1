#Requires -Version 7.4
# Files wrapped under KMS keys of two regions: two local KMS servers, one per region (each holds its own keys and
# refuses ARNs of the other region), Connect-Kms to Hangzhou with -RegionEndpoint mapping Shanghai.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Hangzhou = Start-TestKmsServer -Region cn-hangzhou -ArgumentList '--enable-control'
    $script:Shanghai = Start-TestKmsServer -Region cn-shanghai -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Hangzhou.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -Credential (Get-TestCredential) -MaxAttempts 2
    $script:KeyA = New-KmsKey -Description 'hangzhou key'
    $script:KeyB = New-KmsKey -Description 'shanghai key' -Endpoint $Shanghai.Endpoint -Region cn-shanghai
    $script:Work = Join-Path $TestDrive 'work'
    $null = New-Item -ItemType Directory -Path $Work
    $script:Plain = Join-Path $Work 'report.csv'
    New-RandomFile -Path $Plain -Length 300000
    $script:Hash = (Get-FileHash -LiteralPath $Plain).Hash
    $script:Sealed = "$Plain.ekms"

    function Reset-Stats { foreach ($s in $Hangzhou, $Shanghai) { $null = Invoke-KmsControl $s 'reset-stats' -Method POST } }
    function Get-Count($Server, [string] $Action, [string] $Outcome = 'success') {
        $op = (Invoke-KmsControl $Server 'stats').operations.$Action
        if ($op) { [int] $op.$Outcome } else { 0 }
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Hangzhou
    Stop-TestKmsServer $Shanghai
}

Describe 'Keys of several regions' {
    It 'the two servers hold different regions: Hangzhou refuses the Shanghai ARN' {
        $KeyB.Arn | Should -BeLike 'acs:kms:cn-shanghai:*'
        { Get-KmsKey -KeyId $KeyB.Arn -Endpoint $Hangzhou.Endpoint -ErrorAction Stop } | Should -Throw -ErrorId 'KmsKeyNotFound*'
    }

    It 'Protect-EnvelopeFile wraps the data key once per key, each at its own region''s endpoint, and records each region' {
        Reset-Stats
        $r = Protect-EnvelopeFile -LiteralPath $Plain -KeyId $KeyA.KeyId, $KeyB.Arn -PassThru
        $r.KeyId | Should -Be $KeyA.KeyId
        $r.Region | Should -Be 'cn-hangzhou'
        $info = Get-EnvelopeFileInfo -LiteralPath $Sealed
        $info.WrappedKeys.Count | Should -Be 2
        $info.WrappedKeys[0].KeyId | Should -Be $KeyA.KeyId
        $info.WrappedKeys[0].Region | Should -Be 'cn-hangzhou'
        $info.WrappedKeys[1].KeyId | Should -Be $KeyB.KeyId
        $info.WrappedKeys[1].Region | Should -Be 'cn-shanghai'
        (Get-Count $Hangzhou GenerateDataKey), (Get-Count $Hangzhou Encrypt) | Should -Be 1, 0
        (Get-Count $Shanghai GenerateDataKey), (Get-Count $Shanghai Encrypt) | Should -Be 0, 1
    }

    It 'with both regions up, Unprotect-EnvelopeFile uses the first entry and reports its key and region' {
        Reset-Stats
        $out = Join-Path $Work 'both-up.csv'
        $verbose = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -Verbose 4>&1 | ForEach-Object Message
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $Hash
        $r = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -Force -PassThru
        $r.KeyId | Should -Be $KeyA.KeyId
        $r.Region | Should -Be 'cn-hangzhou'
        ($r | Format-Table | Out-String) | Should -Match 'Region[\s\S]*cn-hangzhou'
        ($verbose -join "`n") | Should -Match "entry 1 of 2 \('$($KeyA.KeyId)', region cn-hangzhou\): unwrapped"
        ($verbose -join "`n") | Should -Not -Match 'entry 2 of 2'
        Get-Count $Shanghai Decrypt | Should -Be 0
    }

    It 'with the Hangzhou key disabled, decrypts through Shanghai, reports it, and says which entries were tried' {
        Disable-KmsKey -KeyId $KeyA.KeyId
        try {
            $out = Join-Path $Work 'disabled.csv'
            $records = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -PassThru -Verbose 4>&1
            $r = $records | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            $verbose = ($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message) -join "`n"
            $r.KeyId | Should -Be $KeyB.KeyId
            $r.Region | Should -Be 'cn-shanghai'
            (Get-FileHash -LiteralPath $out).Hash | Should -Be $Hash
            $verbose | Should -Match "entry 1 of 2 \('$($KeyA.KeyId)', region cn-hangzhou\): failed \(Refused: Rejected.Disabled"
            $verbose | Should -Match "entry 2 of 2 \('$($KeyB.KeyId)', region cn-shanghai\): Decrypt at $([regex]::Escape($Shanghai.Endpoint))"
            $verbose | Should -Match "with KMS key $($KeyB.KeyId) \(region cn-shanghai\)"
            Test-EnvelopeFile -LiteralPath $Sealed | Should -BeTrue
        }
        finally { Enable-KmsKey -KeyId $KeyA.KeyId }
    }

    It 'with -AllowedKeyId naming only the Shanghai key, Hangzhou is not asked at all' {
        Reset-Stats
        $out = Join-Path $Work 'allowed-b.csv'
        $r = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -AllowedKeyId $KeyB.Arn -PassThru
        $r.KeyId | Should -Be $KeyB.KeyId
        $r.Region | Should -Be 'cn-shanghai'
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $Hash
        (Get-Count $Hangzhou Decrypt) + (Get-Count $Hangzhou Decrypt failure) | Should -Be 0
        Get-Count $Shanghai Decrypt | Should -Be 1
    }

    It '-AllowedKeyId naming a key that is not in the file is KmsNoAllowedKey, with no output and no KMS call' {
        Reset-Stats
        $other = New-KmsKey -Description 'not in the file'
        $out = Join-Path $Work 'not-allowed.csv'
        $r = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -AllowedKeyId $other.KeyId -PassThru -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'KmsNoAllowedKey,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $err[0].Exception.Message | Should -Match "entry 1 '$($KeyA.KeyId)' \(region cn-hangzhou\): skipped: not an allowed key"
        $err[0].Exception.Message | Should -Match "entry 2 '$($KeyB.KeyId)' \(region cn-shanghai\): skipped: not an allowed key"
        Test-Path -LiteralPath $out | Should -BeFalse
        Get-ChildItem -LiteralPath $Work -Force -Filter '*.ekms-tmp' | Should -BeNullOrEmpty
        (Get-Count $Hangzhou Decrypt) + (Get-Count $Shanghai Decrypt) | Should -Be 0
    }

    It 'wraps under at most 8 keys: 8 across both regions round-trip, 9 or 17 are EnvelopeTooManyKeys and write nothing' {
        $moreA = 1..3 | ForEach-Object { (New-KmsKey -Description "a$_").KeyId }
        $moreB = 1..3 | ForEach-Object { (New-KmsKey -Description "b$_" -Endpoint $Shanghai.Endpoint -Region cn-shanghai).Arn }
        $eight = @($KeyA.KeyId) + $moreA + @($KeyB.Arn) + $moreB
        $eight.Count | Should -Be 8
        $src = Join-Path $Work 'eight.bin'
        New-RandomFile -Path $src -Length 5000
        $h = (Get-FileHash -LiteralPath $src).Hash
        Protect-EnvelopeFile -LiteralPath $src -KeyId $eight
        (Get-EnvelopeFileInfo -LiteralPath "$src.ekms").WrappedKeys.Region | Should -Be (@('cn-hangzhou') * 4 + @('cn-shanghai') * 4)
        $r = Unprotect-EnvelopeFile -LiteralPath "$src.ekms" -Destination (Join-Path $Work 'eight.out') -AllowedKeyId $moreB[2] -PassThru
        $r.Region | Should -Be 'cn-shanghai'
        (Get-FileHash -LiteralPath (Join-Path $Work 'eight.out')).Hash | Should -Be $h

        foreach ($keys in @(($eight + $KeyA.KeyId), (@($KeyA.KeyId) * 17))) {
            $dst = Join-Path $Work "too-many-$($keys.Count).ekms"
            { Protect-EnvelopeFile -LiteralPath $src -KeyId $keys -Destination $dst -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeTooManyKeys*'
            try { Protect-EnvelopeFile -LiteralPath $src -KeyId $keys -Destination $dst -ErrorAction Stop } catch { $_.CategoryInfo.Category | Should -Be 'InvalidArgument'; $_.Exception.Message | Should -Match 'At most 8' }
            Test-Path -LiteralPath $dst | Should -BeFalse
        }
    }

    It 'with the Hangzhou server stopped, decrypts through Shanghai' {
        $out = Join-Path $Work 'stopped.csv'
        Stop-TestKmsServer $Hangzhou
        $records = Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $out -PassThru -Verbose 4>&1
        $r = $records | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
        $verbose = ($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message) -join "`n"
        $r.KeyId | Should -Be $KeyB.KeyId
        $r.Region | Should -Be 'cn-shanghai'
        (Get-FileHash -LiteralPath $out).Hash | Should -Be $Hash
        $verbose | Should -Match "entry 1 of 2 \('$($KeyA.KeyId)', region cn-hangzhou\): failed \(Unavailable"
        # Only the Hangzhou key allowed, and Hangzhou is down: KmsUnavailable, nothing written.
        $none = Join-Path $Work 'none.csv'
        Unprotect-EnvelopeFile -LiteralPath $Sealed -Destination $none -AllowedKeyId $KeyA.KeyId -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'KmsUnavailable,*'
        $err[0].Exception.Message | Should -Match "entry 2 '$($KeyB.KeyId)' \(region cn-shanghai\): skipped: not an allowed key"
        Test-Path -LiteralPath $none | Should -BeFalse
    }
}

Describe 'Connect-Kms -RegionEndpoint' {
    BeforeAll {
        $script:Ca = Join-Path $TestDrive 'ca.pem'
        # Any parseable certificate will do: it is only loaded when a TLS connection is made.
        $rsa = [Security.Cryptography.RSA]::Create(2048)
        $req = [Security.Cryptography.X509Certificates.CertificateRequest]::new('CN=test ca', $rsa, 'SHA256', [Security.Cryptography.RSASignaturePadding]::Pkcs1)
        $cert = $req.CreateSelfSigned([DateTimeOffset]::UtcNow.AddDays(-1), [DateTimeOffset]::UtcNow.AddDays(1))
        Set-Content -LiteralPath $Ca -Value $cert.ExportCertificatePem()
    }
    AfterEach { Connect-Kms -Endpoint $Shanghai.Endpoint -Credential (Get-TestCredential) }

    It 'shows the mapping in Get-KmsConnection' {
        Connect-Kms -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = 'https://kms-vpc.cn-shanghai.aliyuncs.com'; 'cn-beijing' = $Shanghai.Endpoint } -Credential (Get-TestCredential)
        $c = Get-KmsConnection
        $c.RegionEndpoint['cn-shanghai'] | Should -Be 'https://kms-vpc.cn-shanghai.aliyuncs.com'
        $c.RegionEndpoint['cn-beijing'] | Should -Be $Shanghai.Endpoint
        @($c.RegionEndpoint.Keys) | Should -Be @('cn-beijing', 'cn-shanghai')
    }

    It 'uses the mapped endpoint as the main one when the connection''s own region is mapped' {
        Connect-Kms -Region cn-shanghai -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -Credential (Get-TestCredential)
        (Get-KmsKey -KeyId $KeyB.KeyId).KeyId | Should -Be $KeyB.KeyId
    }

    It 'validates each entry as -Endpoint is validated: <Name>' -ForEach @(
        @{ Name = 'not a region id'; Map = @{ 'Shanghai' = 'https://kms.example.com' } }
        @{ Name = 'a path in the URL'; Map = @{ 'cn-shanghai' = 'https://kms.example.com/kms' } }
        @{ Name = 'not a URL'; Map = @{ 'cn-shanghai' = 'ftp://kms.example.com' } }
        @{ Name = 'not a string'; Map = @{ 'cn-shanghai' = 42 } }
        @{ Name = 'empty'; Map = @{ 'cn-shanghai' = '' } }
        @{ Name = 'plain http to a remote host'; Map = @{ 'cn-shanghai' = 'http://kms.example.com' } }
    ) {
        { Connect-Kms -Region cn-hangzhou -RegionEndpoint $Map -ErrorAction Stop } | Should -Throw -ErrorId 'KmsConfigurationInvalid*'
        (Get-KmsConnection).Endpoint | Should -Be $Shanghai.Endpoint # the previous defaults are kept
    }

    It 'applies -AllowInsecureHttp and -CaCertificatePath to the region endpoints too' {
        Connect-Kms -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = 'http://kms.example.com' } -AllowInsecureHttp
        (Get-KmsConnection).AllowInsecureHttp | Should -BeTrue
        Connect-Kms -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = 'https://kms.example.com' } -CaCertificatePath $Ca
        (Get-KmsConnection).CaCertificatePath | Should -Be $Ca
        # As with -Endpoint: a CA certificate is for https endpoints only.
        { Connect-Kms -Region cn-hangzhou -RegionEndpoint @{ 'cn-shanghai' = $Shanghai.Endpoint } -CaCertificatePath $Ca -ErrorAction Stop } |
            Should -Throw -ErrorId 'KmsConfigurationInvalid*'
    }

    It 'refuses a region given both by -Endpoint with -Region and by -RegionEndpoint' {
        { Connect-Kms -Endpoint $Hangzhou.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-hangzhou' = $Shanghai.Endpoint } -ErrorAction Stop } |
            Should -Throw -ErrorId 'KmsConfigurationInvalid*'
    }
}
