#Requires -Version 7.4
# Issue 17 point 8, "output you can pipe on", and issue 16 step 4's read/write failures: -PassThru objects in input
# order while files run in parallel; -ErrorAction Stop stops starting files; Test-EnvelopeFile objects that name
# each file in a batch and a bare boolean for one file named by parameter; an unreadable source is a read failure
# and an unwritable destination a write failure.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    Import-Module (Join-Path $ModulePath 'EnvelopeKms.psd1') -Force
    $script:Server = Start-TestKmsServer
    $script:Work = Join-Path $TestDrive 'work'
    $null = New-Item -ItemType Directory -Path $Work
    Connect-Kms -Endpoint $Server.Endpoint -Region cn-hangzhou -Credential (Get-TestCredential)
    $script:Key = New-KmsKey -Description 'batch output key'

    function New-MixedTree([string] $Name) {
        # Large files among small ones: the small ones after a large one complete before it.
        $dir = Join-Path $Work $Name
        $null = New-Item -ItemType Directory -Path $dir
        $sizes = @(24MB) + @(1KB) * 12 + @(12MB) + @(100) * 12
        for ($i = 0; $i -lt $sizes.Count; $i++) { New-RandomFile -Path (Join-Path $dir ('{0:00}.bin' -f $i)) -Length $sizes[$i] }
        $dir
    }
}

AfterAll {
    Disconnect-Kms
    Stop-TestKmsServer $Server
}

Describe '-PassThru in input order' {
    It 'Protect and Unprotect write their objects in the order of the input, not of completion' {
        $dir = New-MixedTree 'order'
        $inputs = @(Get-ChildItem -LiteralPath $dir -File | Sort-Object Name)
        $protected = @($inputs | Protect-EnvelopeFile -KeyId $Key.KeyId -ThrottleLimit 8 -PassThru)
        $protected.Source | Should -Be $inputs.FullName
        $protected.Path | Should -Be ($inputs.FullName | ForEach-Object { "$_.ekms" })
        $inputs | Remove-Item
        $unprotected = @($protected | Unprotect-EnvelopeFile -ThrottleLimit 8 -PassThru)
        $unprotected.Path | Should -Be $inputs.FullName
        $unprotected.Source | Should -Be $protected.Path
    }

    It 'errors take the place of their input among the objects' {
        $dir = New-MixedTree 'errors'
        $inputs = @(Get-ChildItem -LiteralPath $dir -File | Sort-Object Name)
        # The output of input 5 exists already: its error comes between the objects of inputs 4 and 6.
        Set-Content -LiteralPath "$($inputs[5].FullName).ekms" -Value 'taken'
        $stream = @($inputs | Protect-EnvelopeFile -KeyId $Key.KeyId -ThrottleLimit 8 -PassThru -ErrorAction Continue 2>&1)
        $stream.Count | Should -Be $inputs.Count
        $stream[5] | Should -BeOfType [System.Management.Automation.ErrorRecord]
        $stream[5].FullyQualifiedErrorId | Should -BeLike 'EnvelopeDestinationExists,*'
        $stream[5].TargetObject | Should -Be $inputs[5].FullName
        ($stream | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }).Source | Should -Be ($inputs.FullName | Where-Object { $_ -ne $inputs[5].FullName })
    }
}

