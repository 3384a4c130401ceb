// The whole of pwsh: the console host's entry point, as in PowerShell's own pwsh project.
return Microsoft.PowerShell.UnmanagedPSEntry.Start(args, args.Length);
