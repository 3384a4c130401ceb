using System.Runtime.InteropServices;
using EnvelopeKms.Server.Hosting;

// Entry point of the standalone server process: parse flags, start, print the one machine-readable
// line, then run until SIGINT/SIGTERM (or end of stdin with --exit-on-stdin-close).
CommandLineRequest request;
try
{
    request = CommandLine.Parse(args, Environment.GetEnvironmentVariable);
}
catch (ArgumentException error)
{
    Console.Error.WriteLine(error.Message);
    return 2;
}
if (request.ShowHelp)
{
    Console.Out.WriteLine(CommandLine.HelpText);
    return 0;
}

var options = request.Options!;
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
using var onSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

await using var server = new KmsServer();
Uri endpoint;
try
{
    endpoint = await server.StartAsync(options);
}
catch (Exception error) when (error is IOException or ArgumentException or UnauthorizedAccessException or InvalidDataException)
{
    Console.Error.WriteLine($"EnvelopeKms.Server failed to start: {error.Message}");
    return 1;
}
Console.Out.WriteLine($"EnvelopeKms.Server listening on {endpoint.GetLeftPart(UriPartial.Authority)}");
Console.Out.Flush();
foreach (var warning in server.Warnings)
{
    Console.Error.WriteLine(warning);
}
if (options.AccessKeys.Count == 0)
{
    Console.Error.WriteLine($"Using the development AccessKey pair {KmsServerOptions.DefaultAccessKeyId} (see --help): any local user can use it. For development and tests only.");
}
if (!System.Net.IPAddress.IsLoopback(System.Net.IPAddress.Parse(options.BindAddress)))
{
    Console.Error.WriteLine($"Warning: listening on {options.BindAddress}, not loopback; this server is not meant to be reachable from other machines.");
}

if (request.ExitOnStdinClose)
{
    _ = Task.Run(async () =>
    {
        // Reading until end of file: the parent closing our stdin means it is gone.
        while (await Console.In.ReadLineAsync() is not null)
        {
        }
        stop.TrySetResult();
    });
}

await stop.Task;
return 0;

void Stop(PosixSignalContext context)
{
    // Handle the signal ourselves so the server is disposed (connections closed) before exit.
    context.Cancel = true;
    stop.TrySetResult();
}
