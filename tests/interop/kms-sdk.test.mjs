// Interop: the official Alibaba Cloud Node.js SDKs, unmodified, against the local EnvelopeKms server.
// Only the endpoint and protocol differ from production use. Run from the repository root:
//   (cd tests/interop && npm ci) && node --test --test-reporter=tap tests/interop/*.test.mjs
// The server must be built first (dotnet build src/EnvelopeKms.Server -c Release, or build.ps1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import OpenApi from '@alicloud/openapi-client';
import RPCClient from '@alicloud/pop-core';
import { startLocalServer } from './local-server.mjs';
import Kms from '@alicloud/kms20160120';

const ACCESS_KEY_ID = 'testid';
const ACCESS_KEY_SECRET = 'testsecret';


let local;
let endpoint; // e.g. http://127.0.0.1:41234
let hostPort; // e.g. 127.0.0.1:41234

before(async () => {
  local = await startLocalServer('ekms-interop-');
  endpoint = local.endpoint;
  hostPort = new URL(endpoint).host;
});

after(async () => { await local?.stop(); });

// ---- clients -------------------------------------------------------------------------------

/** @alicloud/openapi-client: V3 (ACS3-HMAC-SHA256) by default, V1 with signatureAlgorithm 'v2'. */
function openApiClient({ v1 = false, secret = ACCESS_KEY_SECRET, accessKeyId = ACCESS_KEY_ID, securityToken } = {}) {
  const config = new OpenApi.Config({ accessKeyId, accessKeySecret: secret, securityToken, endpoint: hostPort, protocol: 'http', regionId: 'cn-hangzhou' });
  if (v1) config.signatureAlgorithm = 'v2';
  const client = new OpenApi.default(config);
  // The same Params every generated KMS operation uses (GO-KMS / NODE-OAC), business params in the query.
  return async (action, query = {}) => {
    const params = new OpenApi.Params({
      action, version: '2016-01-20', protocol: 'HTTP', pathname: '/', method: 'POST',
      authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
    });
    const response = await client.callApi(params, new OpenApi.OpenApiRequest({ query }), {});
    return response.body;
  };
}

/** @alicloud/pop-core: GET by default, POST sends everything as a form body. */
function popCoreClient({ method = 'GET', secret = ACCESS_KEY_SECRET, apiVersion = '2016-01-20' } = {}) {
  const client = new RPCClient({ accessKeyId: ACCESS_KEY_ID, accessKeySecret: secret, endpoint, apiVersion });
  return (action, params = {}) => client.request(action, params, { method, formatParams: false });
}

/** @alicloud/kms20160120 1.2.0 (rpc-client generation); it needs an explicit endpoint (see reference §1.1B). */
function kmsSdkClient() {
  // The config is the rpc-client Config shape; a plain object avoids importing that transitive package.
  return new Kms.default({
    accessKeyId: ACCESS_KEY_ID, accessKeySecret: ACCESS_KEY_SECRET, endpoint: hostPort, protocol: 'http', regionId: 'cn-hangzhou',
  });
}

/** The server's error Code; read from the body because rpc-client reports error.code as `${Code}Error`. */
async function rejectsWithCode(promise, code) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.data?.Code ?? error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return true;
  });
}

const CONTEXT = { purpose: 'interop test', 'file name': 'a+b/c~*.txt' };

// ---- tests ----------------------------------------------------------------------------------

test('openapi-client V3: CreateKey, CreateAlias, DescribeKey, ListAliases', async () => {
  const call = openApiClient();
  const created = await call('CreateKey', { Description: 'interop v3' });
  const keyId = created.KeyMetadata.KeyId;
  assert.match(keyId, /^[0-9a-f-]{36}$/);
  assert.equal(created.KeyMetadata.KeyState, 'Enabled');
  assert.equal(created.KeyMetadata.Arn, `acs:kms:cn-hangzhou:1234567890123456:key/${keyId}`);

  await call('CreateAlias', { AliasName: 'alias/interop/v3', KeyId: keyId });
  const described = await call('DescribeKey', { KeyId: 'alias/interop/v3' });
  assert.equal(described.KeyMetadata.KeyId, keyId);
  assert.equal(described.KeyMetadata.Description, 'interop v3');

  const aliases = await call('ListAliases', { PageSize: '100' });
  const alias = aliases.Aliases.Alias.find((a) => a.AliasName === 'alias/interop/v3');
  assert.equal(alias.KeyId, keyId);
  assert.equal(typeof aliases.TotalCount, 'number');
  assert.equal(aliases.PageSize, 100);
});

