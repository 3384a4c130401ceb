namespace EnvelopeKms.Server.Auth;

/// <summary>The outcome for one action on one resource.</summary>
internal enum RamDecision
{
    Allowed,
    /// <summary>No statement allows it (RAM's <c>ImplicitDeny</c>).</summary>
    ImplicitDeny,
    /// <summary>A Deny statement matches (RAM's <c>ExplicitDeny</c>), whatever else allows it.</summary>
    ExplicitDeny,
}

/// <summary>
/// RAM's evaluation: everything is denied unless some statement of the principal's policies allows the action on
/// the resource, and a matching Deny in any of them wins over every Allow.
/// </summary>
internal static class RamPolicyEvaluator
{
    public static RamDecision Evaluate(IReadOnlyList<RamPolicy> policies, string action, string resource, RamRequestContext context)
    {
        var allowed = false;
        foreach (var statement in policies.SelectMany(p => p.Statements))
        {
            if (!statement.Covers(action, resource, context))
            {
                continue;
            }
            if (statement.Effect == RamEffect.Deny)
            {
                return RamDecision.ExplicitDeny;
            }
            allowed = true;
        }
        return allowed ? RamDecision.Allowed : RamDecision.ImplicitDeny;
    }
}
