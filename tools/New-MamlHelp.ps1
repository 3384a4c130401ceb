#Requires -Version 7.4
<#
.SYNOPSIS
    Turns the platyPS-style markdown in docs/en-US into the module's MAML help and about_ topic.

.DESCRIPTION
    platyPS is not available here, so this script does the part of New-ExternalHelp the module needs:

      * <Cmdlet>.md          -> one <command:command> in <OutputPath>/<HelpFile> (EnvelopeKms.dll-Help.xml)
      * about_<Topic>.md     -> <OutputPath>/about_<Topic>.help.txt

    The markdown gives what a person writes: the online version (front matter, written as the first related link
    as platyPS does, so Get-Help -Online opens it; relative links to sibling pages are made absolute against it), synopsis, description, examples, parameter descriptions, inputs,
    outputs, notes and related links. Everything that can drift from the code is read from the real cmdlets
    instead: SYNTAX, and each parameter's type, parameter sets, required/position, pipeline input, wildcards,
    aliases, valid values and default value. That metadata is read in a child pwsh that imports the staged module,
    so the calling process never loads (and, on Windows, never locks) the module's assemblies.

    The script fails, listing every problem at once, when an exported cmdlet has no markdown, a markdown file names
    a cmdlet the module does not export, a documented parameter does not exist, a real parameter (other than the
    common parameters) is not documented, a cmdlet lacks an absolute https online version, a synopsis, a description or an example, or an
    example lacks its code block or the explanation after it.

    A parameter's default value comes from a fresh instance of the cmdlet class; a ```yaml block under the
    parameter with a "Default value:" line overrides it (for defaults that depend on the machine).

.PARAMETER SourcePath
    The folder with the markdown (docs/en-US).

.PARAMETER OutputPath
    The culture folder to write (for example out/EnvelopeKms/en-US: next to the manifest, where Get-Help looks).

.PARAMETER ModulePath
    The staged module folder (with the .psd1). Defaults to the parent of OutputPath.

.EXAMPLE
    dotnet pwsh -NoProfile -File tools/New-MamlHelp.ps1 -SourcePath docs/en-US -OutputPath out/EnvelopeKms/en-US -ModulePath out/EnvelopeKms
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $SourcePath,
    [Parameter(Mandatory)] [string] $OutputPath,
    [string] $ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$SourcePath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($SourcePath)
$OutputPath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($OutputPath)
if (-not $ModulePath) { $ModulePath = Split-Path -Parent $OutputPath }
$ModulePath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($ModulePath)
if (-not (Test-Path -LiteralPath $SourcePath -PathType Container)) { throw "New-MamlHelp: no help sources at '$SourcePath'." }
$manifest = Get-ChildItem -LiteralPath $ModulePath -Filter '*.psd1' -File | Select-Object -First 1
if (-not $manifest) { throw "New-MamlHelp: no module manifest (.psd1) in '$ModulePath'." }

#region Cmdlet metadata, read in a child process

