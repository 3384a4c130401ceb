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
