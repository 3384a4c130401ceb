// Tests for the independent JavaScript EKMS implementation (ekms.mjs) against docs/format.md and against the
// known-answer vectors the C# implementation wrote (tests/vectors/ekms-v1.json, ekms-v2.json; v2 at the end).
// Run: node --test tests/interop/ekms-format.test.mjs

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCipheriv, randomBytes } from 'node:crypto';
import {
  encrypt, decrypt, parseHeader, encodeContext, deriveKeys, rewrap, slotSizeFor, MAGIC, ERROR_CODES,
} from './ekms.mjs';

const vectorFile = new URL('../vectors/ekms-v1.json', import.meta.url);
const V = JSON.parse(readFileSync(vectorFile, 'utf8'));
const DATA_KEY = Buffer.from(V.dataKey, 'hex');
const MESSAGE_ID = Buffer.from(V.messageId, 'hex');
const F = V.frameLength;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

function vectorPlaintext(length) {
  const p = Buffer.alloc(length);
  for (let i = 0; i < length; i++) p[i] = i % 251; // the rule stated in the JSON and in §9
  return p;
}

// A small seeded PRNG (mulberry32) so random cases are reproducible from the seed printed in the test name.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randInt = (rnd, lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)); // inclusive

const wk = (over = {}) => ({
  providerId: 'aliyun-kms', keyId: 'key-1', keyVersionId: 'v1', region: 'cn-test', ciphertextBlob: 'YmxvYg==', ...over,
});

function makeFile(plaintextLength, { frameLength = F, context = { project: 'Apollo' }, dataKey = DATA_KEY, messageId } = {}) {
  const plaintext = randomBytes(plaintextLength);
  return { plaintext, file: encrypt({ plaintext, dataKey, messageId, frameLength, context, wrappedKeys: [wk()] }) };
}

const withKey = (key = DATA_KEY) => ({ unwrap: () => key });

