// Peer for tools/Bench.ps1: the AWS Encryption SDK for JavaScript with a RawAesKeyringNode, in ONE Node process.
//   node aws-sdk-bench.mjs <encrypt|decrypt> <unsigned|default> <source file or folder> <destination file or folder>
// A folder is processed file by file with the buffer API (encrypt/decrypt); a file is streamed
// (encryptStream/decryptStream). Prints "elapsed_ms N": the work only, after the SDK has loaded (the Node start-up,
// ~0.2 s with the SDK, is left out as the pwsh start-up is left out of the module's figures).
//   unsigned: ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY with 64 KiB frames
//   default:  the SDK's default suite (…COMMIT_KEY_ECDSA_P384) and frame length (4 KiB)
import {
  buildClient, CommitmentPolicy, AlgorithmSuiteIdentifier, RawAesKeyringNode, RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import { createReadStream, createWriteStream, readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const [op, suite, src, dst] = process.argv.slice(2);
if (!['encrypt', 'decrypt'].includes(op) || !['unsigned', 'default'].includes(suite) || !src || !dst) {
  console.error('usage: node aws-sdk-bench.mjs <encrypt|decrypt> <unsigned|default> <source> <destination>');
  process.exit(2);
}
const { encrypt, decrypt, encryptStream, decryptStream } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const keyring = new RawAesKeyringNode({
  keyName: 'bench-key',
  keyNamespace: 'envelopekms-bench',
  unencryptedMasterKey: new Uint8Array(32).fill(7), // a fixed benchmark key: no KMS on this side
  wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
});
const options = suite === 'unsigned'
  ? { suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY, frameLength: 64 * 1024 }
  : {};

const started = process.hrtime.bigint();
if (statSync(src).isDirectory()) {
  for (const name of readdirSync(src)) {
    const data = readFileSync(join(src, name));
    if (op === 'encrypt') {
      const { result } = await encrypt(keyring, data, options);
      writeFileSync(join(dst, `${name}.aws`), result);
    } else {
      const { plaintext } = await decrypt(keyring, data);
      writeFileSync(join(dst, name.replace(/\.aws$/, '')), plaintext);
    }
  }
} else if (op === 'encrypt') {
  await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), encryptStream(keyring, options), createWriteStream(dst));
} else {
  await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), decryptStream(keyring), createWriteStream(dst));
}
console.log(`elapsed_ms ${Number(process.hrtime.bigint() - started) / 1e6}`);
