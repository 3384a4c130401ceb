# Shared by the doc tests (Production.Tests.ps1 for docs/production.md, DocExamples.Tests.ps1 for README.md and the
# help examples): reading a page's fenced blocks, pointing its cloud endpoints at local servers, and running blocks
# in one PowerShell session as a reader would, with a host that answers prompts the way the reader would.

function Get-MarkdownCodeBlock {
    <#
    The fenced blocks of a markdown file, in order: Language, Marker (the text of a '<!-- doc-test: ... -->' comment
    on the line before the fence, or $null), Line (the first line of the block's text) and Text.
    #>
    param([Parameter(Mandatory)] [string] $Path)
    $lines = @(Get-Content -LiteralPath $Path)
    for ($i = 0; $i -lt $lines.Count; $i++) {
        if ($lines[$i] -notmatch '^\s*```(\w+)\s*$') { continue }
        $language = $Matches[1]
        $marker = if ($i -gt 0 -and $lines[$i - 1] -match '^<!-- doc-test: (.+) -->$') { $Matches[1] } else { $null }
        $start = $i + 1
        do { $i++ } while ($i -lt $lines.Count -and $lines[$i] -notmatch '^\s*```\s*$')
        $text = if ($i -gt $start) { $lines[$start..($i - 1)] -join "`n" } else { '' }
        [pscustomobject]@{ Language = $language; Marker = $marker; Line = $start + 1; Text = $text }
    }
}

function Convert-DocEndpointToLocal {
    <#
    Points a block's Alibaba Cloud endpoints at local servers: https://kms.<region>.aliyuncs.com and
    https://kms-vpc.<region>.aliyuncs.com become that region's local endpoint, and a Connect-Kms command without
    -RegionEndpoint gets one that maps every region to its local server (the way a region without a mapping would
    otherwise reach kms.<region>.aliyuncs.com). A command continued with backticks is treated as one command.
    #>
    param([string] $Text, [Parameter(Mandatory)] [System.Collections.IDictionary] $Endpoints)
    foreach ($region in $Endpoints.GetEnumerator()) {
        $Text = $Text.Replace("https://kms.$($region.Key).aliyuncs.com", $region.Value).Replace("https://kms-vpc.$($region.Key).aliyuncs.com", $region.Value)
    }
    $lines = @($Text -split "`n")
    for ($i = 0; $i -lt $lines.Count; $i++) {
        if ($lines[$i] -notmatch '^\s*Connect-Kms\b') { continue }
        $last = $i
        while ($last + 1 -lt $lines.Count -and $lines[$last].TrimEnd().EndsWith('`')) { $last++ }
        $command = $lines[$i..$last] -join "`n"
        if ($command -notmatch '-RegionEndpoint') {
            # With -Endpoint, the region of -Region already has its endpoint (naming it twice is refused).
            $own = if ($command -match '-Endpoint\b' -and $command -match '-Region\s+[''"]?([a-z0-9-]+)') { $Matches[1] } else { $null }
            $map = '@{ ' + (($Endpoints.GetEnumerator() | Where-Object Key -NE $own | ForEach-Object { "'$($_.Key)' = '$($_.Value)'" }) -join '; ') + ' }'
            # Before a trailing comment, so the parameter is part of the command.
            if ($lines[$last] -match '^(.*?)(\s+#.*)$' -and $Matches[1] -notmatch "['""]") { $lines[$last] = "$($Matches[1]) -RegionEndpoint $map$($Matches[2])" }
            else { $lines[$last] = "$($lines[$last]) -RegionEndpoint $map" }
        }
        $i = $last
    }
    $lines -join "`n"
}

if (-not ('EnvelopeKms.Tests.DocReaderHost' -as [type])) {
    # A host for the doc sessions that answers as the reader of the docs would: "Yes" to confirmations, the local
    # server's development AccessKey (testid / testsecret) to Get-Credential, and a fixed text to Read-Host. What
    # the blocks write to the host is kept in Transcript, for failure messages.
    Add-Type -TypeDefinition @'
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text;

namespace EnvelopeKms.Tests
{
    public sealed class DocReaderHost : PSHost
    {
        private readonly DocReaderUI _ui = new DocReaderUI();
        private readonly Guid _id = Guid.NewGuid();
        public override string Name => "EnvelopeKmsDocReader";
        public override Version Version => new Version(1, 0);
        public override Guid InstanceId => _id;
        public override PSHostUserInterface UI => _ui;
        public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
        public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
        public override void SetShouldExit(int exitCode) { }
        public override void EnterNestedPrompt() => throw new NotSupportedException("no nested prompt in a doc test");
        public override void ExitNestedPrompt() { }
        public override void NotifyBeginApplication() { }
        public override void NotifyEndApplication() { }
        public DocReaderUI ReaderUI => _ui;
    }

    public sealed class DocReaderUI : PSHostUserInterface
    {
        public const string UserName = "testid";
        public const string Secret = "testsecret";
        public const string TypedText = "typed at the prompt";
        public StringBuilder Transcript { get; } = new StringBuilder();
        public List<string> Prompts { get; } = new List<string>();
        public override PSHostRawUserInterface RawUI => null;

        private static SecureString Secure(string text)
        {
            var s = new SecureString();
            foreach (char c in text) s.AppendChar(c);
            s.MakeReadOnly();
            return s;
        }

        public override string ReadLine() { Prompts.Add("ReadLine"); return TypedText; }
        public override SecureString ReadLineAsSecureString() { Prompts.Add("ReadLineAsSecureString"); return Secure(TypedText); }

        public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions)
        {
            var answers = new Dictionary<string, PSObject>();
            foreach (var field in descriptions)
            {
                Prompts.Add("Prompt " + field.Name);
                bool secure = field.ParameterTypeFullName == typeof(SecureString).FullName;
                answers[field.Name] = new PSObject(secure ? (object)Secure(TypedText) : TypedText);
            }
            return answers;
        }

        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName)
            => Credential(userName);

        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName,
            PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => Credential(userName);

        private PSCredential Credential(string userName)
        {
            Prompts.Add("Credential " + userName);
            return new PSCredential(string.IsNullOrEmpty(userName) ? UserName : userName, Secure(Secret));
        }

        public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice)
        {
            Prompts.Add("Choice " + caption);
            for (int i = 0; i < choices.Count; i++)
                if (choices[i].Label.Replace("&", "") == "Yes") return i;
            return defaultChoice;
        }

        public override void Write(string value) => Transcript.Append(value);
        public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Transcript.Append(value);
        public override void WriteLine(string value) => Transcript.AppendLine(value);
        public override void WriteErrorLine(string value) => Transcript.AppendLine("ERROR: " + value);
        public override void WriteDebugLine(string message) => Transcript.AppendLine("DEBUG: " + message);
        public override void WriteProgress(long sourceId, ProgressRecord record) { }
        public override void WriteVerboseLine(string message) => Transcript.AppendLine("VERBOSE: " + message);
        public override void WriteWarningLine(string message) => Transcript.AppendLine("WARNING: " + message);
    }
}
'@
}

