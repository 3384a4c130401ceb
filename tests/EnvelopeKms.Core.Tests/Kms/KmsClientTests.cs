using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Kms;

public class KmsClientTests
{
    // 32 bytes whose base64 contains '+' and '/', which System.Text.Json servers escape (\u002B, \/).
    private static readonly byte[] DataKeyBytes = Enumerable.Range(0, 32).Select(i => (byte)(0xF8 + i * 7)).ToArray();
    private static string DataKeyBase64 => Convert.ToBase64String(DataKeyBytes);
    private static string EscapedBase64 => DataKeyBase64.Replace("+", "\\u002B").Replace("/", "\\/");

    private static string GenerateDataKeyJson(string keyId = "key-1")
        => $"{{\"KeyId\":\"{keyId}\",\"KeyVersionId\":\"v-1\",\"CiphertextBlob\":\"Y2lwaGVy\",\"Plaintext\":\"{EscapedBase64}\",\"RequestId\":\"r-1\"}}";

    [Fact]
    public async Task GenerateDataKey_V3_SendsSignedQueryAndDecodesEscapedPlaintext()
    {
        await using var server = new LocalHttpServer(r =>
            StubSignatures.VerifyV3(r, "testsecret") ? StubResponse.Json(GenerateDataKeyJson()) : StubResponse.Error(400, "SignatureDoesNotMatch"));
        using var client = TestClients.For(server);
        var context = EncryptionContext.Create(new Dictionary<string, string> { ["purpose"] = "test file" });

        using var result = await client.GenerateDataKeyAsync("alias/test-key", numberOfBytes: 32, encryptionContext: context);

        Assert.Equal(DataKeyBytes, result.Plaintext.Span.ToArray());
        Assert.Equal("key-1", result.KeyId);
        Assert.Equal("v-1", result.KeyVersionId);
        Assert.Equal("Y2lwaGVy", result.CiphertextBlob);
        var request = Assert.Single(server.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("GenerateDataKey", request.Header("x-acs-action"));
        Assert.Equal("2016-01-20", request.Header("x-acs-version"));
        Assert.Equal("alias/test-key", request.Query["KeyId"]);
        Assert.Equal("32", request.Query["NumberOfBytes"]);
        Assert.Equal("{\"purpose\":\"test file\"}", request.Query["EncryptionContext"]);
        Assert.Empty(request.Body);
        Assert.Matches("^[0-9a-f]{32}$", request.Header("x-acs-signature-nonce"));
    }

    [Fact]
    public async Task GenerateDataKey_DisposingTheResultWipesThePlaintext()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Json(GenerateDataKeyJson()));
        using var client = TestClients.For(server);
        var result = await client.GenerateDataKeyAsync("k");
        var buffer = result.Plaintext.BufferForTests;
        Assert.Contains(buffer, b => b != 0);
        result.Dispose();
        Assert.All(buffer, b => Assert.Equal(0, b));
        Assert.Throws<ObjectDisposedException>(() => result.Plaintext.Span.Length);
    }

    [Theory]
    [InlineData(KmsV1Transport.FormPost, "POST")]
    [InlineData(KmsV1Transport.QueryGet, "GET")]
    public async Task Decrypt_V1_IsSignedOverEveryParameter(KmsV1Transport transport, string expectedMethod)
    {
        await using var server = new LocalHttpServer(r => StubSignatures.VerifyV1(r, "testsecret")
            ? StubResponse.Json($"{{\"KeyId\":\"key-1\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{DataKeyBase64}\",\"RequestId\":\"r\"}}")
            : StubResponse.Error(400, "SignatureDoesNotMatch"));
        using var client = TestClients.For(server, new CountingCredentialsProvider(token: "sts-token"), KmsSignatureVersion.V1, transport);

        using var result = await client.DecryptAsync("blob+/=\n", new Dictionary<string, string> { ["a"] = "b c" });

        Assert.Equal(DataKeyBytes, result.Plaintext.Span.ToArray());
        var request = Assert.Single(server.Requests);
        Assert.Equal(expectedMethod, request.Method);
        var p = request.AllParameters;
        Assert.Equal("Decrypt", p["Action"]);
        Assert.Equal("blob+/=", p["CiphertextBlob"]);
        Assert.Equal("sts-token", p["SecurityToken"]);
        Assert.Equal("{\"a\":\"b c\"}", p["EncryptionContext"]);
    }

    [Theory]
    [InlineData(KmsSignatureVersion.V3)]
    [InlineData(KmsSignatureVersion.V1)]
    public async Task Encrypt_SendsThePlaintextOnlyInTheSignedFormBody(KmsSignatureVersion version)
    {
        await using var server = new LocalHttpServer(r =>
        {
            bool ok = version == KmsSignatureVersion.V3 ? StubSignatures.VerifyV3(r, "testsecret") : StubSignatures.VerifyV1(r, "testsecret");
            return ok ? StubResponse.Json("{\"KeyId\":\"acs:kms:cn-test:1:key/k2\",\"KeyVersionId\":\"v2\",\"CiphertextBlob\":\"d3JhcHBlZA==\",\"RequestId\":\"r\"}")
                      : StubResponse.Error(400, "SignatureDoesNotMatch");
        });
        using var client = TestClients.For(server, version: version, v1: KmsV1Transport.QueryGet);

        var result = await client.EncryptAsync("k2", DataKeyBytes);

        Assert.Equal("acs:kms:cn-test:1:key/k2", result.KeyId);
        Assert.Equal("d3JhcHBlZA==", result.CiphertextBlob);
        var request = Assert.Single(server.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal(DataKeyBase64, request.Form["Plaintext"]);
        Assert.False(request.Query.ContainsKey("Plaintext"));
        Assert.DoesNotContain(Uri.EscapeDataString(DataKeyBase64), request.Target);
        Assert.StartsWith("application/x-www-form-urlencoded", request.Header("content-type"));
    }

    [Fact]
    public async Task ServiceError_IsMappedToKmsException_AndNotRetried()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(404, "Forbidden.KeyNotFound", "The specified Key is not found.", "REQ-42"));
        using var client = TestClients.For(server);

        var e = await Assert.ThrowsAsync<KmsException>(() => client.DescribeKeyAsync("missing"));

        Assert.Equal("Forbidden.KeyNotFound", e.Code);
        Assert.Equal("REQ-42", e.RequestId);
        Assert.Equal(404, e.HttpStatus);
        Assert.Equal("DescribeKey", e.Operation);
        Assert.Equal(KmsErrorKind.Service, e.Kind);
        Assert.Contains("The specified Key is not found.", e.Message);
        Assert.Single(server.Requests);
        Assert.Equal(0, client.RetryCount);
    }

    [Theory]
    [InlineData(400, "InvalidAccessKeyId.NotFound")]
    [InlineData(404, "InvalidAccessKeyId.NotFound")]
    [InlineData(400, "SignatureDoesNotMatch")]
    [InlineData(400, "InvalidParameter")]
    [InlineData(409, "Rejected.Disabled")]
    [InlineData(403, "Forbidden.NoPermission")]
    public async Task AuthenticationParameterAndStateErrors_AreNeverRetried(int status, string code)
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(status, code));
        using var client = TestClients.For(server, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EncryptAsync("k", new byte[] { 1 }));
        Assert.Equal(code, e.Code);
        Assert.Single(server.Requests);
        Assert.Equal(1, e.Attempts);
    }

    [Theory]
    [InlineData(503, "ServiceUnavailableTemporary")]
    [InlineData(400, "Throttling")]
    [InlineData(429, "Rejected.Throttling")]
    [InlineData(500, "InternalFailure")]
    public async Task TransientErrors_AreRetriedWithANewNonceAndSignature(int status, string code)
    {
        int calls = 0;
        await using var server = new LocalHttpServer(r =>
            Interlocked.Increment(ref calls) <= 2 ? StubResponse.Error(status, code) : StubResponse.Json("{\"RequestId\":\"ok\"}"));
        using var client = TestClients.For(server, maxAttempts: 5);
        var events = new List<KmsRetryEventArgs>();
        client.Retrying += (_, e) => events.Add(e);

        await client.EnableKeyAsync("k");

        var requests = server.Requests.ToArray();
        Assert.Equal(3, requests.Length);
        Assert.Equal(3, requests.Select(r => r.Header("x-acs-signature-nonce")).Distinct().Count());
        Assert.Equal(3, requests.Select(r => r.Header("authorization")).Distinct().Count());
        Assert.Equal(2, client.RetryCount);
        Assert.Equal(new[] { 1, 2 }, events.Select(e => e.FailedAttempt));
        Assert.All(events, e => Assert.Equal(code, e.Error.Code));
    }

    [Fact]
    public async Task Retries_StopAtMaxAttempts()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(503, "ServiceUnavailableTemporary"));
        using var client = TestClients.For(server, maxAttempts: 3);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.DisableKeyAsync("k"));
        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(3, e.Attempts);
        Assert.True(e.IsRetryable);
    }

    [Fact]
    public async Task A5xxWithoutAKmsBody_IsRetriedAndReportedAsInvalidResponse()
    {
        await using var server = new LocalHttpServer(_ => new StubResponse(502, "<html>bad gateway</html>", "text/html"));
        using var client = TestClients.For(server, maxAttempts: 2);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.DisableKeyAsync("k"));
        Assert.Equal(KmsErrorKind.InvalidResponse, e.Kind);
        Assert.Equal(502, e.HttpStatus);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task SlowServer_TimesOutPerAttempt_AndIsRetried()
    {
        await using var server = new LocalHttpServer(async _ => { await Task.Delay(3000); return StubResponse.Json("{}"); });
        using var client = TestClients.For(server, maxAttempts: 2, attemptTimeout: TimeSpan.FromMilliseconds(200));
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.Equal(KmsErrorKind.Timeout, e.Kind);
        Assert.Equal(KmsException.TimeoutCode, e.Code);
        Assert.Equal(2, e.Attempts);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task Cancellation_StopsTheCallWithoutRetrying()
    {
        await using var server = new LocalHttpServer(async _ => { await Task.Delay(3000); return StubResponse.Json("{}"); });
        using var client = TestClients.For(server, maxAttempts: 5);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.EnableKeyAsync("k", cts.Token));
        Assert.Single(server.Requests);
        Assert.Equal(0, client.RetryCount);
    }

    [Fact]
    public async Task DroppedConnection_IsAConnectionFailure_AndIsRetried()
    {
        await using var server = new LocalHttpServer(_ => new StubResponse(200, "") { Drop = true });
        using var client = TestClients.For(server, maxAttempts: 2);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.Equal(KmsErrorKind.Connection, e.Kind);
        // SocketsHttpHandler itself resends a request whose connection closed before any response byte, so the
        // server may see more requests than the client made attempts; the client's own count is what is bounded.
        Assert.Equal(2, e.Attempts);
        Assert.Equal(1, client.RetryCount);
    }

    [Fact]
    public async Task ClockSkew_IsNamedInTheMessage_AndNotRetried()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."));
        using var client = TestClients.For(server, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.True(e.IsClockSkew);
        Assert.Contains("clock", e.Message);
        Assert.Contains("skew", e.Message);
        Assert.Single(server.Requests);
    }

    [Fact]
    public async Task ExpiredSecurityToken_RefreshesCredentialsOnceAndRetries()
    {
        await using var server = new LocalHttpServer(r =>
            r.Header("x-acs-security-token") == "old" ? StubResponse.Error(400, "InvalidSecurityToken.Expired") : StubResponse.Json("{\"RequestId\":\"ok\"}"));
        var credentials = new CountingCredentialsProvider(token: "old",
            afterInvalidate: _ => new EnvelopeKms.Credentials.AlibabaCloudCredentials("testid", "testsecret", "new"));
        using var client = TestClients.For(server, credentials, maxAttempts: 1);

        await client.EnableKeyAsync("k");

        Assert.Equal(1, credentials.Invalidations);
        Assert.Equal(new[] { "old", "new" }, server.Requests.Select(r => r.Header("x-acs-security-token")));
    }

    [Fact]
    public async Task ExpiredSecurityToken_IsRefreshedOnlyOnce()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(400, "InvalidSecurityToken.Expired"));
        var credentials = new CountingCredentialsProvider(token: "old",
            afterInvalidate: _ => new EnvelopeKms.Credentials.AlibabaCloudCredentials("testid", "testsecret", "new"));
        using var client = TestClients.For(server, credentials, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.Equal("InvalidSecurityToken.Expired", e.Code);
        Assert.Equal(1, credentials.Invalidations);
        Assert.Equal(new[] { "old", "new" }, server.Requests.Select(r => r.Header("x-acs-security-token")));
    }

    [Fact]
    public async Task ExpiredSecurityToken_IsNotResentWhenTheSourceCannotRenewIt()
    {
        // Explicit credentials hand back the same token after Invalidate: a second request would fail the same way.
        await using var server = new LocalHttpServer(_ => StubResponse.Error(400, "InvalidSecurityToken.Expired"));
        var credentials = new CountingCredentialsProvider(token: "old");
        using var client = TestClients.For(server, credentials, maxAttempts: 5);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.Equal("InvalidSecurityToken.Expired", e.Code);
        Assert.Equal(1, e.Attempts);
        Assert.Equal(1, credentials.Invalidations);
        Assert.Single(server.Requests);
    }

    [Fact]
    public async Task PlaintextNeverAppearsInExceptionMessages()
    {
        // A V1 SignatureDoesNotMatch echoes the server's string to sign, which holds every parameter, Plaintext included.
        await using var server = new LocalHttpServer(r => StubResponse.Error(400, "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&Plaintext%3D" + Uri.EscapeDataString(r.Form["Plaintext"])));
        using var client = TestClients.For(server, version: KmsSignatureVersion.V1);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EncryptAsync("k", DataKeyBytes));
        AssertNoKeyMaterial(e);
        Assert.Null(e.ClientStringToSign);

        // A GenerateDataKey answer that is unusable after the Plaintext was read.
        await using var broken = new LocalHttpServer(_ => StubResponse.Json($"{{\"Plaintext\":\"{DataKeyBase64}\",\"KeyId\":\"k\"}}"));
        using var client2 = TestClients.For(broken);
        var e2 = await Assert.ThrowsAsync<KmsException>(() => client2.GenerateDataKeyAsync("k"));
        Assert.Equal(KmsErrorKind.InvalidResponse, e2.Kind);
        AssertNoKeyMaterial(e2);
    }

    private static void AssertNoKeyMaterial(Exception e)
    {
        var text = e.ToString();
        Assert.DoesNotContain(DataKeyBase64, text);
        Assert.DoesNotContain(Uri.EscapeDataString(DataKeyBase64), text);
        Assert.DoesNotContain(AcsSignatureEncode(DataKeyBase64), text);
        Assert.DoesNotContain("testsecret", text);
    }

    private static string AcsSignatureEncode(string s) => EnvelopeKms.Cloud.Signing.AcsPercentEncoding.Encode(s);

    [Fact]
    public async Task SignatureMismatch_V3_ExposesTheClientStringToSign()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Error(400, "SignatureDoesNotMatch", "mismatch"));
        using var client = TestClients.For(server);
        var e = await Assert.ThrowsAsync<KmsException>(() => client.EnableKeyAsync("k"));
        Assert.StartsWith("ACS3-HMAC-SHA256\n", e.ClientStringToSign);
    }

    [Fact]
    public async Task ListAllKeys_FollowsPages()
    {
        await using var server = new LocalHttpServer(r =>
        {
            int page = int.Parse(r.Query["PageNumber"]);
            var keys = Enumerable.Range((page - 1) * 2 + 1, 2).Where(i => i <= 5).Select(i => $"{{\"KeyId\":\"k{i}\",\"KeyArn\":\"acs:kms:cn-test:1:key/k{i}\"}}");
            return StubResponse.Json($"{{\"Keys\":{{\"Key\":[{string.Join(",", keys)}]}},\"TotalCount\":5,\"PageNumber\":{page},\"PageSize\":2,\"RequestId\":\"r\"}}");
        });
        using var client = TestClients.For(server);

        var all = await KmsPaging.FetchAllAsync(client.ListAllKeysAsync(pageSize: 2));

        Assert.Equal(new[] { "k1", "k2", "k3", "k4", "k5" }, all.Select(k => k.KeyId));
        Assert.Equal("acs:kms:cn-test:1:key/k5", all[4].KeyArn);
        Assert.Equal(3, server.Requests.Count);
    }

    [Fact]
    public async Task ListAliasesByKeyId_AndTags_ParseTheWrappedLists()
    {
        await using var server = new LocalHttpServer(r => r.Header("x-acs-action") switch
        {
            "ListAliasesByKeyId" => StubResponse.Json("{\"Aliases\":{\"Alias\":[{\"AliasName\":\"alias/a\",\"AliasArn\":\"acs:kms:cn-test:1:alias/a\",\"KeyId\":\"k\"}]},\"TotalCount\":\"1\",\"PageNumber\":1,\"PageSize\":10,\"RequestId\":\"r\"}"),
            "ListResourceTags" => StubResponse.Json("{\"Tags\":{\"Tag\":[{\"KeyId\":\"k\",\"TagKey\":\"env\",\"TagValue\":\"prod\"}]},\"RequestId\":\"r\"}"),
            "TagResource" => StubResponse.Json("{\"RequestId\":\"r\"}"),
            _ => StubResponse.Error(404, "InvalidAction.NotFound"),
        });
        using var client = TestClients.For(server);

        var aliases = await client.ListAliasesByKeyIdAsync("k");
        var tags = await client.ListResourceTagsAsync("k");
        await client.TagResourceAsync("k", new Dictionary<string, string> { ["env"] = "prod" });

        Assert.Equal("alias/a", Assert.Single(aliases.Items).AliasName);
        Assert.Equal(1, aliases.TotalCount);
        Assert.Equal(("env", "prod"), (tags[0].TagKey, tags[0].TagValue));
        Assert.Equal("[{\"TagKey\":\"env\",\"TagValue\":\"prod\"}]", server.Requests.Last().Query["Tags"]);
    }

    [Fact]
    public async Task DescribeKey_ParsesKeyMetadataWithEmptyDates()
    {
        await using var server = new LocalHttpServer(_ => StubResponse.Json(
            "{\"KeyMetadata\":{\"CreationDate\":\"2021-04-12T06:00:54Z\",\"Description\":\"\",\"KeyId\":\"d6bee1cb\",\"KeySpec\":\"Aliyun_AES_256\"," +
            "\"KeyState\":\"Enabled\",\"KeyUsage\":\"ENCRYPT/DECRYPT\",\"PrimaryKeyVersion\":\"7ce1d081\",\"DeleteDate\":\"\",\"Creator\":\"1540\"," +
            "\"Arn\":\"acs:kms:cn-qingdao:1540:key/d6bee1cb\",\"Origin\":\"Aliyun_KMS\",\"MaterialExpireTime\":\"\",\"ProtectionLevel\":\"SOFTWARE\"," +
            "\"LastRotationDate\":\"2021-04-12T06:00:54Z\",\"AutomaticRotation\":\"Disabled\",\"RotationInterval\":\"31536000s\"," +
            "\"DeletionProtection\":\"Disabled\"},\"RequestId\":\"36c7e41a\"}"));
        using var client = TestClients.For(server);

        var key = await client.DescribeKeyAsync("alias/x");

        Assert.Equal("d6bee1cb", key.KeyId);
        Assert.Equal("acs:kms:cn-qingdao:1540:key/d6bee1cb", key.Arn);
        Assert.Equal(new DateTimeOffset(2021, 4, 12, 6, 0, 54, TimeSpan.Zero), key.CreationDate);
        Assert.Null(key.DeleteDate);
        Assert.Null(key.MaterialExpireTime);
        Assert.Equal("Enabled", key.KeyState);
        Assert.Equal("31536000s", key.RotationInterval);
        Assert.Equal("Disabled", key.DeletionProtection);
    }

    [Fact]
    public void Backoff_IsFullJitterUnderTheExponentialCeiling()
    {
        var options = new KmsClientOptions
        {
            Endpoint = KmsEndpoint.FromUrl("http://127.0.0.1:9"),
            Credentials = new CountingCredentialsProvider(),
            Retry = new KmsRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromMilliseconds(500) },
        };
        using var transport = new KmsHttpTransport(options, new HttpClientHandler());
        for (int attempt = 1; attempt <= 6; attempt++)
        {
            double ceiling = Math.Min(500, 100 * Math.Pow(2, attempt - 1));
            var samples = Enumerable.Range(0, 200).Select(_ => transport.ComputeBackoff(attempt).TotalMilliseconds).ToList();
            Assert.All(samples, d => Assert.InRange(d, 0, ceiling));
            Assert.True(samples.Max() > ceiling / 2, "jitter should spread over the whole range");
        }
    }
}
