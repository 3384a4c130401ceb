using EnvelopeKms.Cloud.Signing;

namespace EnvelopeKms.Kms;

/// <summary>One KMS API call before signing: the action and its business parameters.</summary>
internal sealed class KmsRequest
{
    public const string ApiVersion = "2016-01-20";

    public KmsRequest(string action) => Action = action;

    public string Action { get; }

    public List<AcsParameter> Parameters { get; } = new();

    public bool HasSecret => Parameters.Any(p => p.IsSecret);

    /// <summary>
    /// The key a Decrypt's CiphertextBlob is believed to be under (from a file header). Never sent: it only names the
    /// resource when RAM refuses the call, since the blob itself does not say which key it is.
    /// </summary>
    public string? KeyHint { get; init; }

    public KmsRequest Add(string name, string? value)
    {
        if (value is not null) Parameters.Add(AcsParameter.Text(name, value));
        return this;
    }

    public KmsRequest Add(string name, int? value)
        => value is { } v ? Add(name, v.ToString(System.Globalization.CultureInfo.InvariantCulture)) : this;

    public KmsRequest Add(string name, bool? value) => value is { } v ? Add(name, v ? "true" : "false") : this;

    /// <summary>A secret value as UTF-8 bytes; it travels only in a form body and is never made a string.</summary>
    public KmsRequest AddSecret(string name, ReadOnlyMemory<byte> utf8)
    {
        Parameters.Add(AcsParameter.Secret(name, utf8));
        return this;
    }
}
