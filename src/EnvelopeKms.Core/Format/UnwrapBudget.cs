using EnvelopeKms.Keys;

namespace EnvelopeKms.Format;

/// <summary>
/// The wrapped-key entries one file may hand to the key provider, across both v2 header slots. A hostile header
/// could otherwise cost a KMS call per entry per slot, and again per entry after each substituted key (the provider
/// starts from the first entry every time). Each distinct entry is handed over once per file (an entry identical
/// in both slots, or one that already failed, is not tried again), and at most <see cref="Limit"/> entries in all:
/// the reader's default key limit, or the largest slot's count when a reader was configured for more. A key that
/// an entry gave but one slot's commitment refused is kept (and wiped on <see cref="Dispose"/>) so the other slot,
/// which may carry the same entry with an intact commitment, can use it without another call.
/// </summary>
internal sealed class UnwrapBudget : IDisposable
{
    private readonly HashSet<WrappedDataKey> _spent = [];
    private readonly Dictionary<WrappedDataKey, DataKey> _kept = [];

    public UnwrapBudget(int limit) => Limit = Math.Max(1, limit);

    public int Limit { get; }

    /// <summary>For a header: at most the documented default (8) entries, or its largest slot's count if larger.</summary>
    public static UnwrapBudget For(EnvelopeHeader header)
        => new(Math.Max(EnvelopeFormat.DefaultMaxWrappedKeys,
            header.Version == EnvelopeFormat.Version2 ? header.Candidates.Max(s => s.WrappedKeys.Count) : header.WrappedKeys.Count));

    /// <summary>The entries of <paramref name="entries"/> not yet tried, in order, as many as the budget still allows.</summary>
    public List<WrappedDataKey> Untried(IEnumerable<WrappedDataKey> entries)
        => entries.Where(e => !_spent.Contains(e)).Distinct().Take(Limit - _spent.Count).ToList();

    /// <summary>
    /// Records what one provider call cost: the entries up to and including the one that unwrapped (the provider
    /// tries them in order), or all of them when it failed or did not say which one it used.
    /// </summary>
    public void Spend(List<WrappedDataKey> handedOver, WrappedDataKey? unwrappedFrom)
    {
        int last = unwrappedFrom is null ? -1 : handedOver.IndexOf(unwrappedFrom);
        int end = last < 0 ? handedOver.Count : last + 1;
        for (int i = 0; i < end; i++) _spent.Add(handedOver[i]);
    }

    /// <summary>Keeps a key that did not commit to one slot, for the other slot's try.</summary>
    public void Keep(WrappedDataKey entry, DataKey key)
    {
        if (_kept.TryAdd(entry, key)) return;
        key.Dispose();
    }

    /// <summary>The kept keys whose entry is among <paramref name="entries"/>, in entry order.</summary>
    public List<(WrappedDataKey Entry, DataKey Key)> KeptFor(IEnumerable<WrappedDataKey> entries)
        => entries.Distinct().Where(_kept.ContainsKey).Select(e => (e, _kept[e])).ToList();

    /// <summary>Hands a kept key over to the caller, who then owns (and wipes) it.</summary>
    public void Release(WrappedDataKey entry) => _kept.Remove(entry);

    public void Dispose()
    {
        foreach (var key in _kept.Values) key.Dispose();
        _kept.Clear();
    }
}