Describe '-ErrorAction Stop' {
    It 'a refused early input stops the batch before any later file is started' {
        $dir = Join-Path $Work 'stop-refused'
        $null = New-Item -ItemType Directory -Path $dir
        1..40 | ForEach-Object { Set-Content -LiteralPath (Join-Path $dir ('{0:00}.txt' -f $_)) -Value "file $_" }
        $inputs = @(Get-ChildItem -LiteralPath $dir -File | Sort-Object Name)
        Set-Content -LiteralPath "$($inputs[2].FullName).ekms" -Value 'taken'
        { $inputs | Protect-EnvelopeFile -KeyId $Key.KeyId -ThrottleLimit 4 -ErrorAction Stop } | Should -Throw -ErrorId 'EnvelopeDestinationExists,*'
        # Nothing after the failing input was written; nothing half-written is left.
        foreach ($later in $inputs | Select-Object -Last ($inputs.Count - 3)) { Test-Path -LiteralPath "$($later.FullName).ekms" | Should -BeFalse }
        Get-Content -LiteralPath "$($inputs[2].FullName).ekms" | Should -Be 'taken'
        Get-EkmsTempFile $dir | Should -BeNullOrEmpty
    }

    It 'a file failing in flight stops the batch: files in flight are cancelled, completed ones stay whole' {
        $dir = Join-Path $Work 'stop-inflight'
        $null = New-Item -ItemType Directory -Path $dir
        $plain = 1..300 | ForEach-Object {
            $p = Join-Path $dir ('{0:000}.txt' -f $_)
            Set-Content -LiteralPath $p -Value "content $_"
            $p
        }
        $sealed = @(Protect-EnvelopeFile -LiteralPath $plain -KeyId $Key.KeyId -PassThru)
        Remove-Item -LiteralPath $plain
        # The first input is not an envelope file: it fails at once, while the others are queued behind it.
        $bad = Join-Path $dir '000.txt.ekms'
        Set-Content -LiteralPath $bad -Value 'not an envelope file'
        # A runbook's habit: the preference, not the parameter.
        { $ErrorActionPreference = 'Stop'; @(Get-Item -LiteralPath $bad) + $sealed | Unprotect-EnvelopeFile -ThrottleLimit 2 } | Should -Throw -ErrorId 'EnvelopeNotRecognized,*'
        $written = @(Get-ChildItem -LiteralPath $dir -Filter *.txt)
        $written.Count | Should -BeLessThan 300
        foreach ($file in $written) { Get-Content -LiteralPath $file.FullName | Should -Be "content $([int]$file.BaseName)" }
        Get-EkmsTempFile $dir | Should -BeNullOrEmpty
    }
}

Describe 'Test-EnvelopeFile results' {
    BeforeAll {
        $script:TestDir = Join-Path $Work 'test'
        $null = New-Item -ItemType Directory -Path $TestDir
        'a', 'b' | ForEach-Object { Set-Content -LiteralPath (Join-Path $TestDir "$_.txt") -Value $_ }
        $script:Good = @(Get-ChildItem -LiteralPath $TestDir -Filter *.txt | Protect-EnvelopeFile -KeyId $Key.KeyId -PassThru).Path
        $script:Bad = Join-Path $TestDir 'c.txt.ekms'
        Set-Content -LiteralPath $Bad -Value 'not an envelope'
    }

    It 'a batch returns one object per file, naming it, with the error id and message of a failure' {
        $results = @(Get-ChildItem -LiteralPath $TestDir -Filter *.ekms | Sort-Object Name | Test-EnvelopeFile)
        $results.Count | Should -Be 3
        $results[0].PSObject.TypeNames[0] | Should -Be 'EnvelopeKms.PowerShell.EnvelopeFileTestResult'
        $results.Path | Should -Be (@($Good) + $Bad)
        $results.Result | Should -Be @($true, $true, $false)
        $results[0].ErrorId | Should -BeNullOrEmpty
        $results[2].ErrorId | Should -Be 'EnvelopeNotRecognized'
        $results[2].Message | Should -Not -BeNullOrEmpty
        ($results | Format-Table | Out-String) | Should -Match 'EnvelopeNotRecognized'
    }

    It 'several files named by parameter are a batch too' {
        $results = @(Test-EnvelopeFile -LiteralPath $Good[0], $Bad)
        $results.Path | Should -Be @($Good[0], $Bad)
        $results.Result | Should -Be @($true, $false)
    }

    It 'one file named by parameter answers with a bare boolean' {
        Test-EnvelopeFile -LiteralPath $Good[0] | Should -BeOfType [bool]
        Test-EnvelopeFile -LiteralPath $Good[0] | Should -BeTrue
        Test-EnvelopeFile $Bad | Should -BeOfType [bool]
        Test-EnvelopeFile $Bad | Should -BeFalse
        Push-Location $TestDir
        try { Test-EnvelopeFile a.txt.ek?s | Should -BeOfType [bool] } finally { Pop-Location }
        $answer = if (Test-EnvelopeFile $Bad) { 'yes' } else { 'no' }
        $answer | Should -Be 'no'
    }
}