test('openapi-client V3: GenerateDataKey and Decrypt with and without EncryptionContext, ReEncrypt', async () => {
  const call = openApiClient();
  const keyId = (await call('CreateKey', {})).KeyMetadata.KeyId;
  await call('CreateAlias', { AliasName: 'alias/interop/data', KeyId: keyId });

  const withContext = await call('GenerateDataKey', { KeyId: 'alias/interop/data', KeySpec: 'AES_256', EncryptionContext: JSON.stringify(CONTEXT) });
  assert.equal(withContext.KeyId, keyId);
  assert.equal(Buffer.from(withContext.Plaintext, 'base64').length, 32);
  const decrypted = await call('Decrypt', { CiphertextBlob: withContext.CiphertextBlob, EncryptionContext: JSON.stringify(CONTEXT) });
  assert.equal(decrypted.Plaintext, withContext.Plaintext);
  assert.equal(decrypted.KeyId, keyId);
  assert.equal(decrypted.KeyVersionId, withContext.KeyVersionId);
  // A different context must not decrypt.
  await rejectsWithCode(call('Decrypt', { CiphertextBlob: withContext.CiphertextBlob, EncryptionContext: '{"purpose":"other"}' }), 'InvalidParameter');

  const noContext = await call('GenerateDataKey', { KeyId: keyId, NumberOfBytes: '16' });
  assert.equal(Buffer.from(noContext.Plaintext, 'base64').length, 16);
  const plain = await call('Decrypt', { CiphertextBlob: noContext.CiphertextBlob });
  assert.equal(plain.Plaintext, noContext.Plaintext);

  const otherKey = (await call('CreateKey', {})).KeyMetadata.KeyId;
  const reEncrypted = await call('ReEncrypt', {
    CiphertextBlob: withContext.CiphertextBlob, SourceEncryptionContext: JSON.stringify(CONTEXT),
    DestinationKeyId: otherKey, DestinationEncryptionContext: '{"stage":"two"}',
  });
  assert.equal(reEncrypted.KeyId, otherKey);
  const afterReEncrypt = await call('Decrypt', { CiphertextBlob: reEncrypted.CiphertextBlob, EncryptionContext: '{"stage":"two"}' });
  assert.equal(afterReEncrypt.Plaintext, withContext.Plaintext);
  assert.equal(afterReEncrypt.KeyId, otherKey);
});

test('openapi-client V1 (signatureAlgorithm v2): GenerateDataKey, Decrypt, Encrypt', async () => {
  const call = openApiClient({ v1: true });
  const keyId = (await call('CreateKey', { Description: 'interop v1' })).KeyMetadata.KeyId;
  const dataKey = await call('GenerateDataKey', { KeyId: keyId, EncryptionContext: JSON.stringify(CONTEXT) });
  const decrypted = await call('Decrypt', { CiphertextBlob: dataKey.CiphertextBlob, EncryptionContext: JSON.stringify(CONTEXT) });
  assert.equal(decrypted.Plaintext, dataKey.Plaintext);

  const secret = Buffer.from('hello, kms *~+/ world').toString('base64');
  const encrypted = await call('Encrypt', { KeyId: keyId, Plaintext: secret });
  assert.equal((await call('Decrypt', { CiphertextBlob: encrypted.CiphertextBlob })).Plaintext, secret);
});

for (const method of ['GET', 'POST']) {
  test(`pop-core ${method}: CreateKey, CreateAlias, GenerateDataKey, Decrypt, DescribeKey, ListAliases`, async () => {
    const call = popCoreClient({ method });
    const keyId = (await call('CreateKey', { Description: `pop-core ${method}` })).KeyMetadata.KeyId;
    const aliasName = `alias/interop/pop-${method.toLowerCase()}`;
    await call('CreateAlias', { AliasName: aliasName, KeyId: keyId });
    const dataKey = await call('GenerateDataKey', { KeyId: aliasName, EncryptionContext: JSON.stringify(CONTEXT) });
    const decrypted = await call('Decrypt', { CiphertextBlob: dataKey.CiphertextBlob, EncryptionContext: JSON.stringify(CONTEXT) });
    assert.equal(decrypted.Plaintext, dataKey.Plaintext);
    // The documented envelope sample passes the blob with its trailing newline.
    const withNewline = await call('Decrypt', { CiphertextBlob: `${dataKey.CiphertextBlob}\n`, EncryptionContext: JSON.stringify(CONTEXT) });
    assert.equal(withNewline.Plaintext, dataKey.Plaintext);
    assert.equal((await call('DescribeKey', { KeyId: aliasName })).KeyMetadata.KeyId, keyId);
    const aliases = await call('ListAliasesByKeyId', { KeyId: keyId });
    assert.deepEqual(aliases.Aliases.Alias.map((a) => a.AliasName), [aliasName]);
  });
}