function New-DocSession {
    <#
    A PowerShell session for a page's blocks: its own runspace, with the reader host, the staged module imported,
    the working directory set and $ErrorActionPreference = 'Stop' unless -ErrorActionPreference says otherwise.
    #>
    param([Parameter(Mandatory)] [string] $ModuleManifest, [Parameter(Mandatory)] [string] $WorkingDirectory, [string] $ErrorActionPreference = 'Stop')
    $readerHost = [EnvelopeKms.Tests.DocReaderHost]::new()
    $runspace = [runspacefactory]::CreateRunspace($readerHost, [initialsessionstate]::CreateDefault2())
    $runspace.Open()
    $session = [powershell]::Create()
    $session.Runspace = $runspace
    $session | Add-Member -NotePropertyName ReaderHost -NotePropertyValue $readerHost
    $null = Invoke-DocSession $session "Import-Module '$($ModuleManifest.Replace("'", "''"))'; Set-Location -LiteralPath '$($WorkingDirectory.Replace("'", "''"))'; `$ErrorActionPreference = '$ErrorActionPreference'"
    $session
}

function Invoke-DocSession {
    <# Runs a script in a doc session; throws when it writes an error record (or throws), naming the errors. #>
    param([Parameter(Mandatory)] [powershell] $Session, [Parameter(Mandatory)] [string] $Script)
    $Session.Commands.Clear()
    $Session.Streams.ClearStreams()
    $output = $Session.AddScript($Script).Invoke()
    if ($Session.Streams.Error.Count -gt 0) { throw "The block wrote errors: $($Session.Streams.Error -join ' | ')" }
    $output
}

function Remove-DocSession {
    param([powershell] $Session)
    if (-not $Session) { return }
    $runspace = $Session.Runspace
    $Session.Dispose()
    if ($runspace) { $runspace.Dispose() }
}
