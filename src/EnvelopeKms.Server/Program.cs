// Placeholder entry point; the server is implemented under issue 3.
return 0;