test('kms20160120 SDK: CreateKey, CreateAlias, GenerateDataKey, Decrypt, DescribeKey, ListAliases', async () => {
  const client = kmsSdkClient();
  const created = await client.createKey(new Kms.CreateKeyRequest({ description: 'kms20160120' }));
  const keyId = created.keyMetadata.keyId;
  assert.equal(created.keyMetadata.keyState, 'Enabled');
  await client.createAlias(new Kms.CreateAliasRequest({ aliasName: 'alias/interop/sdk', keyId }));
  // No EncryptionContext here: this old SDK flattens maps to EncryptionContext.k=v instead of JSON (reference §1.1B).
  const dataKey = await client.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId: 'alias/interop/sdk', numberOfBytes: 32 }));
  assert.equal(dataKey.keyId, keyId);
  const decrypted = await client.decrypt(new Kms.DecryptRequest({ ciphertextBlob: dataKey.ciphertextBlob }));
  assert.equal(decrypted.plaintext, dataKey.plaintext);
  assert.equal((await client.describeKey(new Kms.DescribeKeyRequest({ keyId }))).keyMetadata.arn.endsWith(`key/${keyId}`), true);
  const aliases = await client.listAliases(new Kms.ListAliasesRequest({ pageSize: 100 }));
  assert.ok(aliases.aliases.alias.some((a) => a.aliasName === 'alias/interop/sdk' && a.keyId === keyId));
});

test('a disabled key is rejected with Rejected.Disabled (409) by every client', async () => {
  const v3 = openApiClient();
  const keyId = (await v3('CreateKey', {})).KeyMetadata.KeyId;
  const blob = (await v3('GenerateDataKey', { KeyId: keyId })).CiphertextBlob;
  await v3('DisableKey', { KeyId: keyId });
  assert.equal((await v3('DescribeKey', { KeyId: keyId })).KeyMetadata.KeyState, 'Disabled');

  await assert.rejects(v3('GenerateDataKey', { KeyId: keyId }), (error) => error.code === 'Rejected.Disabled' && error.statusCode === 409);
  await rejectsWithCode(openApiClient({ v1: true })('Decrypt', { CiphertextBlob: blob }), 'Rejected.Disabled');
  await rejectsWithCode(popCoreClient({ method: 'GET' })('GenerateDataKey', { KeyId: keyId }), 'Rejected.Disabled');
  await rejectsWithCode(kmsSdkClient().decrypt(new Kms.DecryptRequest({ ciphertextBlob: blob })), 'Rejected.Disabled');

  await v3('EnableKey', { KeyId: keyId });
  assert.ok((await v3('Decrypt', { CiphertextBlob: blob })).Plaintext);
});

test('a wrong secret fails with SignatureDoesNotMatch for V3, V1 and pop-core', async () => {
  const prefix = 'Specified signature is not matched with our calculation. server string to sign is:';
  await assert.rejects(openApiClient({ secret: 'wrong' })('ListKeys', {}), (error) => {
    assert.equal(error.code, 'SignatureDoesNotMatch');
    assert.equal(error.statusCode, 400);
    assert.ok(error.data.Message.startsWith(prefix + 'ACS3-HMAC-SHA256\n'));
    return true;
  });
  await assert.rejects(openApiClient({ v1: true, secret: 'wrong' })('ListKeys', {}), (error) => {
    assert.equal(error.code, 'SignatureDoesNotMatch');
    assert.ok(error.data.Message.startsWith(prefix + 'POST&%2F&'));
    return true;
  });
  await rejectsWithCode(popCoreClient({ secret: 'wrong' })('ListKeys', {}), 'SignatureDoesNotMatch');
});

test('STS AssumeRole through pop-core, then KMS with the temporary credentials (V3 and V1)', async () => {
  const sts = popCoreClient({ method: 'POST', apiVersion: '2015-04-01' });
  const assumed = await sts('AssumeRole', { RoleArn: 'acs:ram::1234567890123456:role/interop', RoleSessionName: 'interop-session' });
  const { AccessKeyId, AccessKeySecret, SecurityToken, Expiration } = assumed.Credentials;
  assert.match(AccessKeyId, /^STS\./);
  assert.ok(Date.parse(Expiration) > Date.now());

  for (const v1 of [false, true]) {
    const call = openApiClient({ v1, accessKeyId: AccessKeyId, secret: AccessKeySecret, securityToken: SecurityToken });
    const keyId = (await call('CreateKey', {})).KeyMetadata.KeyId;
    const dataKey = await call('GenerateDataKey', { KeyId: keyId });
    assert.equal((await call('Decrypt', { CiphertextBlob: dataKey.CiphertextBlob })).Plaintext, dataKey.Plaintext);
  }
  const wrongToken = openApiClient({ accessKeyId: AccessKeyId, secret: AccessKeySecret, securityToken: `${SecurityToken}x` });
  await rejectsWithCode(wrongToken('ListKeys', {}), 'InvalidSecurityToken.MismatchWithAccessKey');
});
