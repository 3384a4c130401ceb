#Requires -Version 7.4
# Our cmdlet names collide (case-insensitively) with AWS.Tools.KeyManagementService's (Get-KMSKey, New-KMSAlias…).
# The README and about_EnvelopeKms tell users to import with -Prefix or to use module-qualified names; both must
# work, which needs the module never to call its own cmdlets by bare name.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:Server = Start-TestKmsServer
    $script:Manifest = Join-Path $ModulePath 'EnvelopeKms.psd1'

    function New-IsolatedSession {
        # A runspace of its own, so what it imports (or shadows) does not reach the test's session.
        $runspace = [runspacefactory]::CreateRunspace([initialsessionstate]::CreateDefault2())
        $runspace.Open()
        $session = [powershell]::Create()
        $session.Runspace = $runspace
        $session
    }
    function Invoke-Isolated([powershell] $Session, [string] $Script) {
        $Session.Commands.Clear()
        $Session.Streams.ClearStreams()
        $output = $Session.AddScript($Script).Invoke()
        if ($Session.Streams.Error.Count -gt 0) { throw "The script wrote errors: $($Session.Streams.Error -join ' | ')" }
        $output
    }
    function Remove-IsolatedSession([powershell] $Session) {
        $runspace = $Session.Runspace
        $Session.Dispose()
        $runspace.Dispose()
    }
    $script:Work = Join-Path $TestDrive 'work'
    $null = New-Item -ItemType Directory -Path $Work
    $script:Connect = "-Endpoint '$($Server.Endpoint)' -Credential ([pscredential]::new('testid', (ConvertTo-SecureString 'testsecret' -AsPlainText -Force)))"
}

AfterAll {
    Stop-TestKmsServer $Server
}

Describe 'Import-Module EnvelopeKms -Prefix Ek' {
    BeforeAll {
        $session = New-IsolatedSession
        $null = Invoke-Isolated $session "Import-Module '$Manifest' -Prefix Ek; Set-Location -LiteralPath '$Work'; `$ErrorActionPreference = 'Stop'"
    }
    AfterAll { Remove-IsolatedSession $session }

    It 'exports only the prefixed names: the bare names do not exist in that session' {
        $names = Invoke-Isolated $session '(Get-Command -Module EnvelopeKms).Name'
        $names | Should -Contain 'Get-EkKmsKey'
        $names | Should -Contain 'Protect-EkEnvelopeFile'
        Invoke-Isolated $session "[bool](Get-Command Get-KmsKey, Protect-EnvelopeFile, Connect-Kms -ErrorAction Ignore)" | Should -BeFalse
    }

    It 'runs a round trip with the prefixed names (no cmdlet calls another by its bare name)' {
        New-RandomFile -Path (Join-Path $Work 'payload.bin') -Length 200000
        $original = (Get-FileHash -LiteralPath (Join-Path $Work 'payload.bin')).Hash
        $result = Invoke-Isolated $session @"
Connect-EkKms $Connect -Region cn-hangzhou
`$null = Get-EkKmsConnection
`$null = New-EkKmsKey -Description 'prefixed' | New-EkKmsAlias -AliasName alias/prefixed
`$null = Get-EkKmsKey -KeyId alias/prefixed
`$null = Get-EkKmsAlias -AliasName alias/prefixed
Protect-EkEnvelopeFile -LiteralPath ./payload.bin -KeyId alias/prefixed -EncryptionContext @{ app = 'prefix' }
`$info = Get-EkEnvelopeFileInfo -LiteralPath ./payload.bin.ekms
if (-not (Test-EkEnvelopeFile -LiteralPath ./payload.bin.ekms)) { throw 'Test-EkEnvelopeFile said False' }
Update-EkEnvelopeFileKey -LiteralPath ./payload.bin.ekms -AddKeyId (New-EkKmsKey -Description 'second').KeyId
Convert-EkEnvelopeFile -LiteralPath ./payload.bin.ekms -To AlibabaSdk -KeyId alias/prefixed -Destination ./converted.bin.ekms
Unprotect-EkEnvelopeFile -LiteralPath ./converted.bin.ekms -Destination ./restored.bin -EncryptionContext @{ app = 'prefix' }
`$secret = Protect-EkKmsSecret -KeyId alias/prefixed -Bytes ([byte[]] (1, 2, 3))
`$back = Unprotect-EkKmsSecret -CiphertextBlob `$secret -AsBytes
Disable-EkKmsKey -KeyId alias/prefixed
Enable-EkKmsKey -KeyId alias/prefixed
`$spare = New-EkKmsKey -Description 'spare'
Set-EkKmsAlias -AliasName alias/prefixed -KeyId `$spare.KeyId
Remove-EkKmsKey -KeyId `$spare.KeyId -PendingWindowInDays 7 -Confirm:`$false
Restore-EkKmsKey -KeyId `$spare.KeyId
Remove-EkKmsAlias -AliasName alias/prefixed -Confirm:`$false
Disconnect-EkKms
[pscustomobject]@{ KeyIds = @(`$info.KeyIds); Back = (`$back -join ',') }
"@
        (Get-FileHash -LiteralPath (Join-Path $Work 'restored.bin')).Hash | Should -Be $original
        @($result)[-1].Back | Should -Be '1,2,3'
        @(@($result)[-1].KeyIds).Count | Should -Be 1
    }
}

Describe 'Module-qualified names' {
    It 'call our cmdlets even when another command of the same name wins the bare name' {
        $session = New-IsolatedSession
        try {
            # A function beats any cmdlet of the same name, as AWS.Tools.KeyManagementService's Get-KMSKey would when
            # imported last.
            $keyId = Invoke-Isolated $session @"
Import-Module '$Manifest'
function Get-KMSKey { throw 'the colliding Get-KMSKey ran' }
function New-KMSKey { throw 'the colliding New-KMSKey ran' }
EnvelopeKms\Connect-Kms $Connect -Region cn-hangzhou
`$key = EnvelopeKms\New-KmsKey -Description 'qualified'
(EnvelopeKms\Get-KmsKey -KeyId `$key.KeyId).KeyId
"@
            "$keyId" | Should -Match '\S'
            { Invoke-Isolated $session 'Get-KmsKey' } | Should -Throw '*colliding Get-KMSKey ran*'
        }
        finally { Remove-IsolatedSession $session }
    }
}
