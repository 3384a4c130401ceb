using EnvelopeKms.PowerShell.Errors;
using Xunit;

namespace EnvelopeKms.PowerShell.Tests.Errors;

/// <summary>
/// The errors that end a pipeline, per what a command's files share. The expected sets are the ones the cmdlets
/// held as copies before there was one definition; core errors outside them stay per file.
/// </summary>
public sealed class PipelineEndTests
{
    private static readonly string[] SessionLevel = ["KmsAuthenticationFailed", "KmsCredentialsFailed", "KmsConfigurationInvalid", "KmsClockSkew"];

    // Core errors a file's work can raise; a format's rules (FormatRule) are checked once, before the first file.
    private static IEnumerable<string> EndedAmongCoreErrors(PipelineEnd end)
        => ErrorIds.All.Where(id => id.MapsFrom.Any(from => from is not EnvelopeKms.Files.FormatRule) && end.Ends(id))
            .Select(id => id.Name).Order(StringComparer.Ordinal);

    [Fact]
    public void SharingOnlyTheSession_EndsOnCredentialsClockAndConfiguration()
        => Assert.Equal(SessionLevel.Order(StringComparer.Ordinal), EndedAmongCoreErrors(PipelineEnd.SharedSession));

    [Fact]
    public void SharingTheKey_AlsoEndsOnKeyProblems_ButNotOnAnOutage()
    {
        string[] expected = [.. SessionLevel, "KmsKeyNotFound", "KmsRefused", "KmsInvalidParameter", "KmsNoAllowedKey"];
        Assert.Equal(expected.Order(StringComparer.Ordinal), EndedAmongCoreErrors(PipelineEnd.SharedKey));
        Assert.False(PipelineEnd.SharedKey.Ends(ErrorIds.KmsUnavailable));
    }

    [Fact]
    public void SharingTheDataKey_AlsoEndsOnAnOutage()
    {
        Assert.True(PipelineEnd.SharedDataKey.Ends(ErrorIds.KmsUnavailable));
        Assert.True(PipelineEnd.SharedDataKey.Ends(ErrorIds.KmsRefused));
        Assert.False(PipelineEnd.SharedDataKey.Ends(ErrorIds.EnvelopeAuthenticationFailed));
        Assert.False(PipelineEnd.SharedDataKey.Ends(ErrorIds.KmsInvalidDataKey));
    }

    [Fact]
    public void AFilesOwnProblem_NeverEndsThePipeline()
    {
        foreach (var id in ErrorIds.All.Where(id => id.Reach == ErrorReach.Item))
        {
            Assert.False(PipelineEnd.SharedDataKey.Ends(id), id.Name);
        }
    }
}
