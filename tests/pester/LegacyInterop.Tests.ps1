#Requires -Version 7.4
# The KMS documentation sample's legacy four-line format, end to end from the cmdlets, against an independent
# implementation: tests/interop/kms_envelope_sample.py does what a script built on the sample does (GenerateDataKey
# and Decrypt through a V1-signing client of its own, pycryptodome AES.MODE_EAX, the four base64 lines). It needs
# python3 with pycryptodome (Debian: python3-pycryptodome, which build.ps1 -Task Test installs); without it these
# tests fail, they never skip.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Python = if ($env:ENVELOPEKMS_PYTHON) { $env:ENVELOPEKMS_PYTHON } else { '/usr/bin/python3' }   # Debian's, where the package installs
    $script:Sample = Join-Path $RepoRoot 'tests/interop/kms_envelope_sample.py'
    # The script imports pycryptodome as pip installs it (Crypto) or as Debian ships it (Cryptodome).
    $probe = if (Test-Path -LiteralPath $Python) { $null = & $Python $Sample selftest 2>&1; $LASTEXITCODE } else { 'missing' }
    if ($probe -ne 0) {
        $why = if ($env:ENVELOPEKMS_PREREQUISITES_NOTE) { " ($env:ENVELOPEKMS_PREREQUISITES_NOTE)" } else { '' }
        throw "The documentation sample interop tests need '$Python' with pycryptodome (Debian package python3-pycryptodome, " +
            "which 'build.ps1 -Task Test' installs with apt-get)$why. Install it, or set ENVELOPEKMS_PYTHON to a python3 that has it."
    }

    $script:Server = Start-TestKmsServer -ArgumentList '--enable-control'
    Connect-Kms -Endpoint $Server.Endpoint -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'legacy interop key'
    $script:Alias = "alias/Apollo/WorkKey$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = $Key | New-KmsAlias -AliasName $Alias

    function Invoke-Sample {
        <# Runs the sample-style script; returns its exit code, the JSON it printed (parsed) and stderr. #>
        param([Parameter(Mandatory)][string[]] $Arguments)
        $psi = [Diagnostics.ProcessStartInfo]::new($Python)
        foreach ($a in @($Sample) + $Arguments) { $psi.ArgumentList.Add($a) }
        $psi.Environment['ALIBABA_CLOUD_ACCESS_KEY_ID'] = 'testid'
        $psi.Environment['ALIBABA_CLOUD_ACCESS_KEY_SECRET'] = 'testsecret'
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $p = [Diagnostics.Process]::Start($psi)
        $errTask = $p.StandardError.ReadToEndAsync()
        $out = $p.StandardOutput.ReadToEnd()
        $p.WaitForExit()
        [pscustomobject]@{ ExitCode = $p.ExitCode; Json = $(if ($out.Trim()) { $out | ConvertFrom-Json }); StdErr = $errTask.Result }
    }

    function New-SampleEnvelope {
        <# The sample encrypts $Path to $Path.encrypted under -Key; returns the CiphertextBlob KMS gave it. #>
        param([string] $Path, [string] $KeyId = $Alias, [string] $Newline = 'lf')
        $r = Invoke-Sample encrypt, '--endpoint', $Server.Endpoint, '--key', $KeyId, '--in', $Path, '--out', "$Path.encrypted", '--newline', $Newline
        $r.ExitCode | Should -Be 0 -Because $r.StdErr
        $r.Json.CiphertextBlob
    }

    function Get-Lines([string] $Path) { [Text.Encoding]::ASCII.GetString([IO.File]::ReadAllBytes($Path)) }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe 'The sample-style script' {
    It 'reproduces the published vectors: signature V1, and pycryptodome on the EAX vector of the reference' {
        $r = Invoke-Sample selftest
        $r.ExitCode | Should -Be 0 -Because $r.StdErr
        # alibaba-kms-api.md §1.3 (V1-c, and the KMS-flavoured GET and POST vectors)
        $r.Json.V1c | Should -Be '41wk2SSX1GJh7fwnc5eqOfiJPFg='
        $r.Json.KmsGet | Should -Be 'Gxxqv4aQVFVEijj2SzUpb3E+iWM='
        $r.Json.KmsPost | Should -Be 'GpxXdYmAdhgMqN9a6W5MqkSnIVk='
        # alibaba-kms-api.md §7: key 00..1f, nonce 00..0f, no header, "hello,world\n" (our AesEax gives the same:
        # LegacyEnvelopeTests.EaxMatchesTheSeedSampleVector, and the file test below)
        $r.Json.EaxCiphertext | Should -Be 'HPf/cKZ9clUyHgYq'
        $r.Json.EaxTag | Should -Be 'h6kkS/kO91LhwxDuaPC+uA=='
        $r.Json.EaxDefaultNonceLength | Should -Be 16
    }

    It 'and Unprotect-EnvelopeFile agree on the reference EAX vector in a real file' {
        # The vector's data key 00..1f wrapped by KMS Encrypt, then the vector's nonce, ciphertext and tag.
        $dir = New-Item -ItemType Directory (Join-Path $TestDrive 'vector')
        $blob = Protect-KmsSecret -KeyId $Key.KeyId -Bytes ([byte[]](0..31))
        $file = Join-Path $dir 'hello.txt.encrypted'
        [IO.File]::WriteAllText($file, "$blob`n$([Convert]::ToBase64String([byte[]](0..15)))`nHPf/cKZ9clUyHgYq`nh6kkS/kO91LhwxDuaPC+uA==`n")
        $r = Unprotect-EnvelopeFile -LiteralPath $file -PassThru
        $r.Format | Should -Be 'Legacy'
        [IO.File]::ReadAllText((Join-Path $dir 'hello.txt')) | Should -BeExactly "hello,world`n"
        $py = Invoke-Sample decrypt, '--endpoint', $Server.Endpoint, '--in', $file, '--out', (Join-Path $dir 'hello.py.txt')
        $py.ExitCode | Should -Be 0 -Because $py.StdErr
        [IO.File]::ReadAllText((Join-Path $dir 'hello.py.txt')) | Should -BeExactly "hello,world`n"
    }
}

