#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Get-Help works for every exported cmdlet, from the MAML that the build generates out of docs/en-US.

BeforeDiscovery {
    $moduleRoot = if ($env:ENVELOPEKMS_MODULE) { $env:ENVELOPEKMS_MODULE } else { Join-Path $PSScriptRoot '../../out/EnvelopeKms' }
    # The manifest names the cmdlets; reading it does not load the module.
    $manifest = Import-PowerShellDataFile -LiteralPath (Join-Path $moduleRoot 'EnvelopeKms.psd1')
    $cmdlets = @($manifest.CmdletsToExport | ForEach-Object { @{ Name = $_ } })
}

BeforeAll {
    $moduleRoot = if ($env:ENVELOPEKMS_MODULE) { $env:ENVELOPEKMS_MODULE } else { Join-Path $PSScriptRoot '../../out/EnvelopeKms' }
    $module = Import-Module (Join-Path $moduleRoot 'EnvelopeKms.psd1') -Force -PassThru
    $commonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters
    function Get-Text($Value) { (@($Value | ForEach-Object { $_.Text }) -join "`n").Trim() }
}

AfterAll {
    Remove-Module EnvelopeKms -Force -ErrorAction SilentlyContinue
}

Describe 'Help files in the staged module' {
    It 'has the MAML help for the binary module next to the manifest' {
        Join-Path $module.ModuleBase 'en-US/EnvelopeKms.dll-Help.xml' | Should -Exist
    }

    It 'has about_EnvelopeKms next to the manifest' {
        Join-Path $module.ModuleBase 'en-US/about_EnvelopeKms.help.txt' | Should -Exist
    }

    It 'exports every cmdlet the manifest lists' {
        $listed = (Import-PowerShellDataFile -LiteralPath (Join-Path $module.ModuleBase 'EnvelopeKms.psd1')).CmdletsToExport
        @($module.ExportedCmdlets.Keys | Sort-Object) | Should -Be @($listed | Sort-Object)
    }
}

Describe 'Get-Help <Name>' -ForEach $cmdlets {
    BeforeAll {
        $command = Get-Command -Name $Name -Module EnvelopeKms
        $help = Get-Help -Name $Name -Full
        $examples = Get-Help -Name $Name -Examples
    }

    It 'comes from the MAML file' {
        $help.PSObject.TypeNames | Should -Contain 'MamlCommandHelpInfo'
    }

    It 'has a synopsis that is not the generated one' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        # Without help, Get-Help uses the syntax ("Name [-Param] <type> ...") or just the name as the synopsis.
        $help.Synopsis.Trim() | Should -Not -Match ('^' + [regex]::Escape($Name) + '(\s|$)')
    }

    It 'has a description' {
        Get-Text $help.description | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code and an explanation' {
        $list = @($examples.examples.example)
        $list.Count | Should -BeGreaterThan 0
        foreach ($example in $list) {
            $example.code | Should -Not -BeNullOrEmpty
            Get-Text $example.remarks | Should -Not -BeNullOrEmpty
        }
    }

    It 'describes every parameter' {
        foreach ($parameter in @($help.parameters.parameter)) {
            if (-not $parameter) { continue }
            Get-Text $parameter.description | Should -Not -BeNullOrEmpty -Because "-$($parameter.name) needs a description"
        }
    }

    It 'documents every real parameter, and only those' {
        $real = @($command.Parameters.Keys | Where-Object { $_ -notin $commonParameters } | Sort-Object)
        $documented = @($help.parameters.parameter | Where-Object { $_ } | ForEach-Object { $_.name } | Sort-Object)
        $documented | Should -Be $real
    }

    It 'has an online version: an absolute https URI of its page, first among the related links (Get-Help -Online opens it)' {
        $links = @($help.relatedLinks.navigationLink)
        $first = $links[0].uri
        $uri = $null
        [uri]::TryCreate($first, [UriKind]::Absolute, [ref] $uri) | Should -BeTrue -Because "'$first' must be absolute"
        $uri.Scheme | Should -Be 'https'
        $first | Should -Be "https://github.com/envelopekms/EnvelopeKms/blob/main/docs/en-US/$Name.md"
        # No related link is relative either (a relative one is what made -Online fail before).
        foreach ($link in $links | Where-Object { $_.uri }) { [uri]::IsWellFormedUriString($link.uri, [UriKind]::Absolute) | Should -BeTrue -Because "'$($link.uri)' must be absolute" }
    }

    It 'shows the real parameter sets in SYNTAX' {
        @($help.syntax.syntaxItem).Count | Should -Be @($command.ParameterSets).Count
    }
}

Describe 'Get-Help about_EnvelopeKms' {
    It 'finds the topic' {
        $text = Get-Help -Name about_EnvelopeKms -ErrorAction Stop | Out-String
        $text | Should -Match 'about_EnvelopeKms'
        $text | Should -Match 'SHORT DESCRIPTION'
        $text | Should -Match 'Connect-Kms'
    }

    It 'lists every error id of the catalogue with its category, and no other' {
        $catalogue = [EnvelopeKms.PowerShell.Errors.ErrorIds]::All
        $text = Get-Content -LiteralPath (Join-Path $module.ModuleBase 'en-US/about_EnvelopeKms.help.txt') -Raw
        $listed = @([regex]::Matches($text, '(?m)^\s+((?:Envelope|Kms)[A-Za-z0-9]+) \(([A-Za-z]+)') | ForEach-Object { "$($_.Groups[1].Value) $($_.Groups[2].Value)" })
        $listed | Should -Be @($catalogue | ForEach-Object { "$($_.Name) $($_.Category)" })
    }
}

Describe 'Error ids the tests expect' {
    It 'are all in the catalogue' {
        # Every FullyQualifiedErrorId a Pester file asserts must be one the module can raise.
        $catalogue = @([EnvelopeKms.PowerShell.Errors.ErrorIds]::All | ForEach-Object Name)
        $asserted = foreach ($file in Get-ChildItem -LiteralPath $PSScriptRoot -Filter '*.Tests.ps1') {
            $content = Get-Content -LiteralPath $file.FullName -Raw
            foreach ($m in [regex]::Matches($content, "(?:-ErrorId|Should -BeLike|Should -Be|Should -Contain|ErrorId =|Id =)\s*['""]((?:Envelope|Kms)[A-Z][A-Za-z0-9]+)[,*'""]")) { $m.Groups[1].Value }
        }
        @($asserted | Sort-Object -Unique).Count | Should -BeGreaterThan 25
        @($asserted | Sort-Object -Unique | Where-Object { $_ -cnotin $catalogue }) | Should -BeNullOrEmpty
    }
}
