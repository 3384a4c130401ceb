#Requires -Version 7.4
# The suite runs on each PowerShell the manifest supports (build.ps1 -Task Test). What it starts and loads must be
# that PowerShell's own: a child pwsh of another version (whatever `dotnet pwsh` finds), or the modules another
# version bundles on an inherited PSModulePath, would test 7.4 on 7.6 without anyone noticing.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
}

Describe 'The pwsh under test' {
    It 'starts child pwsh processes of its own PowerShell and .NET versions' {
        $p = Start-TestPwsh -Script '"$($PSVersionTable.PSVersion) $([Environment]::Version) $PSHOME"'
        $stderr = $p.StandardError.ReadToEndAsync()
        $out = $p.StandardOutput.ReadToEnd()
        $p.WaitForExit()
        $p.ExitCode | Should -Be 0 -Because $stderr.Result
        $out.Trim() | Should -Be "$($PSVersionTable.PSVersion) $([Environment]::Version) $PSHOME"
    }

    It 'has no other PowerShell''s modules on its module path' {
        # A PowerShell's own module folder is <PSHOME>/Modules, beside its System.Management.Automation.dll.
        $homes = @($env:PSModulePath -split [IO.Path]::PathSeparator | Where-Object {
                $_ -and (Test-Path -LiteralPath (Join-Path (Split-Path $_) 'System.Management.Automation.dll'))
            } | ForEach-Object { [IO.Path]::GetFullPath($_).TrimEnd('/') })
        $homes | Should -Be @([IO.Path]::GetFullPath((Join-Path $PSHOME 'Modules')).TrimEnd('/'))
    }
}