// Asserts that `fn` throws an EKMS error with exactly this code.
function rejects(fn, code) {
  assert.ok(ERROR_CODES.includes(code), `test bug: ${code} is not an error code`);
  assert.throws(fn, (e) => {
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

const decryptRejects = (buf, code, opts = withKey()) => rejects(() => decrypt(buf, opts), code);

function flipBit(buf, byteOffset, bit = 0) {
  const copy = Buffer.from(buf);
  copy[byteOffset] ^= 1 << bit;
  return copy;
}

// Splits a file into its header and body frames, using the frame-length arithmetic of §6.
function splitFrames(file) {
  const h = parseHeader(file);
  const slot = h.frameLength + 16;
  const frames = [];
  for (let pos = h.headerLength; pos < file.length; pos += slot) frames.push(file.subarray(pos, Math.min(pos + slot, file.length)));
  return { header: file.subarray(0, h.headerLength), frames, parsed: h };
}

// Builds raw header bytes field by field, independent of encrypt(), so that invalid headers can be expressed.
function rawHeader({
  version = 1, suite = 1, reserved = 0, frameLength = 4096, messageId = MESSAGE_ID,
  context = Buffer.alloc(0), contextLength = context.length, keyCount, keys = [rawKey()], tail = Buffer.alloc(48),
} = {}) {
  const b = [];
  const u16 = (v) => { const x = Buffer.alloc(2); x.writeUInt16BE(v); return x; };
  const u32 = (v) => { const x = Buffer.alloc(4); x.writeUInt32BE(v); return x; };
  b.push(MAGIC, Buffer.from([version]), u16(suite), Buffer.from([reserved]), u32(frameLength), messageId);
  b.push(u16(contextLength), context, u16(keyCount ?? keys.length), ...keys, tail);
  return Buffer.concat(b);
}

// One wrapped-key entry; each field is given as a string or as raw bytes, or as { declared, bytes } to lie about
// the length.
function rawKey({ providerId = 'aliyun-kms', keyId = 'k', keyVersionId = '', region = '', ciphertextBlob = 'Yg==' } = {}) {
  return Buffer.concat([providerId, keyId, keyVersionId, region, ciphertextBlob].map(rawStr16));
}

function rawStr16(field) {
  const bytes = typeof field === 'string' ? Buffer.from(field, 'utf8') : Buffer.isBuffer(field) ? field : field.bytes;
  const declared = field?.declared ?? bytes.length;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(declared);
  return Buffer.concat([len, bytes]);
}

// Raw context bytes: [count, [key, value], ...] with keys/values as strings or Buffers.
function rawContext(count, pairs) {
  const c = Buffer.alloc(2);
  c.writeUInt16BE(count);
  return Buffer.concat([c, ...pairs.flatMap(([k, v]) => [rawStr16(k), rawStr16(v)])]);
}

// ---------------------------------------------------------------------------------------------------------------
// (a) Known-answer vectors written by the C# implementation

describe('known-answer vectors (tests/vectors/ekms-v1.json, written by the C# implementation)', () => {
  test('the JSON has the vectors §9 promises', () => {
    assert.deepEqual(V.vectors.map((v) => v.plaintextLength), [0, 1, F - 1, F, F + 1, 2 * F + 1]);
    for (const v of V.vectors) assert.equal(v.plaintextRule, 'byte i = i mod 251');
  });

  for (const v of V.vectors) {
    const file = Buffer.from(v.file, 'hex');
    const expected = vectorPlaintext(v.plaintextLength);

    test(`P=${v.plaintextLength}: header parses to the documented fields`, () => {
      const h = parseHeader(file);
      assert.equal(h.version, 1);
      assert.equal(h.suite, 1);
      assert.equal(h.frameLength, F);
      assert.ok(h.messageId.equals(MESSAGE_ID));
      assert.deepEqual({ ...h.context }, V.encryptionContext);
      assert.deepEqual(h.wrappedKeys, [V.wrappedKey]);
      assert.ok(h.commitment.equals(deriveKeys(DATA_KEY, MESSAGE_ID).commitment));
    });

    test(`P=${v.plaintextLength}: decrypts to the expected plaintext`, () => {
      const { plaintext } = decrypt(file, { unwrap: () => DATA_KEY, requiredContext: V.encryptionContext });
      assert.ok(plaintext.equals(expected));
    });

    test(`P=${v.plaintextLength}: re-encrypting with the same message id reproduces the file byte for byte`, () => {
      const ours = encrypt({
        plaintext: expected, dataKey: DATA_KEY, messageId: MESSAGE_ID, frameLength: F,
        context: V.encryptionContext, wrappedKeys: [V.wrappedKey],
      });
      assert.equal(ours.toString('hex'), v.file);
    });
  }

  test('the P=1 header matches the annotated bytes of §9', () => {
    const file = Buffer.from(V.vectors.find((v) => v.plaintextLength === 1).file, 'hex');
    const annotated = '89454b4d0d0a1a0a' + '01' + '0001' + '00' + '00001000' + MESSAGE_ID.toString('hex') + '0031' + '0002'
      + '0007' + '70726f6a656374' + '0006' + '41706f6c6c6f' + '0007' + '707572706f7365'
      + '0013' + '6b6e6f776e2d616e7377657220766563746f72' + '0001' + '000a' + '616c6979756e2d6b6d73' + '002d';
    assert.equal(file.subarray(0, annotated.length / 2).toString('hex'), annotated);
    assert.equal(file.length, parseHeader(file).headerLength + 1 + 16);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (b) Round trips

describe('round trips', () => {
  const seed = 0x5eed;
  const rnd = prng(seed);
  const cases = [];
  for (const frameLength of [4096, 4097, 65536]) {
    for (const p of [0, 1, frameLength - 1, frameLength, frameLength + 1, 3 * frameLength, 3 * frameLength + 7]) cases.push({ p, frameLength });
  }
  for (let i = 0; i < 12; i++) cases.push({ p: randInt(rnd, 0, 300_000), frameLength: randInt(rnd, 4096, 100_000) });
  cases.push({ p: 1_000_003, frameLength: 16 * 1024 * 1024 }, { p: 1_000_003, frameLength: 4096 });

  for (const { p, frameLength } of cases) {
    test(`P=${p} F=${frameLength} (seed ${seed})`, () => {
      const context = { project: 'Apollo', 'ключ': 'значение', '\u{1F600}': '' };
      const { plaintext, file } = makeFile(p, { frameLength, context });
      const { plaintext: back, header } = decrypt(file, { unwrap: () => DATA_KEY, requiredContext: context });
      assert.ok(back.equals(plaintext));
      assert.deepEqual({ ...header.context }, context);
      // §6: B = N·(F+16) + r + 16.
      const N = Math.floor(p / frameLength);
      assert.equal(file.length - header.headerLength, N * (frameLength + 16) + (p % frameLength) + 16);
    });
  }

  test('a fresh random message id per file: same inputs, different files, both decrypt', () => {
    const plaintext = randomBytes(100);
    const args = { plaintext, dataKey: DATA_KEY, frameLength: 4096, wrappedKeys: [wk()] };
    const a = encrypt(args);
    const b = encrypt(args);
    assert.ok(!parseHeader(a).messageId.equals(parseHeader(b).messageId));
    assert.ok(decrypt(a, withKey()).plaintext.equals(decrypt(b, withKey()).plaintext));
  });

  test('up to 16 wrapped keys are written; readers accept more than 8 only when configured', () => {
    const keys = Array.from({ length: 16 }, (_, i) => wk({ keyId: `key-${i}` }));
    const file = encrypt({ plaintext: Buffer.from('x'), dataKey: DATA_KEY, wrappedKeys: keys });
    rejects(() => parseHeader(file), 'LimitExceeded');
    assert.deepEqual(parseHeader(file, { maxWrappedKeys: 16 }).wrappedKeys, keys);
    assert.equal(decrypt(file, { ...withKey(), maxWrappedKeys: 16 }).plaintext.toString(), 'x');
  });

  test('context keys are sorted by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF61 is EF BD A1 in UTF-8 and FF61 in UTF-16; U+1F600 is F0 9F 98 80 and D83D DE00. The orders disagree.
    const encoded = encodeContext({ '\u{1F600}': 'b', '\uFF61': 'a' });
    assert.equal(encoded.toString('hex'), '0002' + '0003efbda1' + '000161' + '0004f09f9880' + '000162');
    const utf16Order = rawContext(2, [['\u{1F600}', 'b'], ['\uFF61', 'a']]);
    rejects(() => parseHeader(rawHeader({ context: utf16Order })), 'MalformedHeader');
    assert.deepEqual({ ...parseHeader(rawHeader({ context: encoded })).context }, { '\uFF61': 'a', '\u{1F600}': 'b' });
  });

  test('a context key "__proto__" is kept as data', () => {
    const context = JSON.parse('{"__proto__": "x", "a": "b"}');
    const { file } = makeFile(3, { context });
    const h = parseHeader(file);
    assert.ok(Object.hasOwn(h.context, '__proto__'));
    assert.equal(h.context.__proto__, 'x'); // eslint-disable-line no-proto
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (c) Tampering, truncation, extension, reordering, substitution, mangling

describe('tampering', () => {
  const vector = Buffer.from(V.vectors.find((v) => v.plaintextLength === 2 * F + 1).file, 'hex');
  const H = parseHeader(vector).headerLength;
  const ctxStart = 50;

  const headerCases = [
    ['magic first byte', (b) => flipBit(b, 0), 'NotEnvelope'],
    ['version 01 -> 03', (b) => { const c = Buffer.from(b); c[8] = 3; return c; }, 'UnsupportedVersion'],
    ['version 01 -> 00', (b) => { const c = Buffer.from(b); c[8] = 0; return c; }, 'UnsupportedVersion'],
    ['suite 0001 -> 0002', (b) => { const c = Buffer.from(b); c[10] = 2; return c; }, 'UnsupportedSuite'],
    ['reserved 00 -> 01', (b) => flipBit(b, 11), 'MalformedHeader'],
    ['frame length 4096 -> 8192 (valid, but authenticated)', (b) => { const c = Buffer.from(b); c.writeUInt32BE(8192, 12); return c; }, 'HeaderTampered'],
    ['frame length 4096 -> 4095', (b) => { const c = Buffer.from(b); c.writeUInt32BE(4095, 12); return c; }, 'MalformedHeader'],
    ['message id bit', (b) => flipBit(b, 16 + 5, 3), 'KeyCommitmentMismatch'],
    ['context value "Apollo" -> "Bpollo"', (b) => { const c = Buffer.from(b); c[ctxStart + 2 + 2 + 7 + 2] = 0x42; return c; }, 'HeaderTampered'],
    ['context key "project" -> "qroject" (now unsorted)', (b) => { const c = Buffer.from(b); c[ctxStart + 2 + 2] = 0x71; return c; }, 'MalformedHeader'],
    ['ciphertext blob byte', (b) => flipBit(b, H - 48 - 1, 1), 'HeaderTampered'],
    ['region byte', (b) => flipBit(b, H - 48 - 18 - 2, 1), 'HeaderTampered'],
    ['commitment bit', (b) => flipBit(b, H - 48 + 7, 7), 'KeyCommitmentMismatch'],
    ['header tag bit', (b) => flipBit(b, H - 16 + 3, 2), 'HeaderTampered'],
  ];
  for (const [name, mutate, code] of headerCases) {
    test(`header: ${name} -> ${code}`, () => decryptRejects(mutate(vector), code));
  }

  test('every single-bit flip anywhere in the header is rejected before any plaintext', () => {
    for (let i = 0; i < H; i++) {
      for (let bit = 0; bit < 8; bit++) {
        assert.throws(() => decrypt(flipBit(vector, i, bit), withKey()), (e) => ERROR_CODES.includes(e.code), `byte ${i} bit ${bit}`);
      }
    }
  });

  test('every byte of the body, flipped, is FrameTampered at the right frame', () => {
    for (let i = H; i < vector.length; i++) {
      assert.throws(() => decrypt(flipBit(vector, i, i % 8), withKey()), (e) => {
        assert.equal(e.code, 'FrameTampered', `byte ${i}`);
        assert.equal(e.frameIndex, Math.floor((i - H) / (F + 16)) + 1);
        return true;
      });
    }
  });

  test('truncation at every length is rejected, with Truncated exactly where §6 says', () => {
    for (let cut = 0; cut < vector.length; cut++) {
      const rest = (cut - H) % (F + 16);
      const code = cut === 0 ? 'NotEnvelope' : cut < H || rest < 16 ? 'Truncated' : 'FrameTampered';
      decryptRejects(vector.subarray(0, cut), code);
    }
  });

  test('dropping the empty final frame after a full frame is Truncated', () => {
    const { file } = makeFile(2 * F);
    const { frames } = splitFrames(file);
    assert.equal(frames.at(-1).length, 16);
    decryptRejects(file.subarray(0, file.length - 16), 'Truncated');
  });

  for (const extra of [1, 15, 16, 17, F - 1, F, F + 15, F + 16, F + 17, 2 * (F + 16)]) {
    test(`extension by ${extra} bytes is FrameTampered`, () => {
      decryptRejects(Buffer.concat([vector, randomBytes(extra)]), 'FrameTampered');
    });
  }

  test('appending a copy of the genuine final frame is FrameTampered', () => {
    const { frames } = splitFrames(vector);
    decryptRejects(Buffer.concat([vector, frames.at(-1)]), 'FrameTampered');
  });

  test('reordering, duplicating and deleting frames is FrameTampered', () => {
    const { header, frames: [f1, f2, f3] } = splitFrames(vector);
    decryptRejects(Buffer.concat([header, f2, f1, f3]), 'FrameTampered');
    decryptRejects(Buffer.concat([header, f1, f1, f3]), 'FrameTampered');
    decryptRejects(Buffer.concat([header, f1, f3]), 'FrameTampered');
    decryptRejects(Buffer.concat([header, f2, f3]), 'FrameTampered');
  });

  test('splicing a frame from another file under the same data key is FrameTampered', () => {
    const other = encrypt({
      plaintext: vectorPlaintext(2 * F + 1), dataKey: DATA_KEY, frameLength: F,
      context: V.encryptionContext, wrappedKeys: [V.wrappedKey],
    });
    const a = splitFrames(vector);
    const b = splitFrames(other);
    decryptRejects(Buffer.concat([a.header, b.frames[0], a.frames[1], a.frames[2]]), 'FrameTampered');
  });

  test('a final frame of full length F (flag set) is read as a regular frame and rejected', () => {
    // Built by hand: one frame of F bytes marked final, which §6 forbids.
    const messageId = randomBytes(32);
    const good = encrypt({ plaintext: Buffer.alloc(0), dataKey: DATA_KEY, messageId, frameLength: F, wrappedKeys: [wk()] });
    const { header } = splitFrames(good);
    const { fileKey } = deriveKeys(DATA_KEY, messageId);
    const nonce = Buffer.concat([Buffer.alloc(4), Buffer.from('0000000000000001', 'hex')]);
    const aad = Buffer.concat([messageId, Buffer.from('0000000000000001', 'hex'), Buffer.from([1]), Buffer.from('00001000', 'hex')]);
    const c = createCipheriv('aes-256-gcm', fileKey, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(Buffer.alloc(F)), c.final()]);
    decryptRejects(Buffer.concat([header, ct, c.getAuthTag()]), 'FrameTampered');
    // The same frame followed by an empty final frame would still fail: frame 1 is not marked final in the aad.
    decryptRejects(Buffer.concat([header, ct, c.getAuthTag(), splitFrames(good).frames[0]]), 'FrameTampered');
  });
});

describe('keys and context at decryption', () => {
  const vector = Buffer.from(V.vectors.find((v) => v.plaintextLength === 1).file, 'hex');

  test('a wrapped key that unwraps to another key is KeyCommitmentMismatch', () => {
    decryptRejects(vector, 'KeyCommitmentMismatch', withKey(randomBytes(32)));
  });

  test('after a commitment mismatch the next wrapped key is tried, in header order', () => {
    const keys = [wk({ keyId: 'wrong' }), wk({ keyId: 'skipped' }), wk({ keyId: 'right' })];
    const file = encrypt({ plaintext: Buffer.from('hello'), dataKey: DATA_KEY, wrappedKeys: keys });
    const asked = [];
    const { plaintext } = decrypt(file, {
      unwrap: ([k]) => {
        asked.push(k.keyId);
        if (k.keyId === 'skipped') return null; // not allowed for this caller
        return k.keyId === 'right' ? DATA_KEY : randomBytes(32);
      },
    });
    assert.equal(plaintext.toString(), 'hello');
    assert.deepEqual(asked, ['wrong', 'skipped', 'right']);
  });

  test('a data key that is not 32 bytes is a failure, never used', () => {
    assert.throws(() => decrypt(vector, withKey(DATA_KEY.subarray(0, 31))), /not 32 bytes/);
    assert.throws(() => decrypt(vector, withKey(Buffer.concat([DATA_KEY, Buffer.alloc(1)]))), /not 32 bytes/);
  });

  test('an unwrap failure propagates when no key works', () => {
    const boom = new Error('KMS says no');
    assert.throws(() => decrypt(vector, { unwrap: () => { throw boom; } }), (e) => e === boom);
  });

  test('required context pairs must be present with the same value, checked before unwrapping', () => {
    const never = { unwrap: () => assert.fail('unwrap must not be called') };
    rejects(() => decrypt(vector, { ...never, requiredContext: { project: 'Gemini' } }), 'ContextMismatch');
    rejects(() => decrypt(vector, { ...never, requiredContext: { owner: 'Apollo' } }), 'ContextMismatch');
    assert.equal(decrypt(vector, { ...withKey(), requiredContext: { project: 'Apollo' } }).plaintext[0], 0);
  });

  test('a malformed header never reaches the key provider', () => {
    const c = Buffer.from(vector);
    c[11] = 1;
    rejects(() => decrypt(c, { unwrap: () => assert.fail('unwrap must not be called') }), 'MalformedHeader');
  });
});

describe('mangled files (§7.1)', () => {
  const vector = Buffer.from(V.vectors.find((v) => v.plaintextLength === 4095).file, 'hex');
  const replaceAll = (buf, from, to) => Buffer.from(buf.toString('latin1').split(from).join(to), 'latin1');

  test('CR LF -> LF by a text-mode transfer is TextModeCorrupted', () => decryptRejects(replaceAll(vector, '\r\n', '\n'), 'TextModeCorrupted'));
  test('LF -> CR LF by a text-mode transfer is TextModeCorrupted', () => decryptRejects(replaceAll(vector, '\n', '\r\n'), 'TextModeCorrupted'));
  test('base64 of the file is Base64Encoded', () => decryptRejects(Buffer.from(vector.toString('base64')), 'Base64Encoded'));
  test('base64 with MIME line breaks is Base64Encoded', () => {
    const b64 = vector.toString('base64').replace(/.{76}/g, '$&\r\n');
    decryptRejects(Buffer.from(b64), 'Base64Encoded');
  });
  test('every non-empty proper prefix of the magic is Truncated; an empty file is NotEnvelope', () => {
    decryptRejects(MAGIC.subarray(0, 0), 'NotEnvelope');
    for (let n = 1; n < 8; n++) decryptRejects(MAGIC.subarray(0, n), 'Truncated');
  });
  test('a 7-bit channel (high bit stripped) is NotEnvelope', () => decryptRejects(flipBit(vector, 0, 7), 'NotEnvelope'));
  test('arbitrary text is NotEnvelope', () => decryptRejects(Buffer.from('hello, world\n'), 'NotEnvelope'));
});

// ---------------------------------------------------------------------------------------------------------------
// (d) Header caps and canonical encoding

describe('header caps', () => {
  test('the raw header builder produces a header that parses (control)', () => {
    const h = parseHeader(rawHeader());
    assert.equal(h.wrappedKeys.length, 1);
    assert.equal(h.headerLength, rawHeader().length);
  });

  for (const frameLength of [0, 1, 4095, 2 ** 24 + 1, 0xffffffff]) {
    test(`frame length ${frameLength} is MalformedHeader`, () => rejects(() => parseHeader(rawHeader({ frameLength })), 'MalformedHeader'));
  }
  for (const frameLength of [4096, 2 ** 24]) {
    test(`frame length ${frameLength} is accepted`, () => assert.equal(parseHeader(rawHeader({ frameLength })).frameLength, frameLength));
  }

  test('wrapped key count 0 is MalformedHeader', () => rejects(() => parseHeader(rawHeader({ keys: [] })), 'MalformedHeader'));
  test('wrapped key count 0xFFFF is LimitExceeded, before reading any entry', () => {
    rejects(() => parseHeader(rawHeader({ keyCount: 0xffff, keys: [], tail: Buffer.alloc(0) })), 'LimitExceeded');
    rejects(() => parseHeader(rawHeader({ keyCount: 0xffff, keys: [], tail: Buffer.alloc(0) }), { maxWrappedKeys: 1e9 }), 'LimitExceeded');
  });
  test('9 wrapped keys exceed the default limit of 8; 17 exceed the format', () => {
    const keys = (n) => Array.from({ length: n }, () => rawKey());
    assert.equal(parseHeader(rawHeader({ keys: keys(8) })).wrappedKeys.length, 8);
    rejects(() => parseHeader(rawHeader({ keys: keys(9) })), 'LimitExceeded');
    assert.equal(parseHeader(rawHeader({ keys: keys(9) }), { maxWrappedKeys: 16 }).wrappedKeys.length, 9);
    rejects(() => parseHeader(rawHeader({ keys: keys(17) }), { maxWrappedKeys: 100 }), 'LimitExceeded');
  });

  const caps = { providerId: [1, 64], keyId: [1, 2048], keyVersionId: [0, 256], region: [0, 64], ciphertextBlob: [1, 4096] };
  for (const [field, [min, max]] of Object.entries(caps)) {
    test(`${field}: ${max} bytes accepted, ${max + 1} and 0xFFFF are LimitExceeded before reading on`, () => {
      assert.equal(parseHeader(rawHeader({ keys: [rawKey({ [field]: 'a'.repeat(max) })] })).wrappedKeys[0][field].length, max);
      rejects(() => parseHeader(rawHeader({ keys: [rawKey({ [field]: 'a'.repeat(max + 1) })] })), 'LimitExceeded');
      // Declares 0xFFFF but the file ends straight after the length: the cap must be checked before the read.
      const cut = rawHeader({ keys: [rawKey({ [field]: { declared: 0xffff, bytes: Buffer.alloc(0) } })] });
      const end = cut.indexOf(Buffer.from([0xff, 0xff]), 50) + 2;
      rejects(() => parseHeader(cut.subarray(0, end)), 'LimitExceeded');
    });
    test(`${field}: length 0 is ${min === 0 ? 'accepted' : 'MalformedHeader'}`, () => {
      const buf = rawHeader({ keys: [rawKey({ [field]: '' })] });
      if (min === 0) assert.equal(parseHeader(buf).wrappedKeys[0][field], '');
      else rejects(() => parseHeader(buf), 'MalformedHeader');
    });
  }

  const badUtf8 = {
    'overlong NUL (C0 80)': Buffer.from([0xc0, 0x80]),
    'overlong slash (E0 80 AF)': Buffer.from([0xe0, 0x80, 0xaf]),
    'surrogate (ED A0 80)': Buffer.from([0xed, 0xa0, 0x80]),
    'truncated sequence (E2 82)': Buffer.from([0xe2, 0x82]),
    'above U+10FFFF (F4 90 80 80)': Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    'lone continuation (80)': Buffer.from([0x80]),
  };
  for (const [name, bytes] of Object.entries(badUtf8)) {
    test(`invalid UTF-8, ${name}, is MalformedHeader in a wrapped key and in the context`, () => {
      rejects(() => parseHeader(rawHeader({ keys: [rawKey({ keyId: Buffer.concat([Buffer.from('k'), bytes]) })] })), 'MalformedHeader');
      rejects(() => parseHeader(rawHeader({ context: rawContext(1, [['k', bytes]]) })), 'MalformedHeader');
      rejects(() => parseHeader(rawHeader({ context: rawContext(1, [[bytes, 'v']]) })), 'MalformedHeader');
    });
  }

  test('a leading BOM is kept as U+FEFF, not dropped (so the encoding stays one-to-one)', () => {
    const h = parseHeader(rawHeader({ keys: [rawKey({ keyId: '\uFEFFk' })] }));
    assert.equal(h.wrappedKeys[0].keyId, '\uFEFFk');
  });

  const contexts = {
    'zero count with L = 2': [rawContext(0, []), 'MalformedHeader'],
    'unsorted keys': [rawContext(2, [['b', '1'], ['a', '2']]), 'MalformedHeader'],
    'duplicate keys': [rawContext(2, [['a', '1'], ['a', '2']]), 'MalformedHeader'],
    'a prefix sorts first ("a" < "ab")': [rawContext(2, [['ab', '1'], ['a', '2']]), 'MalformedHeader'],
    'empty key': [rawContext(1, [['', 'v']]), 'MalformedHeader'],
    'count larger than the pairs present': [rawContext(2, [['a', '1']]), 'MalformedHeader'],
    'a value length running past L': [rawContext(1, [['a', { declared: 5, bytes: Buffer.from('ab') }]]), 'MalformedHeader'],
    'bytes left over after the pairs': [Buffer.concat([rawContext(1, [['a', '1']]), Buffer.from([0])]), 'MalformedHeader'],
    'L = 1 (no room for a count)': [Buffer.from([1]), 'MalformedHeader'],
  };
  for (const [name, [context, code]] of Object.entries(contexts)) {
    test(`context: ${name} is ${code}`, () => rejects(() => parseHeader(rawHeader({ context })), code));
  }

  test('context: an empty value is allowed; L = 65,535 exactly is allowed', () => {
    assert.deepEqual({ ...parseHeader(rawHeader({ context: rawContext(1, [['a', '']]) })).context }, { a: '' });
    const big = rawContext(1, [['k', 'v'.repeat(65535 - 2 - 2 - 1 - 2)]]);
    assert.equal(big.length, 65535);
    assert.equal(parseHeader(rawHeader({ context: big })).context.k.length, 65528);
  });

  test('context length past the end of the file is Truncated', () => {
    const buf = rawHeader({ contextLength: 0xffff, context: Buffer.alloc(0), keys: [], tail: Buffer.alloc(0) });
    rejects(() => parseHeader(buf), 'Truncated');
  });

  test('a header cut anywhere is Truncated', () => {
    const full = rawHeader({ context: rawContext(1, [['a', 'b']]) });
    parseHeader(full);
    rejects(() => parseHeader(full.subarray(0, 0)), 'NotEnvelope');
    for (let n = 1; n < full.length; n++) rejects(() => parseHeader(full.subarray(0, n)), 'Truncated');
  });
});

describe('writer refusals', () => {
  const base = { plaintext: Buffer.from('x'), dataKey: DATA_KEY, wrappedKeys: [wk()] };
  const refuses = (over, what) => test(`encrypt refuses ${what}`, () => {
    assert.throws(() => encrypt({ ...base, ...over }), (e) => e.code === 'InvalidArgument');
  });
  refuses({ context: { 'ekms:reserved': 'x' } }, 'a reserved ekms: context key');
  refuses({ context: { '': 'x' } }, 'an empty context key');
  refuses({ context: { a: '\uD800' } }, 'a lone surrogate in a context value');
  refuses({ context: { a: 'x'.repeat(65530) } }, 'a context longer than 65,535 encoded bytes');
  refuses({ dataKey: DATA_KEY.subarray(0, 16) }, 'a 16-byte data key');
  refuses({ messageId: Buffer.alloc(31) }, 'a 31-byte message id');
  refuses({ frameLength: 4095 }, 'frame length 4095');
  refuses({ frameLength: 2 ** 24 + 1 }, 'frame length 2^24 + 1');
  refuses({ wrappedKeys: [] }, 'zero wrapped keys');
  refuses({ wrappedKeys: Array.from({ length: 17 }, () => wk()) }, '17 wrapped keys');
  refuses({ wrappedKeys: [wk({ providerId: 'p'.repeat(65) })] }, 'a 65-byte provider id');
  refuses({ wrappedKeys: [wk({ keyId: '' })] }, 'an empty key id');
  refuses({ wrappedKeys: [wk({ ciphertextBlob: 'b'.repeat(4097) })] }, 'a 4097-byte ciphertext blob');
});

// ---------------------------------------------------------------------------------------------------------------
// (g) Version 2 (§12): the double-slot header

const V2 = JSON.parse(readFileSync(new URL('../vectors/ekms-v2.json', import.meta.url), 'utf8'));
const R = Buffer.from(V2.headerNonce, 'hex');

// Slot i's bytes and offset, from the preamble's slot size (§12.1), independent of parseHeader.
const slotSizeOf = (file) => file.readUInt32BE(48);
const slotAt = (file, i) => 52 + i * slotSizeOf(file);

function makeV2(plaintextLength, { wrappedKeys = [wk()], context = { project: 'Apollo' }, headerNonce } = {}) {
  const plaintext = randomBytes(plaintextLength);
  return { plaintext, file: encrypt({ plaintext, dataKey: DATA_KEY, frameLength: F, context, wrappedKeys, version: 2, headerNonce }) };
}

describe('v2 known-answer vectors (tests/vectors/ekms-v2.json, written by the C# implementation)', () => {
  test('same inputs as v1, plus the header nonce', () => {
    assert.equal(V2.dataKey, V.dataKey);
    assert.equal(V2.messageId, V.messageId);
    assert.deepEqual(V2.wrappedKey, V.wrappedKey);
    assert.deepEqual(V2.vectors.map((v) => v.plaintextLength), [0, 1, F - 1, F, F + 1, 2 * F + 1]);
  });

  for (const v of V2.vectors) {
    const file = Buffer.from(v.file, 'hex');
    const expected = vectorPlaintext(v.plaintextLength);
    test(`P=${v.plaintextLength}: parses, decrypts, and re-encrypting reproduces the file byte for byte`, () => {
      const h = parseHeader(file);
      assert.equal(h.version, 2);
      assert.equal(h.slotSize, 1024);
      assert.equal(h.headerLength, 2100);
      assert.equal(h.generation, 1);
      assert.equal(h.candidates.length, 1); // identical slots are one candidate
      assert.ok(h.slots[0].headerNonce.equals(R));
      assert.deepEqual(h.wrappedKeys, [V.wrappedKey]);
      assert.ok(h.commitment.equals(deriveKeys(DATA_KEY, MESSAGE_ID).commitment));
      const { plaintext, activeSlot, slotStates } = decrypt(file, { unwrap: () => DATA_KEY, requiredContext: V2.encryptionContext });
      assert.ok(plaintext.equals(expected));
      assert.equal(activeSlot, 0);
      assert.deepEqual(slotStates, ['current', 'current']);
      const ours = encrypt({
        plaintext: expected, dataKey: DATA_KEY, messageId: MESSAGE_ID, frameLength: F, context: V2.encryptionContext,
        wrappedKeys: [V2.wrappedKey], version: 2, headerNonce: R,
      });
      assert.equal(ours.toString('hex'), v.file);
    });
  }

  test('the P=1 slot matches the annotated bytes of §12.7, and the body is the v1 body', () => {
    const file = Buffer.from(V2.vectors.find((v) => v.plaintextLength === 1).file, 'hex');
    const v1 = Buffer.from(V.vectors.find((v) => v.plaintextLength === 1).file, 'hex');
    assert.equal(file.subarray(0, 52).toString('hex'), '89454b4d0d0a1a0a' + '02' + '0001' + '00' + '00001000' + MESSAGE_ID.toString('hex') + '00000400');
    assert.equal(file.subarray(52, 52 + 12).toString('hex'), '00000001' + '4041424344454647');
    // The slot's key list is the v1 header's, byte for byte (§12.2 reuses §3 and §4).
    const v1List = v1.subarray(48, parseHeader(v1).headerLength - 48);
    assert.ok(file.subarray(64, 64 + v1List.length).equals(v1List));
    assert.ok(file.subarray(2100).equals(v1.subarray(parseHeader(v1).headerLength)));
    assert.ok(file.subarray(52, 1076).equals(file.subarray(1076, 2100)));
  });
});

describe('v2 round trips and layout', () => {
  for (const p of [0, 1, F - 1, F, F + 1, 2 * F + 1]) {
    test(`P=${p}`, () => {
      const { plaintext, file } = makeV2(p);
      assert.equal(file.length, 52 + 2 * 1024 + Math.floor(p / F) * (F + 16) + (p % F) + 16);
      assert.ok(decrypt(file, withKey()).plaintext.equals(plaintext));
    });
  }

  test('the slot size is twice the content rounded up to 512, at least 1024, at most 262,144 (§12.1)', () => {
    assert.equal(slotSizeFor(100), 1024);
    assert.equal(slotSizeFor(513), 1536);
    assert.equal(slotSizeFor(100_000), 200_192);
    assert.equal(slotSizeFor(170_255), 262_144);
    const big = makeV2(1, { wrappedKeys: Array.from({ length: 8 }, (_, i) => wk({ keyId: `k${i}`.padEnd(300, 'x') })) }).file;
    assert.equal(slotSizeOf(big), slotSizeFor(parseHeader(big).slots[0].contentLength));
    assert.ok(slotSizeOf(big) > 1024);
  });

  test('a random header nonce per file, so two files never share one', () => {
    const a = parseHeader(makeV2(1).file);
    const b = parseHeader(makeV2(1).file);
    assert.ok(!a.slots[0].headerNonce.equals(b.slots[0].headerNonce));
  });
});

describe('v2 bad input', () => {
  const { file } = makeV2(2 * F + 1);
  const S = slotSizeOf(file);

  for (const size of [0, 512, 1000, 1025, 1537, 262_144 + 512, 0xffffffff]) {
    test(`slot size ${size} is MalformedHeader, before any unwrap`, () => {
      const c = Buffer.from(file);
      c.writeUInt32BE(size >>> 0, 48);
      let calls = 0;
      rejects(() => decrypt(c, { unwrap: () => { calls++; return DATA_KEY; } }), 'MalformedHeader');
      assert.equal(calls, 0);
    });
  }

  test('a file that ends inside the slot area is Truncated, before any unwrap', () => {
    let calls = 0;
    for (const cut of [52, 53, 52 + S, 52 + 2 * S - 1]) rejects(() => decrypt(file.subarray(0, cut), { unwrap: () => { calls++; return DATA_KEY; } }), 'Truncated');
    assert.equal(calls, 0);
  });

  const damage = {
    padding: (c, o) => { c[o + S - 1] = 1; },
    'generation 0': (c, o) => { c.writeUInt32BE(0, o); },
    'tag bit': (c, o, content) => { c[o + content - 1] ^= 0x10; },
    'commitment bit': (c, o, content) => { c[o + content - 20] ^= 0x10; },
    'context value': (c, o) => { c[o + 14 + 2 + 2 + 7 + 2] ^= 0x01; },
    'count above limit': (c, o) => { const l = c.readUInt16BE(o + 12); c.writeUInt16BE(9, o + 14 + l); },
  };
  const contentLength = parseHeader(file).slots[0].contentLength;
  for (const [name, apply] of Object.entries(damage)) {
    test(`${name} in one slot: the other slot is used and the damaged one reported`, () => {
      for (const bad of [0, 1]) {
        const c = Buffer.from(file);
        apply(c, slotAt(c, bad), contentLength);
        const { activeSlot, slotStates } = decrypt(c, withKey());
        assert.equal(activeSlot, 1 - bad);
        assert.equal(slotStates[bad], 'damaged');
      }
    });
  }
  for (const [name, code] of [['padding', 'MalformedHeader'], ['generation 0', 'MalformedHeader'], ['tag bit', 'HeaderTampered'],
    ['commitment bit', 'KeyCommitmentMismatch'], ['context value', 'HeaderTampered'], ['count above limit', 'LimitExceeded']]) {
    test(`${name} in both slots is ${code}`, () => {
      const c = Buffer.from(file);
      damage[name](c, slotAt(c, 0), contentLength);
      damage[name](c, slotAt(c, 1), contentLength);
      decryptRejects(c, code);
    });
  }

  test('when neither slot parses, the error is slot 0\'s', () => {
    const c = Buffer.from(file);
    damage['count above limit'](c, slotAt(c, 0));
    damage.padding(c, slotAt(c, 1));
    decryptRejects(c, 'LimitExceeded');
  });

  test('every bit of the preamble is authenticated', () => {
    for (let i = 0; i < 52 * 8; i++) {
      assert.throws(() => decrypt(flipBit(file, i >> 3, i & 7), withKey()), (e) => e instanceof Error, `bit ${i}`);
    }
  });

  test('a higher generation that does not verify falls back; equal generations with other bytes: the tag decides', () => {
    const c = Buffer.from(file);
    c.writeUInt32BE(9, slotAt(c, 1));
    assert.equal(decrypt(c, withKey()).activeSlot, 0);
    const d = Buffer.from(file);
    d[slotAt(d, 0) + contentLength - 60] ^= 1; // slot 0: same generation, other bytes (a blob byte), tag fails
    assert.equal(decrypt(d, withKey()).activeSlot, 1);
  });

  test('frames of a v2 file: tampering is FrameTampered, truncation Truncated, extension FrameTampered', () => {
    const H = 52 + 2 * S;
    decryptRejects(flipBit(file, H + 10), 'FrameTampered');
    decryptRejects(flipBit(file, file.length - 1), 'FrameTampered');
    decryptRejects(file.subarray(0, H + 15), 'Truncated');
    decryptRejects(Buffer.concat([file, Buffer.alloc(1)]), 'FrameTampered');
  });
});

describe('v2 re-wrapping (§12.5)', () => {
  const k2 = wk({ keyId: 'key-2', ciphertextBlob: 'c2Vjb25k' });

  test('in place: the body bytes stay, the generation grows, both slots hold the new list', () => {
    const { plaintext, file } = makeV2(3 * F + 5);
    const before = parseHeader(file);
    const { file: out, rewritten, generation } = rewrap(file, { unwrap: () => DATA_KEY, wrappedKeys: [wk(), k2] });
    assert.equal(rewritten, false);
    assert.equal(generation, 2);
    assert.equal(out.length, file.length);
    assert.ok(out.subarray(before.headerLength).equals(file.subarray(before.headerLength)));
    const { plaintext: back, header } = decrypt(out, withKey());
    assert.ok(back.equals(plaintext));
    assert.deepEqual(header.wrappedKeys.map((k) => k.keyId), ['key-1', 'key-2']);
    assert.ok(out.subarray(slotAt(out, 0), slotAt(out, 1)).equals(out.subarray(slotAt(out, 1), slotAt(out, 2))));
    // A removal: the removed blob is gone from the file.
    const removed = rewrap(out, { unwrap: () => DATA_KEY, wrappedKeys: [k2] }).file;
    assert.equal(removed.indexOf(Buffer.from(wk().ciphertextBlob)), -1);
    assert.equal(parseHeader(removed).generation, 3);
  });

  test('a torn update (new content in one slot only, cut short) still decrypts to the old list', () => {
    const { plaintext, file } = makeV2(100);
    const updated = rewrap(file, { unwrap: () => DATA_KEY, wrappedKeys: [wk(), k2] }).file;
    const torn = Buffer.from(file);
    updated.copy(torn, slotAt(file, 1), slotAt(file, 1), slotAt(file, 1) + 40); // the first 40 bytes of the new slot 1
    const r = decrypt(torn, withKey());
    assert.ok(r.plaintext.equals(plaintext));
    assert.equal(r.activeSlot, 0);
    assert.deepEqual(r.header.wrappedKeys.map((k) => k.keyId), ['key-1']);
    // One slot complete: the new list wins.
    const half = Buffer.from(file);
    updated.copy(half, slotAt(file, 1), slotAt(file, 1), slotAt(file, 2));
    const h = decrypt(half, withKey());
    assert.equal(h.activeSlot, 1);
    assert.deepEqual(h.slotStates, ['stale', 'current']);
  });

  test('a list that does not fit the slot, and a v1 file, are rewritten with a larger slot', () => {
    const { plaintext, file } = makeV2(F + 1);
    const many = Array.from({ length: 12 }, (_, i) => wk({ keyId: `k${i}`.padEnd(200, 'y') }));
    const r = rewrap(file, { unwrap: () => DATA_KEY, wrappedKeys: many });
    assert.equal(r.rewritten, true);
    assert.equal(r.generation, 2);
    assert.ok(slotSizeOf(r.file) > 1024);
    assert.ok(decrypt(r.file, { unwrap: () => DATA_KEY, maxWrappedKeys: 16 }).plaintext.equals(plaintext));
    const v1 = makeFile(F + 1);
    const c = rewrap(v1.file, { unwrap: () => DATA_KEY, wrappedKeys: [wk(), k2] });
    assert.equal(c.rewritten, true);
    assert.equal(c.generation, 1);
    assert.equal(parseHeader(c.file).version, 2);
    assert.ok(decrypt(c.file, withKey()).plaintext.equals(v1.plaintext));
    assert.ok(c.file.subarray(parseHeader(c.file).headerLength).equals(v1.file.subarray(parseHeader(v1.file).headerLength)));
  });
});