Describe 'Files the sample writes, read by Unprotect-EnvelopeFile' {
    It 'decrypts a <Length>-byte file the sample encrypted, its line 1 the CiphertextBlob exactly as KMS returned it (<Newline>)' -ForEach @(
        @{ Length = 0; Newline = 'lf' }
        @{ Length = 1; Newline = 'lf' }
        @{ Length = 100000; Newline = 'lf' }
        @{ Length = 3000; Newline = 'crlf' }
    ) {
        $dir = New-Item -ItemType Directory (Join-Path $TestDrive ([guid]::NewGuid().ToString('N')))
        $src = Join-Path $dir 'sales.csv'
        New-RandomFile -Path $src -Length $Length
        $hash = (Get-FileHash -LiteralPath $src).Hash
        $blob = New-SampleEnvelope -Path $src -Newline $Newline
        $enc = "$src.encrypted"

        # The file is byte for byte what the sample writes: the blob, then the three base64 lines, each ended.
        $eol = if ($Newline -eq 'crlf') { "`r`n" } else { "`n" }
        $text = Get-Lines $enc
        $text | Should -BeLike "$blob$eol*"
        $lines = $text.Split($eol)
        $lines.Count | Should -Be 5
        $lines[4] | Should -BeExactly ''
        [Convert]::FromBase64String($lines[1]).Length | Should -Be 16
        [Convert]::FromBase64String($lines[2]).Length | Should -Be $Length
        [Convert]::FromBase64String($lines[3]).Length | Should -Be 16

        (Get-EnvelopeFileInfo -LiteralPath $enc).Format | Should -Be 'Legacy'
        Test-EnvelopeFile -LiteralPath $enc | Should -BeTrue
        Move-Item -LiteralPath $src -Destination "$src.orig"
        $r = Unprotect-EnvelopeFile -LiteralPath $enc -PassThru
        $r.Path | Should -Be $src  # .encrypted removed, as for the sample's names
        $r.Format | Should -Be 'Legacy'
        $r.KeyId | Should -Be $Key.KeyId
        (Get-FileHash -LiteralPath $src).Hash | Should -Be $hash
    }
}

Describe 'Files Protect-EnvelopeFile -Format Legacy writes, read by the sample' {
    It 'the sample decrypts a <Length>-byte file, passing line 1 with its newline to Decrypt as the sample does' -ForEach @(
        @{ Length = 0 }
        @{ Length = 1 }
        @{ Length = 65537 }
    ) {
        $dir = New-Item -ItemType Directory (Join-Path $TestDrive ([guid]::NewGuid().ToString('N')))
        $src = Join-Path $dir 'ledger.bin'
        New-RandomFile -Path $src -Length $Length
        $null = Invoke-KmsControl $Server 'reset-stats' -Method POST
        Protect-EnvelopeFile -LiteralPath $src -KeyId $Alias -Format Legacy -Destination "$src.encrypted"
        $text = Get-Lines "$src.encrypted"
        $text.Split("`n").Count | Should -Be 5

        $out = Join-Path $dir 'ledger.out'
        $r = Invoke-Sample decrypt, '--endpoint', $Server.Endpoint, '--in', "$src.encrypted", '--out', $out
        $r.ExitCode | Should -Be 0 -Because $r.StdErr
        $r.Json.CiphertextBlobSent | Should -BeExactly "$($text.Split("`n")[0])`n"   # the newline did travel to KMS
        (Invoke-KmsControl $Server 'stats').operations.Decrypt.success | Should -Be 1
        (Get-FileHash -LiteralPath $out).Hash | Should -Be (Get-FileHash -LiteralPath $src).Hash
    }
}

