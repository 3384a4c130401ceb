// Data keys across clients: the official @alicloud/openapi-client (V3, ACS3-HMAC-SHA256), unmodified, as a small
// CLI that the .NET tests (tests/EnvelopeKms.Server.Tests/ClientRoundTrip/NodeSdkCrossClientTests.cs) and
// datakey-crossclient.test.mjs run against the local EnvelopeKms server.
//
//   node datakey-crossclient.mjs generate --endpoint URL --key-id K [--context-json J] [--access-key-id ID --access-key-secret S]
//   node datakey-crossclient.mjs decrypt  --endpoint URL --blob B   [--context-json J] [--access-key-id ID --access-key-secret S]
//
// Output: one JSON line on stdout: {"KeyId","KeyVersionId","CiphertextBlob"?,"Plaintext"} with Plaintext in base64 exactly
// as the SDK returned it. On a KMS error: {"error":{"code","message","requestId"}} on stdout and exit code 3.
// Usage errors: a message on stderr and exit code 2.

import { fileURLToPath } from 'node:url';
import OpenApi from '@alicloud/openapi-client';

const DEFAULT_ACCESS_KEY_ID = 'testid';
const DEFAULT_ACCESS_KEY_SECRET = 'testsecret';

/** The V3 client exactly as kms-sdk.test.mjs builds it: business parameters in the query, POST, RPC style. */
export function openApiCaller({ endpoint, accessKeyId = DEFAULT_ACCESS_KEY_ID, accessKeySecret = DEFAULT_ACCESS_KEY_SECRET }) {
  const url = new URL(endpoint);
  const config = new OpenApi.Config({
    accessKeyId, accessKeySecret, endpoint: url.host, protocol: url.protocol.replace(':', ''), regionId: 'cn-hangzhou',
  });
  const client = new OpenApi.default(config);
  return async (action, query = {}) => {
    const params = new OpenApi.Params({
      action, version: '2016-01-20', protocol: url.protocol === 'https:' ? 'HTTPS' : 'HTTP', pathname: '/', method: 'POST',
      authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
    });
    const response = await client.callApi(params, new OpenApi.OpenApiRequest({ query }), {});
    return response.body;
  };
}

/** GenerateDataKey (32 bytes) under keyId; the context is a JSON object string or undefined. */
export async function generate({ endpoint, keyId, contextJson, accessKeyId, accessKeySecret }) {
  const call = openApiCaller({ endpoint, accessKeyId, accessKeySecret });
  const query = { KeyId: keyId, NumberOfBytes: '32' };
  if (contextJson) query.EncryptionContext = contextJson;
  const r = await call('GenerateDataKey', query);
  return { KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, CiphertextBlob: r.CiphertextBlob, Plaintext: r.Plaintext };
}

export async function decrypt({ endpoint, blob, contextJson, accessKeyId, accessKeySecret }) {
  const call = openApiCaller({ endpoint, accessKeyId, accessKeySecret });
  const query = { CiphertextBlob: blob };
  if (contextJson) query.EncryptionContext = contextJson;
  const r = await call('Decrypt', query);
  return { KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, Plaintext: r.Plaintext };
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const options = {};
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i];
    const value = rest[i + 1];
    if (!name?.startsWith('--') || value === undefined) throw new UsageError(`expected --name value pairs, got '${name ?? ''}'`);
    const key = name.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    options[key] = value;
  }
  if (command !== 'generate' && command !== 'decrypt') throw new UsageError(`unknown command '${command ?? ''}'`);
  if (!options.endpoint) throw new UsageError('--endpoint is required');
  if (command === 'generate' && !options.keyId) throw new UsageError('generate needs --key-id');
  if (command === 'decrypt' && !options.blob) throw new UsageError('decrypt needs --blob');
  if (options.contextJson !== undefined) {
    const parsed = JSON.parse(options.contextJson);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--context-json must be a JSON object');
  }
  return { command, options };
}

class UsageError extends Error {}

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`datakey-crossclient: ${error.message}\n` +
      'usage: datakey-crossclient.mjs generate --endpoint URL --key-id K [--context-json J]\n' +
      '       datakey-crossclient.mjs decrypt  --endpoint URL --blob B [--context-json J]\n');
    process.exitCode = 2;
    return;
  }
  try {
    const result = parsed.command === 'generate' ? await generate(parsed.options) : await decrypt(parsed.options);
    process.stdout.write(JSON.stringify(result) + '\n');
  } catch (error) {
    // openapi-client puts the service's Code/Message/RequestId on error.code, error.data.
    const code = error.data?.Code ?? error.code ?? 'Unknown';
    const requestId = error.data?.RequestId ?? null;
    process.stdout.write(JSON.stringify({ error: { code, message: String(error.data?.Message ?? error.message), requestId } }) + '\n');
    process.exitCode = 3;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
