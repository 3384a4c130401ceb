#Requires -Version 7.4
# Issue 18, "one hostile file must not spoil the batch": a file whose wrapped key names a region that cannot be
# reached, labelled with the allowed key's id, passes -AllowedKeyId and fails after its retries; that used to open
# the circuit breaker for the whole batch, so every genuine file after it failed with "Not calling KMS for another
# 30 s". The hostile file is written by the independent implementation (tests/interop/ekms.mjs); the unreachable
# region is mapped to a loopback port nothing listens on.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    $script:Work = Join-Path $TestDrive 'work'
    $null = New-Item -ItemType Directory -Path $Work
    # Port 9 (discard) on loopback: nothing listens there in the test environment, so connections are refused at once.
    Connect-Kms -Endpoint $Server.Endpoint -Region cn-hangzhou -RegionEndpoint @{ 'cn-unreachable' = 'http://127.0.0.1:9' } -Credential (Get-TestCredential) -MaxAttempts 2
    $script:Key = New-KmsKey -Description 'batch key'
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'A hostile file in a batch' {
    It 'fails alone; the genuine files of the batch decrypt (-ThrottleLimit <Throttle>, <Hostile> hostile)' -ForEach @(
        @{ Throttle = 1; Hostile = 1 }
        @{ Throttle = 4; Hostile = 4 }
    ) {
        $dir = Join-Path $Work "t$Throttle"
        $null = New-Item -ItemType Directory -Path $dir
        $plain = Join-Path $dir 'plain.bin'
        New-RandomFile -Path $plain -Length 1000
        $hostileFiles = 1..$Hostile | ForEach-Object {
            $path = Join-Path $dir "0$_-hostile.ekms"
            $keyHex = -join (1..32 | ForEach-Object { '{0:x2}' -f (Get-Random -Maximum 256) })
            & node (Join-Path $RepoRoot 'tests/interop/ekms.mjs') encrypt --key-hex $keyHex --in $plain --out $path `
                --key-id $Key.KeyId --region cn-unreachable --blob ([Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("hostile-$_")))
            $LASTEXITCODE | Should -Be 0
            $path
        }
        $genuine = 1..6 | ForEach-Object {
            $source = Join-Path $dir "1$_-genuine.txt"
            Set-Content -LiteralPath $source -Value "genuine $_" -NoNewline
            Protect-EnvelopeFile -LiteralPath $source -KeyId $Key.KeyId
            Remove-Item -LiteralPath $source
            "$source.ekms"
        }
        $all = @($hostileFiles) + @($genuine) # the hostile files come first

        $results = Unprotect-EnvelopeFile -LiteralPath $all -AllowedKeyId $Key.KeyId -ThrottleLimit $Throttle -PassThru -ErrorVariable err -ErrorAction SilentlyContinue
        @($results).Count | Should -Be 6
        1..6 | ForEach-Object { Get-Content -LiteralPath (Join-Path $dir "1$_-genuine.txt") -Raw | Should -Be "genuine $_" }
        @($err).Count | Should -Be $Hostile
        foreach ($e in $err) {
            $e.FullyQualifiedErrorId | Should -BeLike 'KmsUnavailable,*'
            "$($e.TargetObject)" | Should -Match 'hostile'
        }
    }
}