function Get-CmdletMetadata {
    param([string] $ManifestPath)
    $quoted = $ManifestPath.Replace("'", "''")
    $script = @"
`$ErrorActionPreference = 'Stop'
`$module = Import-Module -Name '$quoted' -PassThru -Force
`$common = [System.Management.Automation.PSCmdlet]::CommonParameters
function ConvertTo-Default(`$value) {
    if (`$null -eq `$value) { return `$null }
    if (`$value -is [System.Management.Automation.SwitchParameter]) { return `$null }
    if (`$value -is [System.Array]) { if (`$value.Count -eq 0) { return `$null }; return (`$value -join ', ') }
    if (`$value -is [string] -and `$value -eq '') { return `$null }
    return [string] `$value
}
`$commands = foreach (`$name in @(`$module.ExportedCmdlets.Keys | Sort-Object)) {
    `$cmd = Get-Command -Name `$name -Module `$module.Name -CommandType Cmdlet
    `$instance = `$null
    try { `$instance = [Activator]::CreateInstance(`$cmd.ImplementingType) } catch { `$instance = `$null }
    `$parameters = foreach (`$p in `$cmd.Parameters.Values) {
        if (`$p.Name -in `$common) { continue }
        `$default = `$null
        `$property = `$cmd.ImplementingType.GetProperty(`$p.Name)
        if (`$instance -and `$property) { `$default = ConvertTo-Default `$property.GetValue(`$instance) }
        `$validSet = @(`$p.Attributes | Where-Object { `$_ -is [System.Management.Automation.ValidateSetAttribute] } | ForEach-Object { `$_.ValidValues })
        `$sets = foreach (`$entry in `$p.ParameterSets.GetEnumerator()) {
            [ordered]@{
                Name = `$entry.Key
                Mandatory = `$entry.Value.IsMandatory
                Position = `$entry.Value.Position
                ByValue = `$entry.Value.ValueFromPipeline
                ByPropertyName = `$entry.Value.ValueFromPipelineByPropertyName
            }
        }
        [ordered]@{
            Name = `$p.Name
            Type = `$p.ParameterType.FullName
            TypeName = `$p.ParameterType.Name
            IsSwitch = `$p.SwitchParameter
            Aliases = @(`$p.Aliases)
            Wildcards = [bool](`$p.Attributes | Where-Object { `$_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
            ValidValues = `$validSet
            Default = `$default
            Sets = @(`$sets)
        }
    }
    if (`$instance -is [System.IDisposable]) { `$instance.Dispose() }
    `$syntax = foreach (`$set in `$cmd.ParameterSets) {
        [ordered]@{
            Name = `$set.Name
            IsDefault = `$set.IsDefault
            Parameters = @(foreach (`$sp in `$set.Parameters) {
                if (`$sp.Name -in `$common) { continue }
                [ordered]@{ Name = `$sp.Name; Mandatory = `$sp.IsMandatory; Position = `$sp.Position; IsSwitch = (`$sp.ParameterType -eq [System.Management.Automation.SwitchParameter]); TypeName = `$sp.ParameterType.Name }
            })
        }
    }
    [ordered]@{
        Name = `$cmd.Name
        Verb = `$cmd.Verb
        Noun = `$cmd.Noun
        HelpFile = `$cmd.HelpFile
        Parameters = @(`$parameters)
        ParameterSets = @(`$syntax)
    }
}
# The error catalogue, for the list of error ids in the about_ topic.
`$errorIds = foreach (`$id in `$module.ImplementingAssembly.GetType('EnvelopeKms.PowerShell.Errors.ErrorIds')::All) {
    [ordered]@{ Name = `$id.Name; Category = [string] `$id.Category; Reach = [string] `$id.Reach; Meaning = `$id.Meaning }
}
'EKMS-ERRORIDS ' + (ConvertTo-Json -InputObject @(`$errorIds) -Depth 3 -Compress)
'EKMS-METADATA ' + (ConvertTo-Json -InputObject @(`$commands) -Depth 10 -Compress)
"@
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($script))
    # The pwsh that runs this script: a plain pwsh, or the dotnet local tool (dotnet <PSHOME>/pwsh.dll).
    $host_ = [Environment]::ProcessPath
    $prefix = @()
    if ([IO.Path]::GetFileNameWithoutExtension($host_) -eq 'dotnet') { $prefix = @(Join-Path $PSHOME 'pwsh.dll') }
    $output = & $host_ @prefix -NoProfile -NonInteractive -EncodedCommand $encoded 2>&1
    $line = $output | ForEach-Object { "$_" } | Where-Object { $_.StartsWith('EKMS-METADATA ') } | Select-Object -Last 1
    if ($LASTEXITCODE -ne 0 -or -not $line) {
        throw "New-MamlHelp: could not read the cmdlet metadata of '$ManifestPath' in a child pwsh:`n$($output -join "`n")"
    }
    $ids = $output | ForEach-Object { "$_" } | Where-Object { $_.StartsWith('EKMS-ERRORIDS ') } | Select-Object -Last 1
    if (-not $ids) { throw "New-MamlHelp: the child pwsh did not list the error ids of '$ManifestPath'." }
    $script:ErrorIds = @(ConvertFrom-Json -InputObject $ids.Substring('EKMS-ERRORIDS '.Length) -AsHashtable)
    ConvertFrom-Json -InputObject $line.Substring('EKMS-METADATA '.Length) -AsHashtable
}

