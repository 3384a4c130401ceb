using System.Management.Automation;
using EnvelopeKms.Credentials;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Errors;
using Xunit;

namespace EnvelopeKms.PowerShell.Tests.Errors;

public sealed class ErrorMapperTests
{
    private static KmsException Service(string code, int status = 400)
        => new("Decrypt", KmsErrorKind.Service, code, $"KMS said {code}.", status, "req-1");

    public static TheoryData<Enum> EveryCoreErrorValue()
    {
        var data = new TheoryData<Enum>();
        foreach (var type in new[] { typeof(EnvelopeError), typeof(EnvelopeKeyUpdateError), typeof(KeyProviderError), typeof(KmsErrorClass), typeof(FormatRule) })
        {
            foreach (Enum value in Enum.GetValues(type)) data.Add(value);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryCoreErrorValue))]
    public void EveryCoreErrorValue_IsNamedByExactlyOneCatalogueEntry(Enum value)
    {
        // A new core error must get its own id (or be listed under an existing one), not fall through to a default.
        var claimants = ErrorIds.All.Where(id => id.MapsFrom.Contains(value)).ToList();
        Assert.Single(claimants);
        Assert.Same(claimants[0], ErrorIds.ForCoreError(value));
    }

    [Fact]
    public void TheCatalogue_HasUniqueNames_OfTheModulesPrefixes()
    {
        var names = ErrorIds.All.Select(id => id.Name).ToList();
        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.All(names, name => Assert.Matches("^(Envelope|Kms)[A-Z][A-Za-z0-9]+$", name));
        Assert.All(ErrorIds.All, id => Assert.False(string.IsNullOrWhiteSpace(id.Meaning), id.Name));
    }

    [Fact]
    public void Records_CarryTheCataloguesIdAndCategory_AndTheExceptionAsThrown()
    {
        var e = new EnvelopeException(EnvelopeError.FrameTampered, "Frame 3 does not authenticate.");
        var record = ErrorMapper.ToErrorRecord(e, "/data/a.ekms");
        Assert.Equal("EnvelopeAuthenticationFailed", record.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.SecurityError, record.CategoryInfo.Category);
        Assert.Same(e, record.Exception);
        Assert.Equal("/data/a.ekms", record.TargetObject);
    }

    [Theory]
    [InlineData("Forbidden.AccessKey")]
    [InlineData("Forbidden.KmsServiceNotEnabled")]
    [InlineData("InvalidAccessKeyId.NotFound")]
    [InlineData("InvalidSecurityToken.Malformed")]
    [InlineData("SignatureDoesNotMatch")]
    [InlineData("IncompleteSignature")]
    public void AuthenticationCodes_AreAuthenticationFailures_AsTheCoreClassifiesThem(string code)
    {
        // The mapper and the key provider read the same classifier: Forbidden.AccessKey once was KmsRefused here.
        Assert.True(KmsErrorClassifier.IsAuthentication(code, 403));
        var direct = ErrorMapper.IdOf(Service(code, 403));
        var throughProvider = ErrorMapper.IdOf(new KeyProviderException(KeyProviderError.Authentication, "Could not unwrap.", Service(code, 403)));
        Assert.Same(ErrorIds.KmsAuthenticationFailed, direct);
        Assert.Same(ErrorIds.KmsAuthenticationFailed, throughProvider);
        Assert.Equal(ErrorCategory.AuthenticationError, direct.Category);
    }

    [Theory]
    [InlineData("Forbidden.KeyNotFound", "KmsKeyNotFound")]
    [InlineData("Forbidden.AliasNotFound", "KmsKeyNotFound")]
    [InlineData("Rejected.Disabled", "KmsRefused")]
    [InlineData("Forbidden.NoPermission", "KmsRefused")]
    [InlineData("NoPermission", "KmsRefused")] // a RAM denial in the gateway's other spelling (KmsErrorClassifier.IsPermissionDenied)
    [InlineData("Rejected.Throttling", "KmsRefused")]
    [InlineData("InvalidParameter", "KmsInvalidParameter")]
    [InlineData("MissingParameter", "KmsInvalidParameter")]
    [InlineData("InvalidAction.NotFound", "KmsInvalidParameter")]
    [InlineData("EntityAlreadyExists.Alias", "KmsAliasExists")]
    [InlineData("InvalidTimeStamp.Expired", "KmsClockSkew")]
    [InlineData("InternalFailure", "KmsUnavailable")]
    [InlineData("SomethingNew", "KmsError")]
    public void ServiceCodes_MapByTheCoreClass(string code, string expected)
        => Assert.Equal(expected, ErrorMapper.IdOf(Service(code)).Name);

    [Fact]
    public void ClientSideKmsFailures_MapToUnavailableAndInvalidResponse()
    {
        Assert.Same(ErrorIds.KmsUnavailable, ErrorMapper.IdOf(new KmsException("Decrypt", KmsErrorKind.Timeout, KmsException.TimeoutCode, "timed out")));
        Assert.Same(ErrorIds.KmsUnavailable, ErrorMapper.IdOf(new KmsException("Decrypt", KmsErrorKind.Connection, KmsException.ConnectionFailureCode, "refused")));
        Assert.Same(ErrorIds.KmsInvalidResponse, ErrorMapper.IdOf(new KmsException("Decrypt", KmsErrorKind.InvalidResponse, KmsException.InvalidResponseCode, "not JSON", 200)));
    }

    [Fact]
    public void AProviderFailureWithAKmsCause_IsClassifiedByTheCause_ButKeepsTheProvidersMessage()
    {
        var outer = new KeyProviderException(KeyProviderError.NoMatchingKey, "Could not unwrap: no such key.", Service("Forbidden.KeyNotFound", 404));
        var record = ErrorMapper.ToErrorRecord(outer, "f");
        Assert.Equal("KmsKeyNotFound", record.FullyQualifiedErrorId);
        Assert.Same(outer, record.Exception);
    }

    [Fact]
    public void MissingAndFailingCredentials_HaveOneId()
    {
        var missing = ErrorMapper.IdOf(new CredentialsNotFoundException("No Alibaba Cloud credentials were found."));
        var failing = ErrorMapper.IdOf(new CredentialsException("The credentials URI answered 500."));
        Assert.Same(ErrorIds.KmsCredentialsFailed, missing);
        Assert.Same(missing, failing);
        Assert.Equal(ErrorCategory.AuthenticationError, missing.Category);
    }

    [Fact]
    public void IOErrors_AreReadFailuresInReadingCommands_AndWriteFailuresInWritingOnes()
    {
        var io = new IOException("Input/output error");
        var read = ErrorMapper.ToErrorRecord(io, "f", FileAccess.Read);
        var write = ErrorMapper.ToErrorRecord(io, "f");
        Assert.Equal(("EnvelopeReadFailed", ErrorCategory.ReadError), (read.FullyQualifiedErrorId, read.CategoryInfo.Category));
        Assert.Equal(("EnvelopeWriteFailed", ErrorCategory.WriteError), (write.FullyQualifiedErrorId, write.CategoryInfo.Category));
    }

    [Fact]
    public void ExceptionTypes_MapByTheNearestListedBaseType()
    {
        Assert.Same(ErrorIds.EnvelopeDestinationExists, ErrorMapper.IdOf(new DestinationExistsException("/d/a.ekms"), FileAccess.Read));
        Assert.Same(ErrorIds.EnvelopeFileNotFound, ErrorMapper.IdOf(new FileNotFoundException("gone", "/d/a")));
        Assert.Same(ErrorIds.EnvelopeFileNotFound, ErrorMapper.IdOf(new DirectoryNotFoundException("gone")));
        Assert.Same(ErrorIds.EnvelopeAccessDenied, ErrorMapper.IdOf(new UnauthorizedAccessException("denied")));
        Assert.Same(ErrorIds.EnvelopeOperationStopped, ErrorMapper.IdOf(new TaskCanceledException()));
        Assert.Same(ErrorIds.EnvelopeInvalidArgument, ErrorMapper.IdOf(new ArgumentNullException("x")));
        Assert.Same(ErrorIds.KmsConfigurationInvalid, ErrorMapper.IdOf(new KmsConfigurationException("no region")));
        Assert.Same(ErrorIds.EnvelopeUnexpectedError, ErrorMapper.IdOf(new InvalidOperationException("?")));
    }

    [Fact]
    public void ASingleInnerException_IsUnwrappedFromAnAggregate()
    {
        var inner = new EnvelopeException(EnvelopeError.Truncated, "The file ends before its final frame.");
        var record = ErrorMapper.ToErrorRecord(new AggregateException(inner), "f");
        Assert.Equal("EnvelopeTruncated", record.FullyQualifiedErrorId);
        Assert.Same(inner, record.Exception);
    }

    [Fact]
    public void ThePowerShellHint_IsAddedByTheCmdletLayer_NotWrittenInTheCore()
    {
        var e = new DestinationExistsException("/d/a.ekms");
        Assert.DoesNotContain("-Force", e.Message);
        var record = ErrorMapper.ToErrorRecord(e, "/d/a");
        Assert.Equal($"{e.Message} Use -Force to overwrite it.", record.ErrorDetails.Message);
        Assert.Equal("Use -Force to overwrite it.", record.ErrorDetails.RecommendedAction);
        Assert.Same(e, record.Exception);
        Assert.Null(ErrorMapper.ToErrorRecord(new EnvelopeException(EnvelopeError.Truncated, "Short."), "f").ErrorDetails);
    }

    [Fact]
    public void AnUntrustedCertificate_PointsToConnectKms_WhereverTheKmsErrorIsWrapped()
    {
        var tls = new KmsException("Decrypt", KmsErrorKind.Connection, KmsException.ConnectionFailureCode, "The TLS connection failed.",
            inner: new System.Security.Authentication.AuthenticationException("untrusted root"));
        var wrapped = new KeyProviderException(KeyProviderError.Unavailable, "Could not unwrap.", tls);
        Assert.Contains("Connect-Kms -CaCertificatePath", ErrorMapper.ToErrorRecord(wrapped, "f").ErrorDetails.Message);
        Assert.DoesNotContain("Connect-Kms", tls.Message);
        var refused = new KmsException("Decrypt", KmsErrorKind.Connection, KmsException.ConnectionFailureCode, "Connection refused.");
        Assert.Null(ErrorMapper.ToErrorRecord(refused, "f").ErrorDetails);
    }
}
