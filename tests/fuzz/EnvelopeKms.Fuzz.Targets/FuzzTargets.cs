using System.Text;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Credentials;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Legacy;

namespace EnvelopeKms.Fuzz;

/// <summary>
/// One fuzz target: a harness over one parser entry point and the contract it must keep. <see cref="Run"/> feeds
/// the parser one input; <see cref="IsDocumented"/> says which exceptions are the parser's documented refusals.
/// Anything else escaping <see cref="Run"/>, an allocation over <see cref="AllocationBound"/>, or no answer in time is
/// a contract violation (a crash or a hang for afl++, a failed test for the replay).
/// </summary>
public sealed record FuzzTarget(
    string Name,
    string Description,
    Action<byte[]> Run,
    Func<Exception, bool> IsDocumented,
    Func<int, long> AllocationBound);

/// <summary>The registry of every target; the afl driver and the CI replay both take their targets from here.</summary>
public static class FuzzTargets
{
    /// <summary>
    /// afl++ inputs are capped at 1 MiB by the Fuzz task (-G); every parser here reads at most a header or a small
    /// document into memory, so a fixed 16 MiB plus 64 bytes per input byte bounds what an honest parse allocates
    /// (decrypting a frame holds the frame, its plaintext and the output stream's copy; the JSON and ini readers hold
    /// a UTF-16 copy of the text and the parsed values). A declared length that makes a parser allocate for what the
    /// input does not hold breaks this bound.
    /// </summary>
    private static long DefaultBound(int inputLength) => 16L * 1024 * 1024 + 64L * inputLength;

    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("ekms-header",
            "EnvelopeHeader.ReadAsync over an EKMS v1 or v2 file (the v2 slots included), default read limits.",
            EkmsHeader, e => e is EnvelopeException, DefaultBound),
        new("ekms-frames",
            "Envelope: header, unwrap through a provider that returns the test vectors' data key, then the frame reader (DecryptBodyAsync).",
            EkmsFrames, e => e is EnvelopeException or KeyProviderException, DefaultBound),
        new("legacy",
            "LegacyEnvelope.Parse, the KMS documentation sample's four base64 lines.",
            Legacy, e => e is EnvelopeException, DefaultBound),
        new("esdk-asn1",
            "AlibabaSdkEnvelope.DecryptAsync on inputs recognised as the Encryption SDK ASN.1 layout (the vectors' data key).",
            data => Esdk(data, AlibabaSdkLayout.Asn1), e => e is EnvelopeException or KeyProviderException, DefaultBound),
        new("esdk-stream",
            "AlibabaSdkEnvelope.DecryptAsync on inputs recognised as the Encryption SDK stream layout (the vectors' data key).",
            data => Esdk(data, AlibabaSdkLayout.Stream), e => e is EnvelopeException or KeyProviderException, DefaultBound),
        new("context",
            "The encryption context: the binary EKMS encoding (EncryptionContext.TryDecode), the Encryption SDK's (ParseContextBytes), "
            + "and the JSON the client sends (KmsEncryptionContextJson) as the server parses it back (EncryptionContextParser).",
            Context, e => e is EnvelopeException or Server.Protocol.KmsException, DefaultBound),
        new("kms-response",
            "The KMS client's response reader: ReadWithPlaintext (GenerateDataKey/Decrypt), Deserialize of every response shape, and the error-body parser (KmsHttpTransport.ParseError).",
            KmsResponse, e => e is KmsException, DefaultBound),
        new("cli-config",
            "AlibabaCloudProfile.TryLoadCliProfile over ~/.aliyun/config.json, then CreateProvider for the profile found.",
            CliConfig, e => e is CredentialsException, DefaultBound),
        new("ini-credentials",
            "AlibabaCloudProfile.TryLoadIniProfile over ~/.alibabacloud/credentials, then CreateProvider for the section found.",
            IniCredentials, e => e is CredentialsException, DefaultBound),
        new("credentials-uri",
            "CredentialsHttp.ParseCredentials over a credentials-URI (or STS) response body, and DescribeError over it as an error body.",
            CredentialsUri, e => e is CredentialsException, DefaultBound),
        new("server-request",
            "The local server's request parsing: query and form (PercentEncoding.ParsePairs, as ApiRequestHandler merges them), "
            + "headers, then RequestAuthenticator (V1 signature, V3 Authorization header).",
            ServerRequestTarget.Run, e => e is Server.Protocol.KmsException, DefaultBound),
    ];

    public static FuzzTarget Get(string name)
        => All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"No fuzz target '{name}'; targets: {string.Join(", ", All.Select(t => t.Name))}.");

    // ---- EKMS ---------------------------------------------------------------------------------------------------

    /// <summary>The data key of tests/vectors/ekms-v1.json, ekms-v2.json and alibaba-sdk.json (bytes 0..31).</summary>
    internal static byte[] VectorKey(int length) => Enumerable.Range(0, length).Select(i => (byte)i).ToArray();

    private static void EkmsHeader(byte[] data)
        => EnvelopeHeader.ReadAsync(new MemoryStream(data, writable: false), EnvelopeReadLimits.Default).GetAwaiter().GetResult();

    private static void EkmsFrames(byte[] data)
    {
        var input = new MemoryStream(data, writable: false);
        var header = EnvelopeHeader.ReadAsync(input, EnvelopeReadLimits.Default).GetAwaiter().GetResult();
        Envelope.CheckRequiredContext(header, EncryptionContext.Empty);
        using var key = Envelope.UnwrapAsync(header, new VectorKeyProvider()).GetAwaiter().GetResult();
        // One worker: the frame reader's work then stays on this thread, where the allocation is measured.
        var sink = new MemoryStream();
        var result = Envelope.DecryptBodyAsync(header, input, sink, key, new EnvelopeDecryptOptions { Parallelism = 1 }).GetAwaiter().GetResult();
        if (result.PlaintextLength != sink.Length)
            throw new InvalidOperationException($"DecryptBodyAsync reported {result.PlaintextLength} plaintext bytes and wrote {sink.Length}.");
    }

    // ---- legacy -------------------------------------------------------------------------------------------------

    private static void Legacy(byte[] data) => LegacyEnvelope.Parse(data);

    // ---- Encryption SDK -----------------------------------------------------------------------------------------

    private static void Esdk(byte[] data, AlibabaSdkLayout layout)
    {
        // Each target owns one layout, so that afl++'s queue for it is not spent on the other's.
        if (AlibabaSdkFormat.Detect(data.AsSpan(0, Math.Min(data.Length, 64))) != layout) return;
        var output = new MemoryStream();
        AlibabaSdkEnvelope.DecryptAsync(new MemoryStream(data, writable: false), output, new VectorKeyProvider()).GetAwaiter().GetResult();
    }

    // ---- encryption context -------------------------------------------------------------------------------------

    private static void Context(byte[] data)
    {
        // The binary encodings: never an exception, a problem is reported through the out parameter.
        if (EncryptionContext.TryDecode(data, out var decoded, out _) && decoded is not null)
        {
            // What decodes must encode back to the same bytes (one encoding per context).
            var again = new byte[decoded.GetEncodedLength()];
            decoded.Encode(again);
            if (!again.AsSpan().SequenceEqual(data))
                throw new InvalidOperationException("EncryptionContext.TryDecode accepted a non-canonical encoding.");
        }
        try { AlibabaSdkReader.ParseContextBytes(data); }
        catch (EnvelopeException) { }

        // The JSON: what the server accepts, the client must send back identically (KmsEncryptionContextJson).
        string json = Encoding.UTF8.GetString(data);
        var parsed = Server.Crypto.EncryptionContextParser.Parse(json, "EncryptionContext");
        if (parsed.Count == 0) return;
        string? sent = KmsEncryptionContextJson.ToJson(parsed);
        var back = Server.Crypto.EncryptionContextParser.Parse(sent, "EncryptionContext");
        if (!back.SequenceEqual(parsed))
            throw new InvalidOperationException("The context the client encodes does not parse back to the same pairs on the server.");
    }

    // ---- KMS response reader ------------------------------------------------------------------------------------

    private static void KmsResponse(byte[] data)
    {
        // Every shape the client reads, each on its own: the first refusal must not hide the others' behaviour.
        List<Exception>? documented = null;
        void Try(Action read)
        {
            try { read(); }
            catch (KmsException e) { (documented ??= []).Add(e); }
        }
        Try(() =>
        {
            var (fields, plaintext) = KmsResponseReader.ReadWithPlaintext("GenerateDataKey", data);
            using (plaintext) { _ = fields.Count; }
        });
        Try(() => KmsResponseReader.Deserialize<KmsWire.KeyMetadataResponse>("DescribeKey", data));
        Try(() => KmsResponseReader.Deserialize<KmsWire.ListKeysResponse>("ListKeys", data));
        Try(() => KmsResponseReader.Deserialize<KmsWire.ListAliasesResponse>("ListAliases", data));
        Try(() => KmsResponseReader.Deserialize<KmsWire.ListResourceTagsResponse>("ListResourceTags", data));
        Try(() => KmsResponseReader.Deserialize<KmsWire.EmptyResponse>("EnableKey", data));
        // An error answer: ParseError turns any body into the KmsException the client throws; it never throws itself.
        _ = ErrorReader.Value.ParseError(new Kms.KmsRequest("Decrypt"), 400, data, clientStringToSign: null).Message;
        if (documented is { Count: > 0 }) throw documented[0];
    }

    /// <summary>A transport only for its error-body parser: it never sends (the endpoint is a closed loopback port).</summary>
    private static readonly Lazy<KmsHttpTransport> ErrorReader = new(() => new KmsHttpTransport(
        new KmsClientOptions { Endpoint = KmsEndpoint.FromUrl("http://127.0.0.1:9/", "cn-hangzhou"), Credentials = new StaticCredentialsProvider("fuzz", "fuzz") },
        new HttpClientHandler()));

    private static void CredentialsUri(byte[] data)
    {
        // The error path first: DescribeError turns any body into a message and never throws.
        _ = CredentialsHttp.DescribeError(500, data);
        CredentialsHttp.ParseCredentials(data, "credentials URI");
    }

    // ---- credential files ---------------------------------------------------------------------------------------

    private static void CliConfig(byte[] data)
        => WithFile(data, path => AlibabaCloudProfile.TryLoadCliProfile(path, null)?.CreateProvider(CredentialOptions));

    private static void IniCredentials(byte[] data)
        => WithFile(data, path => AlibabaCloudProfile.TryLoadIniProfile(path, null)?.CreateProvider(CredentialOptions));

    /// <summary>No environment (the machine's must not steer the harness) and no network: providers are only built.</summary>
    private static readonly CredentialResolutionOptions CredentialOptions = new() { GetEnvironmentVariable = _ => null };

    private static void WithFile(byte[] data, Action<string> read)
    {
        // The loaders take a path (they read the user's file); one scratch file per process and thread.
        string path = Path.Combine(ScratchDirectory.Value, $"input-{Environment.CurrentManagedThreadId}");
        File.WriteAllBytes(path, data);
        read(path);
    }

    private static readonly Lazy<string> ScratchDirectory = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("ekms-fuzz-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } };
        return dir;
    });
}
