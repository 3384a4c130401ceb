using System.Runtime.InteropServices;
using EnvelopeKms.Fuzz;
using SharpFuzz;

// Usage: EnvelopeKms.Fuzz.Driver --list        the target names
//        EnvelopeKms.Fuzz.Driver TARGET        under afl-fuzz (SharpFuzz's fork-server loop; input on stdin)
//        EnvelopeKms.Fuzz.Driver TARGET FILE…  runs files once and prints each outcome (triage of a crash)
//
// The instrumented assemblies (EnvelopeKms.Core, EnvelopeKms.Server) write every branch they take into afl++'s
// shared coverage map, which Fuzzer.OutOfProcess.Run maps. So under afl-fuzz nothing may touch them before Run
// (FuzzTargets' static state included): the target is looked up inside the callback. Outside afl-fuzz, a private
// map of the same size takes the writes.
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine("usage: EnvelopeKms.Fuzz.Driver --list | TARGET [FILE...]");
    return 2;
}
if (args[0] == "--list" || args.Length > 1) UsePrivateCoverageMap();
if (args[0] == "--list")
{
    foreach (var t in FuzzTargets.All) Console.WriteLine(t.Name);
    return 0;
}
string name = args[0];
if (args.Length > 1)
{
    var target = FuzzTargets.Get(name);
    int violations = 0;
    foreach (var file in args.Skip(1))
    {
        try { Console.WriteLine($"{file}: {FuzzRunner.Check(target, File.ReadAllBytes(file))}"); }
        catch (ContractViolationException e) { violations++; Console.WriteLine($"{file}: VIOLATION {e.Message}"); }
    }
    return violations == 0 ? 0 : 1;
}
FuzzTarget? fuzzed = null;
// A contract violation escapes the callback: SharpFuzz reports it to afl++ as a crash.
Fuzzer.OutOfProcess.Run(stream =>
{
    fuzzed ??= FuzzTargets.Get(name);
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    FuzzRunner.Check(fuzzed, buffer.ToArray());
});
return 0;

static unsafe void UsePrivateCoverageMap()
    => SharpFuzz.Common.Trace.SharedMem = (byte*)Marshal.AllocHGlobal(1 << 16);
