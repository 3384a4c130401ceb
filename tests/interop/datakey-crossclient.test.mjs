// The datakey-crossclient.mjs CLI (the Node half of the .NET NodeSdkCrossClientTests) against the local server
// process: generate and decrypt round trips, the encryption context binding, a second official SDK
// (@alicloud/pop-core, V1 GET) agreeing on the same blob, error and usage exit codes.
// Run from the repository root after building the server:
//   (cd tests/interop && npm ci) && node --test tests/interop/datakey-crossclient.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import RPCClient from '@alicloud/pop-core';
import { startLocalServer } from './local-server.mjs';
import { generate, decrypt, openApiCaller } from './datakey-crossclient.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'datakey-crossclient.mjs');
const CONTEXT_JSON = JSON.stringify({ zone: 'z 1', 'file name': 'a+b/c~*.txt', purpose: 'cross client ✓' });

let local;
let endpoint;

before(async () => {
  local = await startLocalServer('ekms-crossclient-');
  endpoint = local.endpoint;
});

after(async () => { await local?.stop(); });

/** Runs the CLI; resolves with exit code and output whatever the exit code. */
async function cli(...args) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (typeof error.code !== 'number') throw error;
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

async function newKey() {
  return (await openApiCaller({ endpoint })('CreateKey', {})).KeyMetadata.KeyId;
}

test('CLI generate then CLI decrypt returns the same plaintext', async () => {
  const keyId = await newKey();
  const generated = await cli('generate', '--endpoint', endpoint, '--key-id', keyId, '--context-json', CONTEXT_JSON);
  assert.equal(generated.code, 0, generated.stderr);
  const g = JSON.parse(generated.stdout);
  assert.equal(g.KeyId, keyId);
  assert.equal(Buffer.from(g.Plaintext, 'base64').length, 32);

  const decrypted = await cli('decrypt', '--endpoint', endpoint, '--blob', g.CiphertextBlob, '--context-json', CONTEXT_JSON);
  assert.equal(decrypted.code, 0, decrypted.stderr);
  const d = JSON.parse(decrypted.stdout);
  assert.deepEqual(d, { KeyId: keyId, KeyVersionId: g.KeyVersionId, Plaintext: g.Plaintext });
});

test('the context is bound: the same pairs in another order decrypt, other pairs are refused with exit 3', async () => {
  const keyId = await newKey();
  const g = await generate({ endpoint, keyId, contextJson: CONTEXT_JSON });
  const reordered = JSON.stringify({ purpose: 'cross client ✓', 'file name': 'a+b/c~*.txt', zone: 'z 1' });
  assert.equal((await decrypt({ endpoint, blob: g.CiphertextBlob, contextJson: reordered })).Plaintext, g.Plaintext);

  for (const args of [[], ['--context-json', JSON.stringify({ zone: 'z 2' })]]) {
    const refused = await cli('decrypt', '--endpoint', endpoint, '--blob', g.CiphertextBlob, ...args);
    assert.equal(refused.code, 3, refused.stdout + refused.stderr);
    const { error } = JSON.parse(refused.stdout);
    assert.equal(error.code, 'InvalidParameter');
    assert.match(error.requestId, /^[0-9A-F-]{36}$/);
  }
});

test('a second official SDK (pop-core, V1 GET) decrypts the blob the CLI generated', async () => {
  const keyId = await newKey();
  const g = await generate({ endpoint, keyId, contextJson: CONTEXT_JSON });
  const pop = new RPCClient({ accessKeyId: 'testid', accessKeySecret: 'testsecret', endpoint, apiVersion: '2016-01-20' });
  const d = await pop.request('Decrypt', { CiphertextBlob: g.CiphertextBlob, EncryptionContext: CONTEXT_JSON }, { method: 'GET', formatParams: false });
  assert.equal(d.Plaintext, g.Plaintext);
  assert.equal(d.KeyId, keyId);
});

test('unknown keys and bad credentials are reported as KMS errors; bad usage exits 2', async () => {
  const unknown = await cli('generate', '--endpoint', endpoint, '--key-id', '00000000-0000-0000-0000-000000000000');
  assert.equal(unknown.code, 3);
  assert.equal(JSON.parse(unknown.stdout).error.code, 'Forbidden.KeyNotFound');

  const keyId = await newKey();
  const badSecret = await cli('generate', '--endpoint', endpoint, '--key-id', keyId, '--access-key-secret', 'wrong');
  assert.equal(badSecret.code, 3);
  assert.equal(JSON.parse(badSecret.stdout).error.code, 'SignatureDoesNotMatch');

  for (const args of [[], ['frobnicate', '--endpoint', endpoint], ['decrypt', '--endpoint', endpoint], ['generate', '--key-id', keyId],
    ['decrypt', '--endpoint', endpoint, '--blob', 'x', '--context-json', '[1]']]) {
    const usage = await cli(...args);
    assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stdout}${usage.stderr}`);
    assert.match(usage.stderr, /usage:/);
    assert.equal(usage.stdout, '');
  }
});