Describe 'Read failures of the source, write failures of the destination' {
    BeforeAll {
        # As root, file modes do not stop reads or writes: the child runs without the capabilities that bypass them.
        $script:Runner = @(if ([Environment]::UserName -eq 'root' -or (& id -u) -eq '0') { 'setpriv', '--bounding-set', '-dac_override,-dac_read_search' }) + (Get-TestPwshCommand)
        function Invoke-Restricted([string] $Body) {
            $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$(Join-Path $ModulePath 'EnvelopeKms.psd1')'
Connect-Kms -Endpoint '$($Server.Endpoint)' -Region cn-hangzhou -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))
$Body
`$Error | ForEach-Object { [pscustomobject]@{ Id = `$_.FullyQualifiedErrorId; Category = [string]`$_.CategoryInfo.Category; Message = `$_.Exception.Message } } | ConvertTo-Json -AsArray
"@
            $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($script))
            $exe = $Runner[0]
            $rest = @($Runner | Select-Object -Last ($Runner.Count - 1))
            $out = & $exe @rest -NoProfile -NonInteractive -EncodedCommand $encoded 2>$null
            @((-join $out) | ConvertFrom-Json)
        }
    }

    It 'Protect: an unreadable source is EnvelopeReadFailed (ReadError), naming the file, which is left as it was' {
        $dir = Join-Path $Work 'unreadable'
        $null = New-Item -ItemType Directory -Path $dir
        $source = Join-Path $dir 'secret.txt'
        Set-Content -LiteralPath $source -Value 'secret'
        [IO.File]::SetUnixFileMode($source, [IO.UnixFileMode]::None)
        try {
            $errors = Invoke-Restricted "Protect-EnvelopeFile -LiteralPath '$source' -KeyId '$($Key.KeyId)'"
        }
        finally { [IO.File]::SetUnixFileMode($source, [IO.UnixFileMode]'UserRead, UserWrite') }
        $errors.Count | Should -Be 1
        $errors[0].Id | Should -BeLike 'EnvelopeReadFailed,*'
        $errors[0].Category | Should -Be 'ReadError'
        $errors[0].Message | Should -BeLike "*$source*"
        Get-Content -LiteralPath $source | Should -Be 'secret'
        Test-Path -LiteralPath "$source.ekms" | Should -BeFalse
        Get-EkmsTempFile $dir | Should -BeNullOrEmpty
    }

    It 'Unprotect: an unwritable destination folder is EnvelopeWriteFailed (WriteError); the source is left as it was' {
        $dir = Join-Path $Work 'unwritable'
        $out = Join-Path $dir 'out'
        $null = New-Item -ItemType Directory -Path $out
        $source = Join-Path $dir 'data.txt'
        Set-Content -LiteralPath $source -Value 'data'
        $sealed = (Protect-EnvelopeFile -LiteralPath $source -KeyId $Key.KeyId -PassThru).Path
        $hash = (Get-FileHash -LiteralPath $sealed).Hash
        [IO.File]::SetUnixFileMode($out, [IO.UnixFileMode]'UserRead, UserExecute')
        try {
            $errors = Invoke-Restricted "Unprotect-EnvelopeFile -LiteralPath '$sealed' -Destination '$out/'"
        }
        finally { [IO.File]::SetUnixFileMode($out, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute') }
        $errors.Count | Should -Be 1
        $errors[0].Id | Should -BeLike 'EnvelopeWriteFailed,*'
        $errors[0].Category | Should -Be 'WriteError'
        (Get-FileHash -LiteralPath $sealed).Hash | Should -Be $hash
        @(Get-ChildItem -LiteralPath $out -Force).Count | Should -Be 0
    }

    It 'Protect: an unwritable destination folder is EnvelopeWriteFailed (WriteError)' {
        $dir = Join-Path $Work 'unwritable2'
        $out = Join-Path $dir 'out'
        $null = New-Item -ItemType Directory -Path $out
        $source = Join-Path $dir 'data.txt'
        Set-Content -LiteralPath $source -Value 'data'
        [IO.File]::SetUnixFileMode($out, [IO.UnixFileMode]'UserRead, UserExecute')
        try {
            $errors = Invoke-Restricted "Protect-EnvelopeFile -LiteralPath '$source' -KeyId '$($Key.KeyId)' -Destination '$out/'"
        }
        finally { [IO.File]::SetUnixFileMode($out, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute') }
        $errors.Count | Should -Be 1
        $errors[0].Id | Should -BeLike 'EnvelopeWriteFailed,*'
        $errors[0].Category | Should -Be 'WriteError'
        Get-Content -LiteralPath $source | Should -Be 'data'
    }
}
