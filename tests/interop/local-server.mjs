// Starts the local EnvelopeKms KMS server as a child process for a node:test file and stops it afterwards.
// The server must be built first (build.ps1, or dotnet build src/EnvelopeKms.Server -c Release).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const LISTENING = /^EnvelopeKms\.Server listening on (http:\/\/\S+)$/;

export const repo = process.env.ENVELOPEKMS_REPO ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The staged copy from build.ps1, else the Release build output. */
export function serverDll() {
  const staged = join(repo, 'out', 'server', 'EnvelopeKms.Server.dll');
  if (existsSync(staged)) return staged;
  const built = join(repo, 'src', 'EnvelopeKms.Server', 'bin', 'Release', 'net10.0', 'EnvelopeKms.Server.dll');
  if (existsSync(built)) return built;
  throw new Error(`EnvelopeKms.Server.dll not found under ${repo}/out/server or src/EnvelopeKms.Server/bin/Release/net10.0; build the server first`);
}

/**
 * Starts a server on a free loopback port with a fresh data directory; resolves to
 * { endpoint: 'http://127.0.0.1:PORT', stop: async () => … }.
 */
export async function startLocalServer(prefix = 'ekms-interop-') {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const server = spawn('dotnet', [serverDll(), '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (chunk) => { stderr += chunk; });
  const endpoint = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s; stderr: ${stderr}`)), 60_000);
    server.once('exit', (code) => reject(new Error(`server exited with ${code}; stderr: ${stderr}`)));
    // The first stdout line is the machine-readable listening line.
    createInterface({ input: server.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const match = LISTENING.exec(line);
      if (match) resolvePromise(match[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  async function stop() {
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { endpoint, stop };
}