#endregion

#region Markdown

function Split-Section {
    # Splits lines at headings of one level (outside code fences): returns the lines before the first heading and
    # an ordered list of @{ Title; Lines }.
    param([string[]] $Lines, [string] $Marker)
    $pre = [System.Collections.Generic.List[string]]::new()
    $sections = [System.Collections.Generic.List[object]]::new()
    $current = $null
    $inFence = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*```') { $inFence = -not $inFence }
        if (-not $inFence -and $line.StartsWith("$Marker ")) {
            $current = @{ Title = $line.Substring($Marker.Length + 1).Trim(); Lines = [System.Collections.Generic.List[string]]::new() }
            $sections.Add($current)
            continue
        }
        if ($null -eq $current) { $pre.Add($line) } else { $current.Lines.Add($line) }
    }
    , @{ Preamble = $pre.ToArray(); Sections = $sections.ToArray() }
}

function ConvertFrom-Inline {
    # Markdown inline markup to plain help text: `code` -> code, **b** -> b, [text](url) -> text (url).
    param([string] $Text)
    $Text = [regex]::Replace($Text, '\[([^\]]+)\]\(([^)]+)\)', '$1 ($2)')
    $Text = [regex]::Replace($Text, '\*\*([^*]+)\*\*', '$1')
    $Text = [regex]::Replace($Text, '(?<![`\w])`([^`]+)`(?!`)', '$1')
    $Text
}

function ConvertTo-Paragraph {
    # Lines to help paragraphs: blank lines separate paragraphs, list items start their own, fenced code is kept
    # verbatim (indented) as one paragraph.
    param([string[]] $Lines)
    $paragraphs = [System.Collections.Generic.List[string]]::new()
    $buffer = [System.Collections.Generic.List[string]]::new()
    $code = $null
    $flush = { if ($buffer.Count) { $paragraphs.Add((ConvertFrom-Inline ($buffer -join ' '))); $buffer.Clear() } }
    foreach ($line in $Lines) {
        if ($null -ne $code) {
            if ($line -match '^\s*```') { $paragraphs.Add(($code | ForEach-Object { "    $_" }) -join "`n"); $code = $null }
            else { $code.Add($line) }
            continue
        }
        if ($line -match '^\s*```') { & $flush; $code = [System.Collections.Generic.List[string]]::new(); continue }
        if ($line.Trim() -eq '') { & $flush; continue }
        if ($line -match '^\s*([-*]|\d+\.)\s+(.*)$') {
            & $flush
            $marker = $Matches[1]; $item = $Matches[2].Trim()
            $bullet = if ($marker -match '\d') { $marker } else { '-' }
            $buffer.Add("$bullet $item")
            continue
        }
        $buffer.Add($line.Trim())
    }
    & $flush
    , $paragraphs.ToArray()
}

