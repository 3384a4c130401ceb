#Requires -Version 7.4
# The benchmark's short form (tools/Bench.ps1 -Short -NoInstall) runs to the end against the staged module and
# writes its results. No timing is asserted: only that it completes and reports the module's rows and KMS calls.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:BenchOut = Join-Path $TestDrive 'bench'
    $env:ENVELOPEKMS_MODULE = $ModulePath
    $env:ENVELOPEKMS_SERVER = $ServerDll
    # A fresh pwsh, as build.ps1 -Task Bench runs it (this process may have the module loaded already), of the same
    # PowerShell version as this one: the suite runs on each version the module supports.
    $pwsh = Get-TestPwshCommand
    $script:BenchOutput = & $pwsh[0] @($pwsh | Select-Object -Last ($pwsh.Count - 1)) -NoProfile -NonInteractive -File (Join-Path $RepoRoot 'tools/Bench.ps1') `
        -Short -NoInstall -RepoRoot $RepoRoot -ModulePath $ModulePath -ServerPath $ServerDll -OutPath $BenchOut 2>&1
    $script:BenchExit = $LASTEXITCODE
    $script:ResultsJson = Join-Path $BenchOut 'results.json'
    $script:ResultsMd = Join-Path $BenchOut 'results.md'
}

Describe 'tools/Bench.ps1 -Short' {
    It 'completes and writes results.md and results.json' {
        $BenchExit | Should -Be 0 -Because ($BenchOutput -join "`n")
        $ResultsJson | Should -Exist
        $ResultsMd | Should -Exist
    }

    It 'reports the module encrypting and decrypting each input' {
        $results = Get-Content -LiteralPath $ResultsJson -Raw | ConvertFrom-Json
        $module = @($results.Rows | Where-Object Tool -EQ 'EnvelopeKms')
        foreach ($size in '8 MiB', '1 MiB', '50 x 4 KiB') {
            foreach ($op in 'encrypt', 'decrypt') {
                $row = @($module | Where-Object { $_.Size -eq $size -and $_.Operation -eq $op })
                $row.Count | Should -Be 1 -Because "the module's $size $op row"
                $row[0].MedianSeconds | Should -BeGreaterThan 0
            }
        }
        foreach ($size in '8 MiB', '1 MiB') {
            $row = @($module | Where-Object { $_.Size -eq $size -and $_.Operation -eq 'update (-AddKeyId)' })
            $row.Count | Should -Be 1 -Because "the module's $size Update-EnvelopeFileKey row"
            $row[0].MedianSeconds | Should -BeGreaterThan 0
        }
        @($results.Goals | Where-Object Goal -Like 'Update-EnvelopeFileKey*').Count | Should -Be 1
        @($results.Rows | Where-Object Tool -EQ 'EnvelopeKms (KMS +50 ms latency)').Count | Should -Be 2
        $results.ImportConnectSeconds | Should -BeGreaterThan 0
        Get-Content -LiteralPath $ResultsMd -Raw | Should -Match '\| EnvelopeKms \| 8 MiB \| encrypt \|'
    }

    It 'reports the CPU of the module''s timed file runs' {
        $results = Get-Content -LiteralPath $ResultsJson -Raw | ConvertFrom-Json
        foreach ($size in '8 MiB', '1 MiB') {
            foreach ($op in 'encrypt', 'decrypt') {
                $row = @($results.ModuleCpu | Where-Object { $_.Size -eq $size -and $_.Operation -eq $op })
                $row.Count | Should -Be 1 -Because "the CPU of the module's $size $op runs"
                $row[0].Runs | Should -Be 1
                $row[0].MedianCpuSeconds | Should -BeGreaterThan 0
                # This pwsh's background JIT thread is found on Linux, where the tests run; its time may be zero.
                $row[0].MedianJitCpuSeconds | Should -Not -BeNullOrEmpty
                $row[0].MedianJitCpuSeconds | Should -BeLessOrEqual $row[0].MedianCpuSeconds
            }
        }
        Get-Content -LiteralPath $ResultsMd -Raw | Should -Match "CPU of the module's timed file runs"
    }

    It 'reports the KMS calls of the batch' {
        $results = Get-Content -LiteralPath $ResultsJson -Raw | ConvertFrom-Json
        $calls = @($results.KmsCalls.Runs | Where-Object Latency -EQ 0)
        $calls.Count | Should -BeGreaterThan 0
        $calls[0].GenerateDataKey | Should -BeOfType [long]
        $calls[0].Decrypt | Should -BeOfType [long]
        @($results.Goals | Where-Object Goal -Like 'exactly one GenerateDataKey*').Count | Should -Be 1
        Get-Content -LiteralPath $ResultsMd -Raw | Should -Match 'KMS calls'
    }
}