Describe 'Tampered legacy files' {
    BeforeAll {
        $script:TamperDir = New-Item -ItemType Directory (Join-Path $TestDrive 'tamper')
        $script:Good = Join-Path $TamperDir 'good.csv'
        New-RandomFile -Path $Good -Length 4096
        $null = New-SampleEnvelope -Path $Good
        $script:GoodLines = (Get-Lines "$Good.encrypted").Split("`n")
        $script:OtherKey = New-KmsKey -Description 'another key'
        $other = Join-Path $TamperDir 'other.csv'
        New-RandomFile -Path $other -Length 10
        $null = New-SampleEnvelope -Path $other -KeyId $OtherKey.KeyId
        $script:OtherBlob = (Get-Lines "$other.encrypted").Split("`n")[0]

    }

    It '<Name>: Unprotect-EnvelopeFile fails with <ErrorId>, writes nothing, and is left as it was' -ForEach @(
        @{ Name = 'tag flipped'; Edit = 'tag'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'ciphertext flipped'; Edit = 'ciphertext'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'nonce flipped'; Edit = 'nonce'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'the blob of another data key'; Edit = 'other-blob'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'three lines'; Edit = 'three-lines'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'a 12-byte nonce'; Edit = 'short-nonce'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        @{ Name = 'bad base64 tag'; Edit = 'tag-star'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $true }
        # The sample's b64decode silently drops characters outside the alphabet, so it decrypts this one; we refuse.
        @{ Name = 'bad base64 ciphertext'; Edit = 'ciphertext-bang'; ErrorId = 'EnvelopeLegacyInvalid'; SampleRefuses = $false }
        @{ Name = 'bad base64 first line'; Edit = 'blob-hash'; ErrorId = 'EnvelopeNotRecognized'; SampleRefuses = $true }
    ) {
        $dir = New-Item -ItemType Directory (Join-Path $TamperDir ([guid]::NewGuid().ToString('N')))
        $file = Join-Path $dir 'data.csv.encrypted'
        $l = [string[]] $GoodLines.Clone()
        $flip = { param([string] $s) $(if ($s[0] -eq 'A') { 'B' } else { 'A' }) + $s.Substring(1) }
        switch ($Edit) {
            'tag' { $l[3] = & $flip $l[3] }
            'ciphertext' { $l[2] = & $flip $l[2] }
            'nonce' { $l[1] = & $flip $l[1] }
            'other-blob' { $l[0] = $OtherBlob }
            'three-lines' { $l = @($l[0], $l[1], $l[2], '') }
            'short-nonce' { $l[1] = [Convert]::ToBase64String([byte[]](1..12)) }
            'tag-star' { $l[3] = $l[3].Substring(0, 10) + '*' + $l[3].Substring(11) }
            'ciphertext-bang' { $l[2] = '!!' + $l[2] }
            'blob-hash' { $l[0] = '#' + $l[0] }
        }
        [IO.File]::WriteAllText($file, ($l -join "`n"))
        $before = (Get-FileHash -LiteralPath $file).Hash

        $r = Unprotect-EnvelopeFile -LiteralPath $file -PassThru -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike "$ErrorId,*"
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        Get-ChildItem -LiteralPath $dir -Force | ForEach-Object Name | Should -Be 'data.csv.encrypted'   # no output, no temp file
        (Get-FileHash -LiteralPath $file).Hash | Should -Be $before
        Test-EnvelopeFile -LiteralPath $file | Should -BeFalse

        # The independent side agrees that the change breaks the file (a check that the tampering is real).
        $py = Invoke-Sample decrypt, '--endpoint', $Server.Endpoint, '--in', $file, '--out', (Join-Path $dir 'py.out')
        ($py.ExitCode -ne 0) | Should -Be $SampleRefuses -Because $py.StdErr
    }

    It 'the untampered file still decrypts (the cases above fail for what was changed)' {
        $file = Join-Path $TamperDir 'good-copy.csv.encrypted'
        [IO.File]::WriteAllText($file, ($GoodLines -join "`n"))
        $r = Unprotect-EnvelopeFile -LiteralPath $file -PassThru
        (Get-FileHash -LiteralPath $r.Path).Hash | Should -Be (Get-FileHash -LiteralPath $Good).Hash
    }
}