function Read-CommandMarkdown {
    param([string] $Path)
    $text = (Get-Content -LiteralPath $Path -Raw) -replace "`r`n", "`n"
    $lines = $text -split "`n"
    $online = ''
    if ($lines.Count -and $lines[0].Trim() -eq '---') {
        $end = [Array]::IndexOf($lines, '---', 1)
        if ($end -gt 0) {
            # platyPS front matter; "online version:" is the page Get-Help -Online opens.
            foreach ($line in $lines[1..($end - 1)]) { if ($line -match '^online version:\s*(.*)$') { $online = $Matches[1].Trim() } }
            $lines = $lines[($end + 1)..($lines.Count - 1)]
        }
    }
    $top = Split-Section $lines '#'
    if ($top.Sections.Count -ne 1) { throw "New-MamlHelp: '$Path' must have exactly one '# <Name>' heading." }
    $name = $top.Sections[0].Title
    $doc = [ordered]@{
        Path = $Path; Name = $name; OnlineVersion = $online; Synopsis = ''; Description = @(); Examples = @(); Parameters = [ordered]@{}
        Inputs = @(); Outputs = @(); Notes = @(); Links = @()
    }
    foreach ($section in (Split-Section $top.Sections[0].Lines '##').Sections) {
        switch ($section.Title.ToUpperInvariant()) {
            'SYNOPSIS' { $doc.Synopsis = (ConvertTo-Paragraph $section.Lines) -join ' ' }
            'SYNTAX' { } # generated from the cmdlet
            'DESCRIPTION' { $doc.Description = ConvertTo-Paragraph $section.Lines }
            'EXAMPLES' {
                $doc.Examples = @(foreach ($example in (Split-Section $section.Lines '###').Sections) {
                        $code = $null; $rest = [System.Collections.Generic.List[string]]::new(); $inFence = $false
                        foreach ($line in $example.Lines) {
                            if ($null -eq $code -and -not $inFence -and $line -match '^\s*```') { $inFence = $true; $code = [System.Collections.Generic.List[string]]::new(); continue }
                            if ($inFence) { if ($line -match '^\s*```') { $inFence = $false } else { $code.Add($line) }; continue }
                            $rest.Add($line)
                        }
                        @{ Title = $example.Title; Code = if ($code) { ($code -join "`n").TrimEnd() } else { '' }; Remarks = ConvertTo-Paragraph $rest.ToArray() }
                    })
            }
            'PARAMETERS' {
                foreach ($parameter in (Split-Section $section.Lines '###').Sections) {
                    if ($parameter.Title -eq 'CommonParameters') { continue }
                    if (-not $parameter.Title.StartsWith('-')) { throw "New-MamlHelp: '$Path': parameter heading '### $($parameter.Title)' must be '### -Name'." }
                    $descriptionLines = [System.Collections.Generic.List[string]]::new(); $yaml = $null
                    foreach ($line in $parameter.Lines) {
                        if ($null -eq $yaml -and $line -match '^\s*```yaml') { $yaml = [System.Collections.Generic.List[string]]::new(); continue }
                        if ($null -ne $yaml) { if ($line -match '^\s*```') { continue }; $yaml.Add($line); continue }
                        $descriptionLines.Add($line)
                    }
                    $default = $null
                    if ($yaml) { foreach ($y in $yaml) { if ($y -match '^\s*Default value:\s*(.*)$') { $default = $Matches[1].Trim() } } }
                    $doc.Parameters[$parameter.Title.Substring(1)] = @{ Description = ConvertTo-Paragraph $descriptionLines.ToArray(); Default = $default }
                }
            }
            { $_ -in 'INPUTS', 'OUTPUTS' } {
                $items = @(foreach ($item in (Split-Section $section.Lines '###').Sections) { @{ Type = $item.Title; Description = ConvertTo-Paragraph $item.Lines } })
                if ($_ -eq 'INPUTS') { $doc.Inputs = $items } else { $doc.Outputs = $items }
            }
            'NOTES' { $doc.Notes = ConvertTo-Paragraph $section.Lines }
            'RELATED LINKS' {
                $doc.Links = @(foreach ($line in $section.Lines) {
                        if ($line -match '\[([^\]]+)\]\(([^)]*)\)') { @{ Text = $Matches[1]; Uri = $Matches[2] } }
                        elseif ($line -match '^\s*[-*]\s+(.+)$') { @{ Text = $Matches[1].Trim(); Uri = '' } }
                    })
            }
            default { throw "New-MamlHelp: '$Path': unknown section '## $($section.Title)'." }
        }
    }
    $doc
}

#endregion

#region MAML

$ns = @{
    maml = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev = 'http://schemas.microsoft.com/maml/dev/2004/10'
}

function Write-Para {
    param([System.Xml.XmlWriter] $Writer, [string[]] $Paragraphs)
    if (-not $Paragraphs -or $Paragraphs.Count -eq 0) { $Paragraphs = @('') }
    foreach ($p in $Paragraphs) { $Writer.WriteElementString('maml', 'para', $ns.maml, $p) }
}

