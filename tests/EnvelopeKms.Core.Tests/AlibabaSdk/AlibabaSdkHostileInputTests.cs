using System.Buffers.Binary;
using System.Text;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>
/// Every way an Encryption SDK message can be bad: truncated, another version, an algorithm this build does not read,
/// a tampered header or body, oversized declared lengths, encodings that are not DER, entries out of the SDKs'
/// order. Each gives its own error kind, and nothing is ever written to the output.
/// </summary>
public class AlibabaSdkHostileInputTests
{
    private static readonly SdkVector V = SdkVector.All[1];          // AES-256-GCM, context, one CMK, 1 byte
    private static readonly SdkVector TwoKeys = SdkVector.All[3];    // AES-128-GCM, two CMKs
    private static readonly byte[] Arn = Encoding.UTF8.GetBytes(V.Keys[0].Arn);
    private static readonly byte[] Blob = Convert.FromBase64String(V.Keys[0].Blob);

    // ---- builders ------------------------------------------------------------------------------------------------

    private static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
    private static byte[] Tlv(byte tag, params byte[][] parts) { var c = Cat(parts); return Cat(AlibabaSdkEnvelope.DerHeader(tag, c.Length), c); }
    private static byte[] Seq(params byte[][] parts) => Tlv(0x30, parts);
    private static byte[] Set(params byte[][] parts) => Tlv(0x31, parts); // in the order given: not sorted
    private static byte[] Oct(byte[] value) => Tlv(0x04, value);
    private static byte[] Oct(string value) => Oct(Encoding.UTF8.GetBytes(value));
    private static byte[] Int(int value) => [0x02, 0x01, (byte)value];
    private static byte[] I32(int value) { var b = new byte[4]; BinaryPrimitives.WriteInt32BigEndian(b, value); return b; }
    private static byte[] Lp(byte[] value) => Cat(I32(value.Length), value);
    private static byte[] Lp(string value) => Lp(Encoding.UTF8.GetBytes(value));
    /// <summary>The stream layout's body IV: its length little-endian, as the Java SDK's DefaultEncryptHandler.writeIv stores it, then the IV.</summary>
    private static byte[] BodyIv(byte[] iv) { var b = new byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, iv.Length); return Cat(b, iv); }

    private static byte[] DefaultKeys => Set(Seq(Oct(Arn), Oct(Blob)));
    private static byte[] DefaultContext => Set(Seq(Oct("project"), Oct("Apollo")), Seq(Oct("purpose"), Oct("known-answer vector")));

    /// <summary>Vector 1's DER message, field by field, with any field replaced.</summary>
    private static byte[] Der(byte[]? version = null, byte[]? algorithm = null, byte[]? keys = null, byte[]? context = null,
        byte[]? headerIv = null, byte[]? headerTag = null, byte[]? bodyIv = null, byte[]? ciphertext = null, byte[]? bodyTag = null,
        byte[]? extraHead = null, byte[]? trailing = null)
    {
        var head = Seq(version ?? Int(1), algorithm ?? Int(2), keys ?? DefaultKeys, context ?? DefaultContext,
            headerIv ?? Oct(V.HeaderIv), headerTag ?? Oct(V.HeaderAuthTag), extraHead ?? []);
        var body = Seq(bodyIv ?? Oct(V.BodyIv), ciphertext ?? Oct(V.Ciphertext), bodyTag ?? Oct(V.BodyAuthTag));
        return Cat(Seq(head, body), trailing ?? []);
    }

    /// <summary>Vector 1's stream message, field by field, with any field replaced.</summary>
    private static byte[] Stream(byte[]? version = null, byte[]? algorithm = null, byte[]? context = null, byte[]? keys = null,
        byte[]? headerIv = null, byte[]? headerTag = null, byte[]? bodyIv = null, byte[]? body = null)
        => Cat(version ?? I32(1), algorithm ?? I32(2), context ?? Lp(V.ContextBytes), keys ?? Cat(I32(1), Lp(Arn), Lp(V.Keys[0].Blob)),
            headerIv ?? Lp(V.HeaderIv), headerTag ?? Lp(V.HeaderAuthTag), bodyIv ?? BodyIv(V.BodyIv), body ?? Cat(V.Ciphertext, V.BodyAuthTag));

    private static async Task<EnvelopeException> Rejects(byte[] message, EnvelopeError expected, IDataKeyProvider? provider = null, bool trickle = false,
        EncryptionContext? required = null)
    {
        var output = new MemoryStream();
        Stream input = trickle ? new TrickleStream(message) : new MemoryStream(message);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => AlibabaSdkEnvelope.DecryptAsync(input, output, provider ?? V.Provider(),
            new AlibabaSdkDecryptOptions { RequiredContext = required ?? EncryptionContext.Empty }));
        Assert.True(expected == e.Error, $"expected {expected}, got {e.Error}: {e.Message}");
        Assert.Equal(0, output.Length);
        return e;
    }

    [Fact]
    public async Task TheBuildersReproduceTheVectorAndItDecrypts()
    {
        Assert.Equal(V.Asn1, Der());
        Assert.Equal(V.Stream, Stream());
        foreach (bool trickle in new[] { false, true })
        {
            Assert.Equal(V.Plaintext, (await Sdk.DecryptAsync(Der(), V.Provider(), trickle: trickle)).Plaintext);
            Assert.Equal(V.Plaintext, (await Sdk.DecryptAsync(Stream(), V.Provider(), trickle: trickle)).Plaintext);
        }
    }

    // ---- truncation ----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryTruncationOfTheDerMessageIsRefused(bool trickle)
    {
        var message = V.Asn1;
        for (int cut = 0; cut < message.Length; cut++)
        {
            var provider = V.Provider();
            // Fewer than 10 bytes do not show the "30 81 C3 30 81 9B 02 01 01 02" pattern yet.
            var e = await Rejects(message[..cut], cut < 10 ? EnvelopeError.NotEnvelope : EnvelopeError.Truncated, provider, trickle);
            // A seekable input's declared length is checked against the file before any KMS call.
            if (!trickle) Assert.Equal(0, provider.DecryptCalls);
            if (cut == 0) Assert.Contains("empty", e.Message);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryTruncationOfTheStreamMessageIsRefused(bool trickle)
    {
        var message = V.Stream;
        int bodyStart = message.Length - V.Ciphertext.Length - 16;
        for (int cut = 0; cut < message.Length; cut++)
        {
            // The stream layout stores no body length: a cut inside the body leaves a shorter "ciphertext‖tag" whose
            // tag fails (EnvelopeAuthenticationFailed); anything shorter is truncated.
            var expected = cut < 8 ? EnvelopeError.NotEnvelope : cut < bodyStart + 16 ? EnvelopeError.Truncated : EnvelopeError.FrameTampered;
            await Rejects(message[..cut], expected, trickle: trickle);
        }
    }

    // ---- version and algorithm -----------------------------------------------------------------------------------

    [Fact]
    public async Task AnotherVersionIsRefused()
    {
        await Rejects(Der(version: Int(2)), EnvelopeError.UnsupportedVersion);
        await Rejects(Der(version: Int(0)), EnvelopeError.UnsupportedVersion);
        await Rejects(Stream(version: I32(2)), EnvelopeError.UnsupportedVersion);
        await Rejects(Stream(version: I32(255)), EnvelopeError.UnsupportedVersion);
    }

    [Theory]
    [InlineData(3, "AES_CBC_NOPADDING_128")]
    [InlineData(4, "AES_CBC_NOPADDING_256")]
    [InlineData(5, "AES_CBC_PKCS5_128")]
    [InlineData(6, "AES_CBC_PKCS5_256")]
    [InlineData(7, "AES_CTR_NOPADDING_128")]
    [InlineData(8, "AES_CTR_NOPADDING_256")]
    [InlineData(9, "SM4_GCM_NOPADDING_128")]
    [InlineData(10, "SM4_CBC_NOPADDING_128")]
    [InlineData(11, "SM4_CBC_PKCS5_128")]
    [InlineData(12, "SM4_CTR_NOPADDING_128")]
    [InlineData(13, "no Encryption SDK defines")]
    [InlineData(127, "no Encryption SDK defines")]
    public async Task OtherAlgorithmsAreRefusedByName(int algorithm, string expected)
    {
        var provider = V.Provider();
        var e = await Rejects(Der(algorithm: Int(algorithm)), EnvelopeError.SdkUnsupportedAlgorithm, provider);
        Assert.Contains(expected, e.Message);
        e = await Rejects(Stream(algorithm: I32(algorithm)), EnvelopeError.SdkUnsupportedAlgorithm, provider);
        Assert.Contains(expected, e.Message);
        Assert.Equal(0, provider.DecryptCalls);
    }

    [Fact]
    public async Task AlgorithmZeroIsRefused()
    {
        await Rejects(Der(algorithm: Int(0)), EnvelopeError.SdkUnsupportedAlgorithm);
        await Rejects(Stream(algorithm: I32(0)), EnvelopeError.NotEnvelope); // not even recognised: the SDKs have no algorithm 0
    }

    [Fact]
    public async Task TheAlgorithmMustMatchTheDataKeyLength()
    {
        // Algorithm 1 declared over a 32-byte key: the key provider is asked for 16 bytes and refuses the 32 it has.
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => Sdk.DecryptAsync(Der(algorithm: Int(1)), V.Provider()));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
    }

    // ---- tampering -----------------------------------------------------------------------------------------------

    [Fact]
    public async Task EveryBitOfTheHeaderTagIsChecked()
    {
        foreach (var layout in new[] { AlibabaSdkLayout.Asn1, AlibabaSdkLayout.Stream })
        {
            for (int bit = 0; bit < 128; bit++)
            {
                var tag = (byte[])V.HeaderAuthTag.Clone();
                tag[bit / 8] ^= (byte)(1 << (bit % 8));
                await Rejects(layout == AlibabaSdkLayout.Asn1 ? Der(headerTag: Oct(tag)) : Stream(headerTag: Lp(tag)), EnvelopeError.HeaderTampered);
            }
        }
    }

    [Fact]
    public async Task ChangedHeaderFieldsFailTheHeaderTag()
    {
        var otherContext = Set(Seq(Oct("project"), Oct("Apollp")), Seq(Oct("purpose"), Oct("known-answer vector")));
        await Rejects(Der(context: otherContext), EnvelopeError.HeaderTampered);
        var otherArn = Set(Seq(Oct(V.Keys[0].Arn.Replace("key-vector", "key-vectos")), Oct(Blob)));
        await Rejects(Der(keys: otherArn), EnvelopeError.HeaderTampered);
        await Rejects(Der(headerIv: Oct(V.BodyIv)), EnvelopeError.HeaderTampered);
        var streamContext = (byte[])V.ContextBytes.Clone();
        streamContext[^1] ^= 0x01; // "vectos"
        await Rejects(Stream(context: Lp(streamContext)), EnvelopeError.HeaderTampered);
    }

    [Fact]
    public async Task AWrongDataKeyFailsTheHeaderTag()
    {
        var wrong = new SdkKeyProvider().Add(V.Keys[0].Blob, Enumerable.Repeat((byte)7, 32).ToArray());
        await Rejects(V.Asn1, EnvelopeError.HeaderTampered, wrong);
        await Rejects(V.Stream, EnvelopeError.HeaderTampered, wrong);
    }

    [Fact]
    public async Task AnEntryThatUnwrapsToAnotherKeyIsSkippedForTheNextOne()
    {
        // TwoKeys has two CMKs: the first (by message order) unwraps to a wrong key, the second to the right one.
        foreach (var layout in new[] { AlibabaSdkLayout.Asn1, AlibabaSdkLayout.Stream })
        {
            var message = TwoKeys.Message(layout);
            var header = await AlibabaSdkEnvelope.ReadHeaderAsync(new MemoryStream(message));
            var first = header.EncryptedDataKeys[0].CiphertextBlob;
            var second = header.EncryptedDataKeys[1].CiphertextBlob;
            var provider = new SdkKeyProvider().Add(first, new byte[16]).Add(second, TwoKeys.DataKey);
            var (result, plaintext) = await Sdk.DecryptAsync(message, provider);
            Assert.Equal(TwoKeys.Plaintext, plaintext);
            Assert.Equal(second, result.UnwrappedFrom!.CiphertextBlob);
            Assert.Equal(2, provider.DecryptCalls);

            var bothWrong = new SdkKeyProvider().Add(first, new byte[16]).Add(second, new byte[16]);
            await Rejects(message, EnvelopeError.HeaderTampered, bothWrong);
        }
    }

    [Fact]
    public async Task EveryBitOfTheBodyIsCheckedAndNothingIsWritten()
    {
        var v = SdkVector.All[4]; // 64 bytes of plaintext
        foreach (var layout in new[] { AlibabaSdkLayout.Asn1, AlibabaSdkLayout.Stream })
        {
            var message = v.Message(layout);
            int bodyEnd = message.Length; // ciphertext and tag are the last bytes in both layouts (with the tag's DER header in between for ASN.1)
            for (int i = bodyEnd - 16 - 2 - v.Ciphertext.Length; i < bodyEnd; i++)
            {
                if (layout == AlibabaSdkLayout.Asn1 && i is var j && (j == bodyEnd - 18 || j == bodyEnd - 17)) continue; // the tag's 04 10
                var tampered = (byte[])message.Clone();
                tampered[i] ^= 0x80;
                var e = await Rejects(tampered, EnvelopeError.FrameTampered, v.Provider());
                Assert.Contains("body", e.Message);
            }
        }
    }

    [Fact]
    public async Task BytesAfterTheMessageAreRefused()
    {
        var provider = V.Provider();
        await Rejects(Der(trailing: [0]), EnvelopeError.SdkMalformed, provider);
        Assert.Equal(0, provider.DecryptCalls); // a seekable input: found before KMS
        await Rejects(Der(trailing: [0]), EnvelopeError.SdkMalformed, trickle: true);
        // The stream layout's body runs to the end: an extra byte is part of "ciphertext‖tag", and the tag fails.
        await Rejects(Cat(V.Stream, [0]), EnvelopeError.FrameTampered);
    }

    [Fact]
    public async Task TheRequiredContextIsCheckedBeforeKms()
    {
        var provider = V.Provider();
        var missing = EncryptionContext.Create(new Dictionary<string, string> { ["tenant"] = "a" });
        var different = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Gemini" });
        foreach (var message in new[] { V.Asn1, V.Stream })
        {
            Assert.Contains("no 'tenant'", (await Rejects(message, EnvelopeError.ContextMismatch, provider, required: missing)).Message);
            Assert.Contains("different value for 'project'", (await Rejects(message, EnvelopeError.ContextMismatch, provider, required: different)).Message);
        }
        Assert.Equal(0, provider.DecryptCalls);
        var subset = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Apollo" });
        Assert.Equal(V.Plaintext, (await Sdk.DecryptAsync(V.Stream, V.Provider(), subset)).Plaintext);
    }

    // ---- oversized lengths ---------------------------------------------------------------------------------------

    [Fact]
    public async Task HugeDeclaredLengthsAreRefusedBeforeAllocating()
    {
        // The message declares 2^31 − 1 bytes (needing 4 length bytes): over the in-memory limit.
        await Rejects(Cat([0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF], Der()[3..]), EnvelopeError.SdkMessageTooLarge);
        // Eight length bytes: beyond any file.
        await Rejects(Cat([0x30, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], Der()[3..]), EnvelopeError.SdkMessageTooLarge);
        // A consistent message whose ciphertext is one byte over the limit (read from a pipe, so only the lengths speak).
        long ciphertext = AlibabaSdkFormat.MaxPlaintextLength + 1;
        var head = Der()[3..][..(3 + 0x9B)];
        var bodyRest = Cat(Oct(V.BodyIv), AlibabaSdkEnvelope.DerHeader(0x04, ciphertext));
        long bodyLength = bodyRest.Length + ciphertext + 18;
        var bodyHeader = AlibabaSdkEnvelope.DerHeader(0x30, bodyLength);
        var outer = AlibabaSdkEnvelope.DerHeader(0x30, head.Length + bodyHeader.Length + bodyLength);
        await Rejects(Cat(outer, head, bodyHeader, bodyRest), EnvelopeError.SdkMessageTooLarge, trickle: true);
    }

    [Fact]
    public async Task APipeThatDeclaresTheLargestBodyButEndsEarlyCostsNoLargeBuffer()
    {
        // Vector 1's genuine header (its tag verifies), then a body declaring the largest ciphertext allowed, and 100 bytes.
        long ciphertext = AlibabaSdkFormat.MaxPlaintextLength;
        var head = Der()[3..][..(3 + 0x9B)];
        var bodyRest = Cat(Oct(V.BodyIv), AlibabaSdkEnvelope.DerHeader(0x04, ciphertext));
        long bodyLength = bodyRest.Length + ciphertext + 18;
        var bodyHeader = AlibabaSdkEnvelope.DerHeader(0x30, bodyLength);
        var outer = AlibabaSdkEnvelope.DerHeader(0x30, head.Length + bodyHeader.Length + bodyLength);
        var message = Cat(outer, head, bodyHeader, bodyRest, new byte[100]);
        var provider = V.Provider();
        long before = GC.GetAllocatedBytesForCurrentThread();
        // A pipe whose reads complete synchronously, so that everything below runs on this thread and is counted.
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => AlibabaSdkEnvelope.DecryptAsync(new SyncPipe(message), System.IO.Stream.Null, provider));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(EnvelopeError.Truncated, e.Error);
        Assert.Equal(1, provider.DecryptCalls); // it got as far as the body
        Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated for a 100-byte body");
    }

    [Fact]
    public async Task AHeaderOverItsCapIsRefused()
    {
        int headLength = AlibabaSdkFormat.MaxHeadLength + 1;
        var headHeader = AlibabaSdkEnvelope.DerHeader(0x30, headLength);
        var message = Cat(AlibabaSdkEnvelope.DerHeader(0x30, headHeader.Length + headLength + 100), headHeader, Int(1), Int(2));
        await Rejects(message, EnvelopeError.LimitExceeded, trickle: true);
    }

    [Fact]
    public async Task TooManyOrTooLongKeysAreRefused()
    {
        var seventeen = Enumerable.Range(0, 17).Select(i => Seq(Oct($"acs:kms:cn-hangzhou:1234567890:key/k{i:D2}"), Oct(Blob))).ToArray();
        Array.Sort(seventeen, (a, b) => a.AsSpan().SequenceCompareTo(b));
        await Rejects(Der(keys: Set(seventeen)), EnvelopeError.LimitExceeded);
        await Rejects(Der(keys: Set(Seq(Oct(new string('a', 2049)), Oct(Blob)))), EnvelopeError.LimitExceeded);
        await Rejects(Der(keys: Set(Seq(Oct(Arn), Oct(new byte[3073])))), EnvelopeError.LimitExceeded);

        await Rejects(Stream(keys: I32(17)), EnvelopeError.LimitExceeded);
        await Rejects(Stream(keys: Cat(I32(1), I32(2049))), EnvelopeError.LimitExceeded);
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), I32(4097))), EnvelopeError.LimitExceeded);
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), I32(int.MaxValue))), EnvelopeError.LimitExceeded);
    }

    [Fact]
    public async Task TooLongContextsAreRefused()
    {
        await Rejects(Stream(context: I32(AlibabaSdkFormat.MaxContextBytes + 1)), EnvelopeError.LimitExceeded);
        await Rejects(Stream(context: I32(int.MaxValue)), EnvelopeError.LimitExceeded);
        // In DER the context has no length of its own: it is refused when it serializes to more than the SDKs handle.
        await Rejects(Der(context: Set(Seq(Oct("k"), Oct(new string('v', AlibabaSdkFormat.MaxContextBytes))))), EnvelopeError.LimitExceeded);
    }

    [Fact]
    public async Task AMessageOverTheLimitIsRefusedWithoutReadingIt()
    {
        // A sparse file: the stream layout's header, then a body one byte over the limit.
        using var dir = new TempDir();
        string path = dir.File("huge.bin");
        await using (var file = File.Create(path))
        {
            var header = V.Stream[..^(V.Ciphertext.Length + 16)];
            file.Write(header);
            file.SetLength(header.Length + AlibabaSdkFormat.MaxPlaintextLength + 1 + 16);
        }
        var provider = V.Provider();
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeKms.Files.AlibabaSdkFileOperations.DecryptFileAsync(path, dir.File("out"), provider));
        Assert.Equal(EnvelopeError.SdkMessageTooLarge, e.Error);
        Assert.Contains("2 GiB − 1 MiB", e.Message);
        Assert.Equal(0, provider.DecryptCalls);
        Assert.False(File.Exists(dir.File("out")));
        Assert.Single(Directory.GetFiles(dir.Path));
        var info = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeKms.Files.AlibabaSdkFileOperations.ReadHeaderAsync(path));
        Assert.Equal(EnvelopeError.SdkMessageTooLarge, info.Error);
    }

    // ---- not DER ---------------------------------------------------------------------------------------------------

    [Fact]
    public async Task LengthsThatAreNotDerAreRefused()
    {
        var valid = Der();
        // The whole message with an indefinite length (BER), a length with a leading zero, a long form below 128.
        await Rejects(Cat([0x30, 0x80], valid[3..], [0, 0]), EnvelopeError.SdkMalformed);
        await Rejects(Cat([0x30, 0x82, 0x00, 0xC3], valid[3..]), EnvelopeError.SdkMalformed);
        // The head (0x9B bytes) is fine; the body (0x23 bytes) written in long form:
        var head = valid[3..][..(3 + 0x9B)];
        var body = valid[(3 + 3 + 0x9B)..];
        await Rejects(Cat([0x30, 0x81, 0xC4], head, [0x30, 0x81, 0x23], body[2..]), EnvelopeError.SdkMalformed);
        // The same inside the head: the header IV's length in long form.
        await Rejects(Der(headerIv: Cat([0x04, 0x81, 0x0C], V.HeaderIv)), EnvelopeError.SdkMalformed);
    }

    [Fact]
    public async Task EncodingsThatAreNotDerAreRefused()
    {
        // A SET OF out of DER order (the longer SEQUENCE first).
        await Rejects(Der(context: Set(Seq(Oct("purpose"), Oct("known-answer vector")), Seq(Oct("project"), Oct("Apollo")))), EnvelopeError.SdkMalformed);
        var twoKeys = new[] { Seq(Oct("acs:kms:cn-hangzhou:1:key/a"), Oct(Blob)), Seq(Oct("acs:kms:cn-hangzhou:1:key/b"), Oct(Blob)) };
        await Rejects(Der(keys: Set(twoKeys[1], twoKeys[0])), EnvelopeError.SdkMalformed);
        // A non-minimal INTEGER, an INTEGER too large for the algorithm, a constructed OCTET STRING, a SEQUENCE where an OCTET STRING belongs.
        await Rejects(Der(algorithm: [0x02, 0x02, 0x00, 0x02]), EnvelopeError.SdkMalformed);
        await Rejects(Der(algorithm: [0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00]), EnvelopeError.SdkMalformed);
        await Rejects(Der(headerIv: Tlv(0x24, Oct(V.HeaderIv))), EnvelopeError.SdkMalformed);
        await Rejects(Der(headerTag: Seq(Oct(V.HeaderAuthTag))), EnvelopeError.SdkMalformed);
        // The body as a SET, its IV as an INTEGER.
        var valid = Der();
        var tampered = (byte[])valid.Clone();
        tampered[3 + 3 + 0x9B] = 0x31;
        await Rejects(tampered, EnvelopeError.SdkMalformed);
        await Rejects(Der(bodyIv: Tlv(0x02, V.BodyIv)), EnvelopeError.SdkMalformed);
    }

    [Fact]
    public async Task TheStructureMustBeTheSdks()
    {
        await Rejects(Der(extraHead: Oct("seventh")), EnvelopeError.SdkMalformed);          // 7 header elements
        await Rejects(Der(headerIv: Oct(new byte[16])), EnvelopeError.SdkMalformed);         // a 16-byte header IV
        await Rejects(Der(headerTag: Oct(new byte[12])), EnvelopeError.SdkMalformed);        // a 12-byte header tag
        await Rejects(Der(bodyIv: Oct(new byte[16])), EnvelopeError.SdkMalformed);           // a 16-byte body IV (CBC/CTR style)
        await Rejects(Der(bodyTag: Oct(new byte[12])), EnvelopeError.SdkMalformed);          // a 12-byte body tag
        await Rejects(Der(bodyTag: Oct([])), EnvelopeError.SdkMalformed);                    // no tag (non-GCM style)
        await Rejects(Stream(headerIv: Lp(new byte[16])), EnvelopeError.SdkMalformed);
        await Rejects(Stream(headerTag: Lp(new byte[12])), EnvelopeError.SdkMalformed);
        await Rejects(Stream(bodyIv: BodyIv(new byte[16])), EnvelopeError.SdkMalformed);
        var e = await Rejects(Stream(bodyIv: Cat([0x0C, 0, 0, 1], V.BodyIv)), EnvelopeError.SdkMalformed);
        Assert.Contains("body IV length is 16777228", e.Message);
    }

    [Fact]
    public async Task A010StreamMessageWithTheBodyIvLengthBigEndianIsRefusedWithHowToRepairIt()
    {
        // EnvelopeKms 0.1.0 wrote "00 00 00 0c"; the Java SDK writes and reads "0c 00 00 00" (issue 15).
        var old = Stream(bodyIv: Lp(V.BodyIv)); // Lp: a big-endian length
        int offset = V.Stream.Length - V.Ciphertext.Length - 16 - 12 - 4;
        Assert.Equal(new byte[] { 0x0C, 0, 0, 0 }, V.Stream[offset..(offset + 4)]);
        Assert.Equal(new byte[] { 0, 0, 0, 0x0C }, old[offset..(offset + 4)]);
        var provider = V.Provider();
        var e = await Rejects(old, EnvelopeError.SdkMalformed, provider);
        Assert.Contains("EnvelopeKms 0.1.0", e.Message);
        Assert.Contains($"00 00 00 0c at byte {offset}", e.Message);
        Assert.Contains("reverse those four bytes", e.Message);
        Assert.Equal(0, provider.DecryptCalls); // refused from the header alone: no KMS call
        await Rejects(old, EnvelopeError.SdkMalformed, trickle: true);

        // From a file, the message names it, and the file is left as it was.
        using var dir = new TempDir();
        string path = dir.File("old-0.1.0.ekms");
        File.WriteAllBytes(path, old);
        var fromFile = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeKms.Files.AlibabaSdkFileOperations.ReadHeaderAsync(path));
        Assert.Equal(EnvelopeError.SdkMalformed, fromFile.Error);
        Assert.StartsWith($"'{path}' is an Alibaba Cloud Encryption SDK stream message as EnvelopeKms 0.1.0 wrote it", fromFile.Message);
        var decrypting = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeKms.Files.AlibabaSdkFileOperations.DecryptFileAsync(path, dir.File("out"), V.Provider()));
        Assert.Contains(path, decrypting.Message);
        Assert.False(File.Exists(dir.File("out")));
        Assert.Equal(old, File.ReadAllBytes(path));

        // The repair the message names: neither tag covers the four bytes, so reversing them gives the SDK's message.
        var repaired = (byte[])old.Clone();
        Array.Reverse(repaired, offset, 4);
        Assert.Equal(V.Stream, repaired);
        Assert.Equal(V.Plaintext, (await Sdk.DecryptAsync(repaired, V.Provider())).Plaintext);
    }

    [Fact]
    public async Task BadDataKeyEntriesAreRefused()
    {
        await Rejects(Der(keys: Set()), EnvelopeError.SdkMalformed);                                             // none
        await Rejects(Der(keys: Set(Seq(Oct(""), Oct(Blob)))), EnvelopeError.SdkMalformed);                      // empty ARN
        await Rejects(Der(keys: Set(Seq(Oct(Arn), Oct([])))), EnvelopeError.SdkMalformed);                       // empty blob
        await Rejects(Der(keys: Set(Seq(Oct([0x61, 0xFF, 0x62]), Oct(Blob)))), EnvelopeError.SdkMalformed);      // ARN not UTF-8
        await Rejects(Der(keys: Set(Seq(Oct(Arn), Oct(Blob), Oct(Blob)))), EnvelopeError.SdkMalformed);          // three fields
        var same = new[] { Seq(Oct(Arn), Oct([1])), Seq(Oct(Arn), Oct([2])) };
        await Rejects(Der(keys: Set(same)), EnvelopeError.SdkMalformed);                                         // one ARN twice

        await Rejects(Stream(keys: I32(0)), EnvelopeError.SdkMalformed);
        await Rejects(Stream(keys: Cat(I32(1), I32(0))), EnvelopeError.SdkMalformed);
        await Rejects(Stream(keys: Cat(I32(1), I32(-5))), EnvelopeError.SdkMalformed);
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), Lp("dmVjdG9yLWJsb2I"))), EnvelopeError.SdkMalformed);       // no padding
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), Lp("dmVjdG9y LWJsb2I="))), EnvelopeError.SdkMalformed);     // whitespace
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), Lp("dmVjdG9yLWJsb2J="))), EnvelopeError.SdkMalformed);      // non-zero pad bits
        await Rejects(Stream(keys: Cat(I32(1), Lp(Arn), Lp("not base64!"))), EnvelopeError.SdkMalformed);
        // Out of ARN order, and one ARN twice.
        var a = Cat(Lp("acs:kms:cn-hangzhou:1:key/a"), Lp(V.Keys[0].Blob));
        var b = Cat(Lp("acs:kms:cn-hangzhou:1:key/b"), Lp(V.Keys[0].Blob));
        await Rejects(Stream(keys: Cat(I32(2), b, a)), EnvelopeError.SdkMalformed);
        await Rejects(Stream(keys: Cat(I32(2), a, a)), EnvelopeError.SdkMalformed);
    }

    [Fact]
    public async Task BadContextsAreRefused()
    {
        await Rejects(Der(context: Set(Seq(Oct(""), Oct("x")))), EnvelopeError.SdkMalformed);                          // empty key
        await Rejects(Der(context: Set(Seq(Oct([0xC3, 0x28]), Oct("x")))), EnvelopeError.SdkMalformed);                // key not UTF-8
        await Rejects(Der(context: Set(Seq(Oct("k"), Oct([0xED, 0xA0, 0x80])))), EnvelopeError.SdkMalformed);          // a surrogate
        await Rejects(Der(context: Set(Seq(Oct("k"), Oct("a")), Seq(Oct("k"), Oct("b")))), EnvelopeError.SdkMalformed); // a key twice

        byte[] Ctx(int count, params string[] parts) => Cat([I32(count), .. parts.Select(Lp)]);
        await Rejects(Stream(context: Lp(Ctx(2, "b", "1", "a", "2"))), EnvelopeError.SdkMalformed);   // not sorted
        await Rejects(Stream(context: Lp(Ctx(2, "a", "1", "a", "2"))), EnvelopeError.SdkMalformed);   // a key twice
        await Rejects(Stream(context: Lp(Ctx(3, "a", "1", "b", "2"))), EnvelopeError.SdkMalformed);   // count too high
        await Rejects(Stream(context: Lp(Ctx(1, "a", "1", "b", "2"))), EnvelopeError.SdkMalformed);   // bytes left over
        await Rejects(Stream(context: Lp(Ctx(0))), EnvelopeError.SdkMalformed);                       // a zero count
        await Rejects(Stream(context: Lp(Ctx(1, "", "1"))), EnvelopeError.SdkMalformed);              // empty key
        await Rejects(Stream(context: Lp(Cat(I32(1), I32(100), Encoding.UTF8.GetBytes("a"), Lp("1")))), EnvelopeError.SdkMalformed); // runs past the end
        await Rejects(Stream(context: Lp([0, 0, 1])), EnvelopeError.SdkMalformed);                    // shorter than its count
        await Rejects(Stream(context: I32(-1)), EnvelopeError.SdkMalformed);
    }

    [Fact]
    public async Task ReservedContextKeysOfOtherFormatsAreRead()
    {
        // "ekms:" keys are EKMS's reservation for its writers; an SDK message may carry any key.
        var key = new byte[32];
        using var dataKey = new DataKey(key, [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, V.Keys[0].Arn, "", "", V.Keys[0].Blob)]);
        var headerIv = new byte[12];
        var context = Cat(I32(1), Lp("ekms:x"), Lp("y"));
        var fields = Cat(I32(1), I32(2), I32(1), context, I32(1), Lp(Arn), Lp(V.Keys[0].Blob));
        var tag = AlibabaSdkHeader.ComputeTag(key, headerIv, fields);
        var body = new byte[16];
        using (var gcm = new System.Security.Cryptography.AesGcm(key, 16)) gcm.Encrypt(new byte[12], Array.Empty<byte>(), Array.Empty<byte>(), body, context);
        var message = Stream(context: Lp(context), headerIv: Lp(headerIv), headerTag: Lp(tag), bodyIv: BodyIv(new byte[12]), body: body);
        var (result, plaintext) = await Sdk.DecryptAsync(message, new SdkKeyProvider().Add(V.Keys[0].Blob, key));
        Assert.Empty(plaintext);
        Assert.Equal("y", result.Header.EncryptionContext["ekms:x"]);
    }

    // ---- recognition ---------------------------------------------------------------------------------------------

    [Fact]
    public void RecognitionIsByContentAndUnambiguous()
    {
        foreach (var v in SdkVector.All)
        {
            Assert.Equal(AlibabaSdkLayout.Asn1, AlibabaSdkFormat.Detect(v.Asn1));
            Assert.Equal(AlibabaSdkLayout.Stream, AlibabaSdkFormat.Detect(v.Stream));
            Assert.Equal(EnvelopeFileFormat.AlibabaSdk, (FileFormats.Detect(v.Asn1.AsSpan(0, Math.Min(64, v.Asn1.Length)))?.Id ?? EnvelopeFileFormat.Unknown));
            Assert.Equal(EnvelopeFileFormat.AlibabaSdkStream, (FileFormats.Detect(v.Stream.AsSpan(0, 64))?.Id ?? EnvelopeFileFormat.Unknown));
        }
        // An EKMS file, a legacy file, text, an X.509 certificate and a PKCS#8 key (DER, but not this structure).
        Assert.Null(AlibabaSdkFormat.Detect(EnvelopeFormat.Magic));
        Assert.Null(AlibabaSdkFormat.Detect("MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw\nAAAAAAAAAAAAAAAAAAAAAA==\n"u8));
        Assert.Null(AlibabaSdkFormat.Detect("0,1,2\n"u8));
        Assert.Null(AlibabaSdkFormat.Detect(Convert.FromHexString("308203213082020AA003020102021400")));
        Assert.Null(AlibabaSdkFormat.Detect(Convert.FromHexString("308204BE020100300D06092A864886F7")));
        Assert.Null(AlibabaSdkFormat.Detect(new byte[16]));
        Assert.Null(AlibabaSdkFormat.Detect([]));
        Assert.Equal(EnvelopeFileFormat.Legacy, (FileFormats.Detect("MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw\nAAAA\n"u8)?.Id ?? EnvelopeFileFormat.Unknown));
    }

    [Fact]
    public async Task AnythingElseIsNotAnSdkMessage()
    {
        await Rejects([], EnvelopeError.NotEnvelope);
        await Rejects(EnvelopeFormat.Magic.ToArray(), EnvelopeError.NotEnvelope);
        await Rejects(Encoding.ASCII.GetBytes("hello, world, this is text"), EnvelopeError.NotEnvelope);
    }

    /// <summary>A non-seekable stream whose asynchronous reads complete synchronously, 4 KiB at most each.</summary>
    private sealed class SyncPipe(byte[] data) : System.IO.Stream
    {
        private int _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(Math.Min(buffer.Length, 4096), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer, offset, count));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
