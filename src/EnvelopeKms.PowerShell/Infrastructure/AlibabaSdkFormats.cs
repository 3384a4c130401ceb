using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Files;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// The names the cmdlets use for file formats (the -Format values of Protect-EnvelopeFile and the Format property of
/// results): EKMS, Legacy, AlibabaSdk (the Encryption SDK's ASN.1 message) and AlibabaSdkStream (its stream layout).
/// </summary>
internal static class AlibabaSdkFormats
{
    public const string Asn1Name = "AlibabaSdk";
    public const string StreamName = "AlibabaSdkStream";

    /// <summary>The Encryption SDK layout a -Format value names, or null for EKMS and Legacy.</summary>
    public static AlibabaSdkLayout? LayoutOf(string format) => format switch
    {
        _ when string.Equals(format, Asn1Name, StringComparison.OrdinalIgnoreCase) => AlibabaSdkLayout.Asn1,
        _ when string.Equals(format, StreamName, StringComparison.OrdinalIgnoreCase) => AlibabaSdkLayout.Stream,
        _ => null,
    };

    public static string NameOf(AlibabaSdkLayout layout) => layout == AlibabaSdkLayout.Asn1 ? Asn1Name : StreamName;

    /// <summary>The Encryption SDK layout of a detected file format, or null.</summary>
    public static AlibabaSdkLayout? LayoutOf(EnvelopeFileFormat format) => format switch
    {
        EnvelopeFileFormat.AlibabaSdk => AlibabaSdkLayout.Asn1,
        EnvelopeFileFormat.AlibabaSdkStream => AlibabaSdkLayout.Stream,
        _ => null,
    };

    /// <summary>The Format property value of a detected file format.</summary>
    public static string NameOf(EnvelopeFileFormat format) => format switch
    {
        EnvelopeFileFormat.Legacy => "Legacy",
        EnvelopeFileFormat.AlibabaSdk => Asn1Name,
        EnvelopeFileFormat.AlibabaSdkStream => StreamName,
        _ => "EKMS",
    };

    /// <summary>The algorithm as Get-EnvelopeFileInfo shows it in Suite.</summary>
    public static string Describe(AlibabaSdkAlgorithm algorithm)
        => $"{AlibabaSdkFormat.AlgorithmName((int)algorithm)} (Encryption SDK algorithm {(int)algorithm})";
}