function Write-Description {
    param([System.Xml.XmlWriter] $Writer, [string[]] $Paragraphs)
    $Writer.WriteStartElement('maml', 'description', $ns.maml)
    Write-Para $Writer $Paragraphs
    $Writer.WriteEndElement()
}

function Get-PositionText([int] $Position) { if ($Position -lt 0) { 'named' } else { [string] $Position } }

function Write-ParameterValue {
    param([System.Xml.XmlWriter] $Writer, [hashtable] $Meta, [bool] $Required)
    if ($Meta.ValidValues.Count) {
        $Writer.WriteStartElement('command', 'parameterValueGroup', $ns.command)
        foreach ($v in $Meta.ValidValues) {
            $Writer.WriteStartElement('command', 'parameterValue', $ns.command)
            $Writer.WriteAttributeString('required', 'false'); $Writer.WriteAttributeString('command', 'variableLength', $ns.command, 'false')
            $Writer.WriteString($v); $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }
    $Writer.WriteStartElement('command', 'parameterValue', $ns.command)
    $Writer.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', 'false')
    $Writer.WriteString($Meta.TypeName)
    $Writer.WriteEndElement()
}

function Write-Parameter {
    # One <command:parameter>; $Set is the parameter-set entry for the syntax, or $null for the PARAMETERS list
    # (which merges the sets: required if required in every set, pipeline input from any set).
    param([System.Xml.XmlWriter] $Writer, [hashtable] $Meta, [string[]] $Description, [string] $Default, [hashtable] $Set, [bool] $InSyntax)
    $sets = if ($Set) { @($Set) } else { @($Meta.Sets) }
    $required = @($sets | Where-Object { -not $_.Mandatory }).Count -eq 0
    $positions = @($sets | ForEach-Object { [int] $_.Position } | Where-Object { $_ -ge 0 } | Sort-Object -Unique)
    $position = if ($positions.Count) { $positions[0] } else { -1 }
    $how = @()
    if (@($sets | Where-Object { $_.ByPropertyName }).Count) { $how += 'ByPropertyName' }
    if (@($sets | Where-Object { $_.ByValue }).Count) { $how += 'ByValue' }
    $pipeline = if ($how.Count) { "True ($($how -join ', '))" } else { 'False' }
    $aliases = if ($Meta.Aliases.Count) { $Meta.Aliases -join ', ' } else { 'none' }

    $Writer.WriteStartElement('command', 'parameter', $ns.command)
    $Writer.WriteAttributeString('required', $required.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', 'true')
    $Writer.WriteAttributeString('globbing', ([bool] $Meta.Wildcards).ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('pipelineInput', $pipeline)
    $Writer.WriteAttributeString('position', (Get-PositionText $position))
    $Writer.WriteAttributeString('aliases', $aliases)
    $Writer.WriteElementString('maml', 'name', $ns.maml, $Meta.Name)
    Write-Description $Writer $Description
    # Switches show as [-Name] in SYNTAX: no value there.
    if (-not ($InSyntax -and $Meta.IsSwitch)) { Write-ParameterValue $Writer $Meta $true }
    $Writer.WriteStartElement('dev', 'type', $ns.dev)
    $Writer.WriteElementString('maml', 'name', $ns.maml, $Meta.Type)
    $Writer.WriteElementString('maml', 'uri', $ns.maml, '')
    $Writer.WriteEndElement()
    $Writer.WriteElementString('dev', 'defaultValue', $ns.dev, $(if ($Default) { $Default } elseif ($Meta.IsSwitch) { 'False' } else { 'None' }))
    $Writer.WriteEndElement()
}

$shouldProcessDescriptions = @{
    WhatIf = @('Shows what would happen if the cmdlet runs. The cmdlet is not run.')
    Confirm = @('Prompts you for confirmation before running the cmdlet.')
}

function Write-Command {
    param([System.Xml.XmlWriter] $Writer, [hashtable] $Meta, $Doc)
    $paramMeta = @{}; foreach ($p in $Meta.Parameters) { $paramMeta[$p.Name] = $p }
    $describe = {
        param([string] $name)
        if ($Doc.Parameters.Contains($name)) { $Doc.Parameters[$name].Description } else { $shouldProcessDescriptions[$name] }
    }
    $defaultOf = {
        param([string] $name)
        if ($Doc.Parameters.Contains($name) -and $Doc.Parameters[$name].Default) { $Doc.Parameters[$name].Default } else { $paramMeta[$name].Default }
    }

    $Writer.WriteStartElement('command', 'command', $ns.command)
    $Writer.WriteAttributeString('xmlns', 'maml', $null, $ns.maml)
    $Writer.WriteAttributeString('xmlns', 'dev', $null, $ns.dev)
    $Writer.WriteStartElement('command', 'details', $ns.command)
    $Writer.WriteElementString('command', 'name', $ns.command, $Meta.Name)
    Write-Description $Writer @($Doc.Synopsis)
    $Writer.WriteElementString('command', 'verb', $ns.command, $Meta.Verb)
    $Writer.WriteElementString('command', 'noun', $ns.command, $Meta.Noun)
    $Writer.WriteEndElement()
    Write-Description $Writer $Doc.Description

    # SYNTAX: default set first, positional parameters in position order, then the rest as declared.
    $Writer.WriteStartElement('command', 'syntax', $ns.command)
    foreach ($set in @($Meta.ParameterSets | Sort-Object { -not $_.IsDefault })) {
        $Writer.WriteStartElement('command', 'syntaxItem', $ns.command)
        $Writer.WriteElementString('maml', 'name', $ns.maml, $Meta.Name)
        # As Get-Command -Syntax orders them: positional by position, then mandatory named, then the rest.
        $ordered = @($set.Parameters | Where-Object { $_.Position -ge 0 } | Sort-Object { [int] $_.Position }) +
            @($set.Parameters | Where-Object { $_.Position -lt 0 -and $_.Mandatory }) +
            @($set.Parameters | Where-Object { $_.Position -lt 0 -and -not $_.Mandatory })
        foreach ($sp in $ordered) {
            $m = $paramMeta[$sp.Name]
            $entry = @($m.Sets | Where-Object { $_.Name -eq $set.Name -or $_.Name -eq '__AllParameterSets' })[0]
            Write-Parameter $Writer $m (& $describe $sp.Name) (& $defaultOf $sp.Name) $entry $true
        }
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'parameters', $ns.command)
    # PARAMETERS in the order of the default set's syntax, then those only in other sets.
    $defaultSet = @($Meta.ParameterSets | Sort-Object { -not $_.IsDefault })[0]
    $rank = @{}
    foreach ($sp in @($defaultSet.Parameters | Where-Object { $_.Position -ge 0 } | Sort-Object { [int] $_.Position }) +
        @($defaultSet.Parameters | Where-Object { $_.Position -lt 0 -and $_.Mandatory }) +
        @($defaultSet.Parameters | Where-Object { $_.Position -lt 0 -and -not $_.Mandatory })) { $rank[$sp.Name] = $rank.Count }
    $listed = @($Meta.Parameters | Sort-Object { if ($_.Name -in 'WhatIf', 'Confirm') { 2000 + $rank[$_.Name] } elseif ($rank.ContainsKey($_.Name)) { $rank[$_.Name] } else { 1000 } })
    foreach ($p in $listed) { Write-Parameter $Writer $p (& $describe $p.Name) (& $defaultOf $p.Name) $null $false }
    $Writer.WriteEndElement()

    foreach ($kind in @(@('inputTypes', 'inputType', $Doc.Inputs), @('returnValues', 'returnValue', $Doc.Outputs))) {
        $Writer.WriteStartElement('command', $kind[0], $ns.command)
        foreach ($item in $kind[2]) {
            $Writer.WriteStartElement('command', $kind[1], $ns.command)
            $Writer.WriteStartElement('dev', 'type', $ns.dev)
            $Writer.WriteElementString('maml', 'name', $ns.maml, $item.Type)
            $Writer.WriteEndElement()
            Write-Description $Writer $item.Description
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }

    $Writer.WriteStartElement('maml', 'alertSet', $ns.maml)
    $Writer.WriteStartElement('maml', 'alert', $ns.maml)
    Write-Para $Writer $Doc.Notes
    $Writer.WriteEndElement()
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'examples', $ns.command)
    foreach ($example in $Doc.Examples) {
        $Writer.WriteStartElement('command', 'example', $ns.command)
        $Writer.WriteElementString('maml', 'title', $ns.maml, "-------------------------- $($example.Title) --------------------------")
        $Writer.WriteElementString('dev', 'code', $ns.dev, $example.Code)
        $Writer.WriteStartElement('dev', 'remarks', $ns.dev)
        # A trailing empty paragraph leaves a blank line before the next example's title.
        Write-Para $Writer (@($example.Remarks) + '')
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'relatedLinks', $ns.command)
    # As platyPS does: the online version first, since Get-Help -Online opens the first link's URI.
    $links = @(@{ Text = 'Online Version:'; Uri = $Doc.OnlineVersion }) + @($Doc.Links | ForEach-Object {
            # A link to a sibling help page (Protect-EnvelopeFile.md) is only valid on the web: make it absolute there.
            $uri = $_.Uri
            if ($uri -and -not [uri]::IsWellFormedUriString($uri, [UriKind]::Absolute)) { $uri = [uri]::new([uri] $Doc.OnlineVersion, $uri).AbsoluteUri }
            @{ Text = $_.Text; Uri = $uri }
        })
    foreach ($link in $links) {
        $Writer.WriteStartElement('maml', 'navigationLink', $ns.maml)
        $Writer.WriteElementString('maml', 'linkText', $ns.maml, $link.Text)
        $Writer.WriteElementString('maml', 'uri', $ns.maml, $link.Uri)
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()
    $Writer.WriteEndElement()
}

#endregion

#region about_ topics

function ConvertTo-AboutText {
    # about_*.md (platyPS about layout: # about_X, ## SHORT DESCRIPTION, ## LONG DESCRIPTION, ...) to the plain-text
    # layout of the built-in about topics: headings in capitals at the margin, text indented four spaces.
    param([string] $Path)
    $lines = (Get-Content -LiteralPath $Path -Raw) -replace "`r`n", "`n" -split "`n"
    $out = [System.Collections.Generic.List[string]]::new()
    $inFence = $false
    foreach ($line in $lines) {
        if ($line.Trim() -eq '<!-- error ids -->') {
            # The module's error catalogue (EnvelopeKms.PowerShell.Errors.ErrorIds), so the list cannot drift from the code.
            foreach ($id in $script:ErrorIds) {
                $ends = if ($id.Reach -eq 'Item') { '' } else { ", reach: $($id.Reach)" }
                $out.Add("    $($id.Name) ($($id.Category)$ends)")
                $out.Add("        $($id.Meaning)")
            }
            continue
        }
        if ($line -match '^\s*```') { $inFence = -not $inFence; continue }
        if ($inFence) { $out.Add($(if ($line) { "        $line" } else { '' })); continue }
        if ($line -match '^# (.+)$') { $out.Add('TOPIC'); $out.Add("    $($Matches[1].Trim())"); continue }
        if ($line -match '^## (.+)$') { $out.Add($Matches[1].Trim().ToUpperInvariant()); continue }
        if ($line -match '^### (.+)$') { $out.Add("  $($Matches[1].Trim())"); continue }
        $out.Add($(if ($line.Trim()) { '    ' + (ConvertFrom-Inline $line.TrimEnd()) } else { '' }))
    }
    ($out -join [Environment]::NewLine).TrimEnd() + [Environment]::NewLine
}

#endregion

$metadata = Get-CmdletMetadata $manifest.FullName
$problems = [System.Collections.Generic.List[string]]::new()
$docs = @{}
foreach ($file in Get-ChildItem -LiteralPath $SourcePath -Filter '*.md' -File | Where-Object { $_.Name -notlike 'about_*' }) {
    try {
        $doc = Read-CommandMarkdown $file.FullName
        if ($doc.Name -ne $file.BaseName) { $problems.Add("$($file.Name): heading '# $($doc.Name)' does not match the file name.") }
        $docs[$doc.Name] = $doc
    }
    catch { $problems.Add("$($file.Name): $($_.Exception.Message) (line $($_.InvocationInfo.ScriptLineNumber) of New-MamlHelp.ps1)") }
}

$exported = @($metadata | ForEach-Object { $_.Name })
foreach ($name in $docs.Keys | Sort-Object) {
    if ($name -notin $exported) { $problems.Add("$name.md documents '$name', which the module does not export.") }
}
foreach ($meta in $metadata) {
    $doc = $docs[$meta.Name]
    if (-not $doc) { $problems.Add("$($meta.Name) has no help markdown: add $(Join-Path $SourcePath "$($meta.Name).md")."); continue }
    if (-not $doc.Synopsis) { $problems.Add("$($meta.Name).md: empty SYNOPSIS.") }
    $onlineUri = $null
    if (-not [uri]::TryCreate($doc.OnlineVersion, [UriKind]::Absolute, [ref] $onlineUri) -or $onlineUri.Scheme -ne 'https') {
        $problems.Add("$($meta.Name).md: 'online version:' must be an absolute https URI (Get-Help -Online opens it), not '$($doc.OnlineVersion)'.")
    }
    if (-not $doc.Description.Count) { $problems.Add("$($meta.Name).md: empty DESCRIPTION.") }
    if (-not @($doc.Examples).Count) { $problems.Add("$($meta.Name).md: no example.") }
    foreach ($example in $doc.Examples) {
        if (-not $example.Code) { $problems.Add("$($meta.Name).md: '$($example.Title)' has no ``````powershell code block.") }
        if (-not ($example.Remarks -join '').Trim()) { $problems.Add("$($meta.Name).md: '$($example.Title)' has no explanation after its code.") }
    }
    $real = @($meta.Parameters | ForEach-Object { $_.Name })
    foreach ($name in $doc.Parameters.Keys) {
        if ($name -notin $real) { $problems.Add("$($meta.Name).md documents -$name, which $($meta.Name) does not have.") }
        elseif (-not ($doc.Parameters[$name].Description -join '').Trim()) { $problems.Add("$($meta.Name).md: -$name has no description.") }
    }
    foreach ($name in $real) {
        if (-not $doc.Parameters.Contains($name) -and -not $shouldProcessDescriptions.ContainsKey($name)) {
            $problems.Add("$($meta.Name).md does not document -$name.")
        }
    }
}
if ($problems.Count) {
    # One line per problem (a long exception message would be wrapped and hard to read), then fail.
    [Console]::Error.WriteLine("New-MamlHelp: the help in '$SourcePath' does not match the module:")
    foreach ($problem in $problems) { [Console]::Error.WriteLine("  - $problem") }
    throw "New-MamlHelp: $($problems.Count) problem(s) in the help markdown (listed above)."
}

$null = New-Item -ItemType Directory -Path $OutputPath -Force
$helpFiles = @($metadata | ForEach-Object { $_.HelpFile } | Where-Object { $_ } | Sort-Object -Unique)
if ($helpFiles.Count -ne 1) { throw "New-MamlHelp: expected one help file name for the module's cmdlets, got: $($helpFiles -join ', ')." }
$mamlPath = Join-Path $OutputPath $helpFiles[0]
$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$writer = [System.Xml.XmlWriter]::Create($mamlPath, $settings)
try {
    $writer.WriteStartDocument()
    $writer.WriteStartElement('helpItems', 'http://msh')
    $writer.WriteAttributeString('schema', 'maml')
    foreach ($meta in $metadata) { Write-Command $writer $meta $docs[$meta.Name] }
    $writer.WriteEndElement()
    $writer.WriteEndDocument()
}
finally { $writer.Dispose() }
Write-Host "   help: $mamlPath ($($metadata.Count) cmdlets)"

foreach ($about in Get-ChildItem -LiteralPath $SourcePath -Filter 'about_*.md' -File) {
    $target = Join-Path $OutputPath "$($about.BaseName).help.txt"
    [System.IO.File]::WriteAllText($target, (ConvertTo-AboutText $about.FullName), [System.Text.UTF8Encoding]::new($false))
    Write-Host "   help: $target"
}
