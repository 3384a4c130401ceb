// An independent implementation of the EKMS file format, versions 1 and 2 (docs/format.md; v2 is §12), written from
// the specification alone,
// using only Node.js built-ins. It exists to check the C# implementation against the text: where the two disagree,
// one of them (or the spec) is wrong.
//
// Library: encrypt(), parseHeader(), decrypt(), rewrap(). CLI when run directly (see usage() at the bottom).
// Whole files are handled in memory; this is a test tool, not a streaming implementation.

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync, rmSync, realpathSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------------------------
// Constants (§3, §5, §8)

export const MAGIC = Buffer.from([0x89, 0x45, 0x4b, 0x4d, 0x0d, 0x0a, 0x1a, 0x0a]);
export const VERSION = 1;
export const VERSION_2 = 2;
// v2 (§12.1, §12.2)
export const PREAMBLE_LENGTH = 52;
export const MIN_SLOT_SIZE = 1024;
export const MAX_SLOT_SIZE = 262144;
export const SLOT_SIZE_MULTIPLE = 512;
export const HEADER_NONCE_LENGTH = 8;
export const SUITE = 0x0001;
export const MIN_FRAME_LENGTH = 4096;
export const MAX_FRAME_LENGTH = 16 * 1024 * 1024;
export const DEFAULT_FRAME_LENGTH = 65536;
export const MAX_WRAPPED_KEYS_FORMAT = 16;
export const DEFAULT_MAX_WRAPPED_KEYS = 8;
export const MAX_FRAMES = 2 ** 32; // including the final frame (§6)
export const TAG_LENGTH = 16;
export const KEY_LENGTH = 32;
export const MESSAGE_ID_LENGTH = 32;
export const COMMITMENT_LENGTH = 32;

// The five str16 fields of a wrapped key, in file order, with their byte-length bounds (§3).
export const WRAPPED_KEY_FIELDS = Object.freeze([
  { name: 'providerId', min: 1, max: 64 },
  { name: 'keyId', min: 1, max: 2048 },
  { name: 'keyVersionId', min: 0, max: 256 },
  { name: 'region', min: 0, max: 64 },
  { name: 'ciphertextBlob', min: 1, max: 4096 },
]);

// The mangled-magic signatures of §7.1.
const TEXT_MODE_CRLF_TO_LF = Buffer.from([0x89, 0x45, 0x4b, 0x4d, 0x0a, 0x1a, 0x0a]);
const TEXT_MODE_LF_TO_CRLF = Buffer.from([0x89, 0x45, 0x4b, 0x4d, 0x0d, 0x0d, 0x0a, 0x1a]);
const BASE64_MAGIC = Buffer.from('iUVLTQ0K', 'ascii');

const DERIVE_KEY_INFO = Buffer.concat([Buffer.from('EKMS1-DERIVEKEY', 'ascii'), u16(SUITE)]);
const COMMIT_KEY_INFO = Buffer.concat([Buffer.from('EKMS1-COMMITKEY', 'ascii'), u16(SUITE)]);

// ---------------------------------------------------------------------------------------------------------------
// Errors

export const ERROR_CODES = Object.freeze([
  'NotEnvelope', 'Base64Encoded', 'TextModeCorrupted', 'UnsupportedVersion', 'UnsupportedSuite', 'MalformedHeader',
  'LimitExceeded', 'ContextMismatch', 'KeyCommitmentMismatch', 'HeaderTampered', 'FrameTampered', 'Truncated',
]);

export class EkmsError extends Error {
  constructor(code, message, extra = {}) {
    super(`${code}: ${message}`);
    this.name = 'EkmsError';
    this.code = code;
    Object.assign(this, extra);
  }
}

function fail(code, message, extra) {
  throw new EkmsError(code, message, extra);
}

// Writer-side misuse (bad arguments to encrypt) is not a file-format error, so it gets its own code.
function invalidArgument(message) {
  const e = new RangeError(message);
  e.code = 'InvalidArgument';
  throw e;
}

// ---------------------------------------------------------------------------------------------------------------
// Integer and string encoding (§2)

function u8(v) { return Buffer.from([v]); }
function u16(v) { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; }
function u32(v) { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; }
function u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; }

// fatal: reject overlong forms, surrogates and truncated sequences. ignoreBOM: keep a leading U+FEFF as a character
// instead of silently dropping it, so decoding is injective and re-encoding gives back the same bytes.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes, what) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return fail('MalformedHeader', `${what} is not valid UTF-8`);
  }
}

// Buffer.from(string) would quietly turn a lone surrogate into U+FFFD; a writer must refuse instead.
function encodeUtf8(str, what) {
  if (typeof str !== 'string') invalidArgument(`${what} must be a string`);
  if (!str.isWellFormed()) invalidArgument(`${what} contains a lone surrogate`);
  return Buffer.from(str, 'utf8');
}

function str16(bytes, what) {
  if (bytes.length > 0xffff) invalidArgument(`${what} is longer than 65,535 bytes`);
  return Buffer.concat([u16(bytes.length), bytes]);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: a cursor over a buffer that reports running off the end as Truncated (header) so that callers state
// their caps first and only then ask for the bytes.

class Reader {
  constructor(buf, start = 0, end = buf.length, onShort = 'Truncated') {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.onShort = onShort; // the error code for reading past `end`
  }
  get remaining() { return this.end - this.pos; }
  take(n, what) {
    if (n > this.remaining) fail(this.onShort, `${what}: needs ${n} bytes, ${this.remaining} left`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(what) { return this.take(1, what)[0]; }
  u16(what) { return this.take(2, what).readUInt16BE(0); }
  u32(what) { return this.take(4, what).readUInt32BE(0); }
}

// Reads a str16 whose byte length must lie in [min, max]; the length is checked before the bytes are read (§3).
function readBoundedStr16(reader, what, min, max) {
  const length = reader.u16(`${what} length`);
  if (length > max) fail('LimitExceeded', `${what} length ${length} exceeds ${max}`);
  if (length < min) fail('MalformedHeader', `${what} length ${length} is below ${min}`);
  return decodeUtf8(reader.take(length, what), what);
}

// ---------------------------------------------------------------------------------------------------------------
// Magic (§7.1)

function startsWith(buf, prefix) {
  return buf.length >= prefix.length && buf.subarray(0, prefix.length).equals(prefix);
}

function checkMagic(buf) {
  if (startsWith(buf, MAGIC)) return;
  // Checked before the truncation rule: these are complete, recognisable damage, not a cut-short magic.
  if (startsWith(buf, TEXT_MODE_CRLF_TO_LF)) fail('TextModeCorrupted', 'CR LF in the magic became LF (text-mode transfer)');
  if (startsWith(buf, TEXT_MODE_LF_TO_CRLF)) fail('TextModeCorrupted', 'LF in the magic became CR LF (text-mode transfer)');
  if (startsWith(buf, BASE64_MAGIC)) fail('Base64Encoded', 'the file is base64 text of an EKMS file');
  if (buf.length > 0 && buf.length < MAGIC.length && MAGIC.subarray(0, buf.length).equals(buf)) {
    fail('Truncated', `the file ends after ${buf.length} bytes of the magic`);
  }
  // The legacy four-line format (§11) is not implemented here; it is reported as not an EKMS v1 envelope.
  fail('NotEnvelope', 'no EKMS magic');
}

// ---------------------------------------------------------------------------------------------------------------
// Encryption context (§4)

// Sorts by the keys' UTF-8 bytes (not JS's UTF-16 order) and encodes; {} encodes to zero bytes.
export function encodeContext(context) {
  if (context === null || typeof context !== 'object') invalidArgument('context must be an object');
  const entries = Object.entries(context).map(([k, v]) => {
    if (k.length === 0) invalidArgument('context keys must not be empty');
    if (k.startsWith('ekms:')) invalidArgument(`context key "${k}" uses the reserved ekms: prefix`);
    return { key: encodeUtf8(k, 'context key'), value: encodeUtf8(v, `context value of "${k}"`) };
  });
  if (entries.length === 0) return Buffer.alloc(0);
  entries.sort((a, b) => Buffer.compare(a.key, b.key));
  // Two distinct JS strings cannot share a UTF-8 encoding once lone surrogates are refused, so no duplicates here.
  const parts = [u16(entries.length)];
  for (const { key, value } of entries) parts.push(str16(key, 'context key'), str16(value, 'context value'));
  const encoded = Buffer.concat(parts);
  if (encoded.length > 0xffff) invalidArgument(`the encoded context is ${encoded.length} bytes; at most 65,535`);
  return encoded;
}

// Parses exactly `bytes` (the L bytes of §3) and insists on the one canonical encoding.
export function decodeContext(bytes) {
  const context = {};
  if (bytes.length === 0) return context;
  // Within the context, running past L is a malformed header, not a truncated file (§4).
  const r = new Reader(bytes, 0, bytes.length, 'MalformedHeader');
  const count = r.u16('context pair count');
  if (count === 0) fail('MalformedHeader', 'context pair count is 0 but the context is not empty');
  let previousKey = null;
  for (let i = 0; i < count; i++) {
    const keyBytes = r.take(r.u16('context key length'), 'context key');
    const valueBytes = r.take(r.u16('context value length'), 'context value');
    if (keyBytes.length === 0) fail('MalformedHeader', 'empty context key');
    if (previousKey !== null && Buffer.compare(previousKey, keyBytes) >= 0) {
      fail('MalformedHeader', 'context keys are not in strictly ascending UTF-8 byte order');
    }
    previousKey = keyBytes;
    const key = decodeUtf8(keyBytes, 'context key');
    // defineProperty rather than assignment, so a key such as "__proto__" is stored as data.
    Object.defineProperty(context, key, {
      value: decodeUtf8(valueBytes, 'context value'), enumerable: true, writable: true, configurable: true,
    });
  }
  if (r.remaining !== 0) fail('MalformedHeader', `${r.remaining} bytes after the last context pair`);
  return context;
}

// ---------------------------------------------------------------------------------------------------------------
// Key schedule (§5)

// hkdfSync performs RFC 5869 extract-then-expand; with the same salt and IKM both outputs share one PRK.
export function deriveKeys(dataKey, messageId) {
  if (!Buffer.isBuffer(dataKey) || dataKey.length !== KEY_LENGTH) invalidArgument('the data key must be 32 bytes');
  if (!Buffer.isBuffer(messageId) || messageId.length !== MESSAGE_ID_LENGTH) invalidArgument('the message id must be 32 bytes');
  const fileKey = Buffer.from(hkdfSync('sha512', dataKey, messageId, DERIVE_KEY_INFO, KEY_LENGTH));
  const commitment = Buffer.from(hkdfSync('sha512', dataKey, messageId, COMMIT_KEY_INFO, COMMITMENT_LENGTH));
  return { fileKey, commitment };
}

function gcmEncrypt(key, nonce, aad, plaintext) {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

// Returns the plaintext, or null when the tag does not verify.
function gcmDecrypt(key, nonce, aad, ciphertext, tag) {
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  d.setAAD(aad);
  d.setAuthTag(tag);
  const out = d.update(ciphertext);
  try {
    return Buffer.concat([out, d.final()]);
  } catch {
    out.fill(0); // unauthenticated plaintext never leaves this function
    return null;
  }
}

const HEADER_NONCE = Buffer.alloc(12); // nonce 0, used only for the header tag

function frameNonce(index) {
  return Buffer.concat([Buffer.alloc(4), u64(index)]);
}

function frameAad(messageId, index, final, length) {
  return Buffer.concat([messageId, u64(index), u8(final ? 1 : 0), u32(length)]);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

function checkFrameLength(frameLength) {
  if (!Number.isInteger(frameLength) || frameLength < MIN_FRAME_LENGTH || frameLength > MAX_FRAME_LENGTH) {
    invalidArgument(`frame length must be an integer in [${MIN_FRAME_LENGTH}, ${MAX_FRAME_LENGTH}]`);
  }
}

function encodeWrappedKey(wk, index) {
  return Buffer.concat(WRAPPED_KEY_FIELDS.map(({ name, min, max }) => {
    const bytes = encodeUtf8(wk?.[name], `wrappedKeys[${index}].${name}`);
    if (bytes.length < min || bytes.length > max) {
      invalidArgument(`wrappedKeys[${index}].${name} must be ${min}..${max} bytes, is ${bytes.length}`);
    }
    return str16(bytes, name);
  }));
}

// Everything from the magic through the commitment: the header tag's associated data.
function encodeHeaderWithoutTag({ frameLength, messageId, context, wrappedKeys, commitment }) {
  if (!Array.isArray(wrappedKeys) || wrappedKeys.length < 1 || wrappedKeys.length > MAX_WRAPPED_KEYS_FORMAT) {
    invalidArgument(`between 1 and ${MAX_WRAPPED_KEYS_FORMAT} wrapped keys are required`);
  }
  const contextBytes = encodeContext(context);
  return Buffer.concat([
    MAGIC, u8(VERSION), u16(SUITE), u8(0), u32(frameLength), messageId,
    u16(contextBytes.length), contextBytes,
    u16(wrappedKeys.length), ...wrappedKeys.map(encodeWrappedKey),
    commitment,
  ]);
}

// ---- v2 (§12) ----

// §12.1: S = max(1024, ceil(2c / 512) * 512), capped at 262,144.
export function slotSizeFor(contentLength) {
  const doubled = Math.ceil((2 * contentLength) / SLOT_SIZE_MULTIPLE) * SLOT_SIZE_MULTIPLE;
  const size = Math.min(MAX_SLOT_SIZE, Math.max(MIN_SLOT_SIZE, doubled));
  if (size < contentLength) invalidArgument(`a slot content of ${contentLength} bytes does not fit the largest slot`);
  return size;
}

function encodePreamble({ frameLength, messageId, slotSize }) {
  return Buffer.concat([MAGIC, u8(VERSION_2), u16(SUITE), u8(0), u32(frameLength), messageId, u32(slotSize)]);
}

// §12.2: FF FF FF FF || R.
function v2HeaderNonce(r) {
  return Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), r]);
}

// The slot content from the generation through the commitment: the part of the slot the tag covers.
function encodeSlotWithoutTag({ generation, headerNonce, context, wrappedKeys, commitment }) {
  if (!Array.isArray(wrappedKeys) || wrappedKeys.length < 1 || wrappedKeys.length > MAX_WRAPPED_KEYS_FORMAT) {
    invalidArgument(`between 1 and ${MAX_WRAPPED_KEYS_FORMAT} wrapped keys are required`);
  }
  if (!Number.isInteger(generation) || generation < 1 || generation > 0xffffffff) invalidArgument('generation must be 1..2^32-1');
  if (!Buffer.isBuffer(headerNonce) || headerNonce.length !== HEADER_NONCE_LENGTH) invalidArgument('the header nonce must be 8 bytes');
  const contextBytes = encodeContext(context);
  return Buffer.concat([
    u32(generation), headerNonce, u16(contextBytes.length), contextBytes,
    u16(wrappedKeys.length), ...wrappedKeys.map(encodeWrappedKey), commitment,
  ]);
}

// A sealed slot of exactly slotSize bytes: content, tag, zero padding.
function sealSlot({ preamble, slotSize, fileKey, ...fields }) {
  const content = encodeSlotWithoutTag(fields);
  if (content.length + TAG_LENGTH > slotSize) return null; // does not fit
  const { tag } = gcmEncrypt(fileKey, v2HeaderNonce(fields.headerNonce), Buffer.concat([preamble, content]), Buffer.alloc(0));
  return Buffer.concat([content, tag, Buffer.alloc(slotSize - content.length - TAG_LENGTH)]);
}

function slotContentLength(fields) {
  return encodeSlotWithoutTag(fields).length + TAG_LENGTH;
}

// The v2 header area (preamble and both slots, identical), for a new file or a full rewrite (§12.4, §12.5 step 5).
function encodeV2Header({ frameLength, messageId, fileKey, generation = 1, headerNonce = randomBytes(HEADER_NONCE_LENGTH), context, wrappedKeys, commitment }) {
  const fields = { generation, headerNonce, context, wrappedKeys, commitment };
  const slotSize = slotSizeFor(slotContentLength(fields));
  const preamble = encodePreamble({ frameLength, messageId, slotSize });
  const slot = sealSlot({ preamble, slotSize, fileKey, ...fields });
  return Buffer.concat([preamble, slot, slot]);
}

export function encrypt({
  plaintext, dataKey, messageId = randomBytes(MESSAGE_ID_LENGTH), frameLength = DEFAULT_FRAME_LENGTH,
  context = {}, wrappedKeys, version = VERSION, headerNonce,
}) {
  if (!Buffer.isBuffer(plaintext)) invalidArgument('plaintext must be a Buffer');
  if (version !== VERSION && version !== VERSION_2) invalidArgument('version must be 1 or 2');
  checkFrameLength(frameLength);
  const { fileKey, commitment } = deriveKeys(dataKey, messageId);
  try {
    const parts = [];
    if (version === VERSION_2) {
      parts.push(encodeV2Header({ frameLength, messageId, fileKey, headerNonce, context, wrappedKeys, commitment }));
    } else {
      const headerAad = encodeHeaderWithoutTag({ frameLength, messageId, context, wrappedKeys, commitment });
      parts.push(headerAad, gcmEncrypt(fileKey, HEADER_NONCE, headerAad, Buffer.alloc(0)).tag);
    }
    const fullFrames = Math.floor(plaintext.length / frameLength);
    if (fullFrames + 1 > MAX_FRAMES) invalidArgument('plaintext too long for this frame length');
    // Regular frames 1..N, then the always-present, always-short final frame N+1 (§6).
    for (let i = 1; i <= fullFrames + 1; i++) {
      const final = i === fullFrames + 1;
      const chunk = plaintext.subarray((i - 1) * frameLength, final ? plaintext.length : i * frameLength);
      const { ciphertext, tag } = gcmEncrypt(fileKey, frameNonce(i), frameAad(messageId, i, final, chunk.length), chunk);
      parts.push(ciphertext, tag);
    }
    return Buffer.concat(parts);
  } finally {
    fileKey.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the header (§3, §7 steps 1–2)

export function parseHeader(buf, { maxWrappedKeys = DEFAULT_MAX_WRAPPED_KEYS } = {}) {
  if (!Buffer.isBuffer(buf)) throw new TypeError('parseHeader expects a Buffer');
  const keyLimit = Math.min(maxWrappedKeys, MAX_WRAPPED_KEYS_FORMAT);
  checkMagic(buf);
  const r = new Reader(buf, MAGIC.length);

  const version = r.u8('version');
  if (version !== VERSION && version !== VERSION_2) fail('UnsupportedVersion', `version ${version}`);
  const suite = r.u16('suite id');
  if (suite !== SUITE) fail('UnsupportedSuite', `suite 0x${suite.toString(16).padStart(4, '0')}`);
  const reserved = r.u8('reserved byte');
  if (reserved !== 0) fail('MalformedHeader', `reserved byte is 0x${reserved.toString(16)}`);
  const frameLength = r.u32('frame length');
  if (frameLength < MIN_FRAME_LENGTH || frameLength > MAX_FRAME_LENGTH) {
    fail('MalformedHeader', `frame length ${frameLength} outside [${MIN_FRAME_LENGTH}, ${MAX_FRAME_LENGTH}]`);
  }
  const messageId = Buffer.from(r.take(MESSAGE_ID_LENGTH, 'message id'));
  if (version === VERSION_2) return parseV2(buf, r, { version, suite, frameLength, messageId, keyLimit });

  // L ≤ 65,535 is the u16 itself, so the only way to be wrong is for the bytes to be missing.
  const contextLength = r.u16('context length');
  const context = decodeContext(r.take(contextLength, 'encryption context'));

  const count = r.u16('wrapped key count');
  if (count === 0) fail('MalformedHeader', 'no wrapped keys');
  if (count > keyLimit) fail('LimitExceeded', `${count} wrapped keys; the limit is ${keyLimit}`);
  const wrappedKeys = [];
  for (let i = 0; i < count; i++) {
    const wk = {};
    for (const { name, min, max } of WRAPPED_KEY_FIELDS) wk[name] = readBoundedStr16(r, `wrapped key ${i + 1} ${name}`, min, max);
    wrappedKeys.push(wk);
  }

  const commitment = Buffer.from(r.take(COMMITMENT_LENGTH, 'commitment'));
  const tag = Buffer.from(r.take(TAG_LENGTH, 'header tag'));
  return { version, suite, frameLength, messageId, context, wrappedKeys, commitment, tag, headerLength: r.pos };
}

// §12.1–12.3 steps 1–3: the preamble's slot size, both slots parsed on their own, the candidates in order.
function parseV2(buf, r, fixed) {
  const slotSize = r.u32('slot size');
  if (slotSize < MIN_SLOT_SIZE || slotSize > MAX_SLOT_SIZE || slotSize % SLOT_SIZE_MULTIPLE !== 0) {
    fail('MalformedHeader', `slot size ${slotSize} is not a multiple of ${SLOT_SIZE_MULTIPLE} in [${MIN_SLOT_SIZE}, ${MAX_SLOT_SIZE}]`);
  }
  const headerLength = PREAMBLE_LENGTH + 2 * slotSize;
  if (buf.length < headerLength) fail('Truncated', `the file ends at ${buf.length}, inside the slot area (ends at ${headerLength})`);
  const preamble = Buffer.from(buf.subarray(0, PREAMBLE_LENGTH));
  const slots = [0, 1].map((index) => parseSlot(buf.subarray(PREAMBLE_LENGTH + index * slotSize, PREAMBLE_LENGTH + (index + 1) * slotSize), index, fixed.keyLimit));
  if (!slots[0].parsed && !slots[1].parsed) throw slots[0].error;
  const parsed = slots.filter((s) => s.parsed).sort((a, b) => (b.generation - a.generation) || (a.index - b.index));
  if (parsed.length === 2 && parsed[0].bytes.equals(parsed[1].bytes)) parsed.pop();
  const first = parsed[0];
  return {
    version: fixed.version, suite: fixed.suite, frameLength: fixed.frameLength, messageId: fixed.messageId, slotSize, preamble,
    slots, candidates: parsed, headerLength,
    // The first candidate's fields, for display; decrypt() reports the slot that verified.
    generation: first.generation, context: first.context, wrappedKeys: first.wrappedKeys, commitment: first.commitment, tag: first.tag,
  };
}

// One slot (§12.2). Running past the slot is MalformedHeader; any failure makes the slot damaged, not the file.
function parseSlot(bytes, index, keyLimit) {
  const raw = Buffer.from(bytes);
  const rawGeneration = raw.readUInt32BE(0);
  try {
    const r = new Reader(raw, 0, raw.length, 'MalformedHeader');
    const generation = r.u32('generation');
    if (generation === 0) fail('MalformedHeader', `slot ${index}: generation 0`);
    const headerNonce = Buffer.from(r.take(HEADER_NONCE_LENGTH, 'header nonce'));
    const context = decodeContext(r.take(r.u16('context length'), 'encryption context'));
    const count = r.u16('wrapped key count');
    if (count === 0) fail('MalformedHeader', `slot ${index}: no wrapped keys`);
    if (count > keyLimit) fail('LimitExceeded', `slot ${index}: ${count} wrapped keys; the limit is ${keyLimit}`);
    const wrappedKeys = [];
    for (let i = 0; i < count; i++) {
      const wk = {};
      for (const { name, min, max } of WRAPPED_KEY_FIELDS) wk[name] = readBoundedStr16(r, `slot ${index} wrapped key ${i + 1} ${name}`, min, max);
      wrappedKeys.push(wk);
    }
    const commitmentAt = r.pos;
    const commitment = Buffer.from(r.take(COMMITMENT_LENGTH, 'commitment'));
    const tag = Buffer.from(r.take(TAG_LENGTH, 'header tag'));
    const contentLength = r.pos;
    for (let i = contentLength; i < raw.length; i++) {
      if (raw[i] !== 0) fail('MalformedHeader', `slot ${index}: padding byte at ${i} is not zero`);
    }
    return {
      index, parsed: true, rawGeneration, generation, headerNonce, context, wrappedKeys, commitment, tag, contentLength,
      authenticated: raw.subarray(0, commitmentAt + COMMITMENT_LENGTH), bytes: raw,
    };
  } catch (e) {
    if (!(e instanceof EkmsError)) throw e;
    return { index, parsed: false, rawGeneration, error: e, bytes: raw };
  }
}

function verifySlotTag(header, slot, fileKey) {
  const aad = Buffer.concat([header.preamble, slot.authenticated]);
  if (gcmDecrypt(fileKey, v2HeaderNonce(slot.headerNonce), aad, Buffer.alloc(0), slot.tag) === null) {
    fail('HeaderTampered', `slot ${slot.index}: the header tag does not verify`);
  }
}

// §12.3 step 4: the first candidate that unwraps, commits and verifies is the active slot.
function authenticateV2(header, unwrap) {
  let firstError = null;
  for (const slot of header.candidates) {
    let fileKey;
    try {
      fileKey = unwrapCommittedKey({ wrappedKeys: slot.wrappedKeys, context: slot.context, messageId: header.messageId, commitment: slot.commitment }, unwrap);
      verifySlotTag(header, slot, fileKey);
      return { fileKey, active: slot };
    } catch (e) {
      fileKey?.fill(0);
      firstError ??= e;
    }
  }
  throw firstError;
}

// What the other slot is, once the active one is known (§12.3, after step 6).
function slotStates(header, active) {
  return header.slots.map((s) => {
    if (s === active || (s.parsed && s.bytes.equals(active.bytes))) return 'current';
    if (s.parsed && s.generation < active.generation && s.commitment.equals(active.commitment)) return 'stale';
    return 'damaged';
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Decryption (§7)

function checkRequiredContext(context, requiredContext) {
  for (const [key, value] of Object.entries(requiredContext ?? {})) {
    if (!Object.hasOwn(context, key)) fail('ContextMismatch', `the file's context has no "${key}"`);
    if (context[key] !== value) fail('ContextMismatch', `the file's context has a different "${key}"`);
  }
}

// §7 steps 4–5: try each wrapped key in header order; the first whose data key reproduces the header's commitment
// wins. `unwrap([wk], context)` returns the 32-byte data key, or null/undefined to skip an entry it may not use
// (allow-list, unreachable region), or throws. Anything that is not a 32-byte Buffer counts as a failure.
function unwrapCommittedKey(header, unwrap) {
  let lastError = null;
  let commitmentMismatch = false;
  for (const wk of header.wrappedKeys) {
    let candidate;
    try {
      candidate = unwrap([wk], header.context);
    } catch (e) {
      lastError = e;
      continue;
    }
    if (candidate == null) continue;
    if (!Buffer.isBuffer(candidate) || candidate.length !== KEY_LENGTH) {
      lastError = new Error(`unwrap returned a data key that is not 32 bytes for ${wk.keyId}`);
      continue;
    }
    const dataKey = Buffer.from(candidate); // our own copy, so it can be wiped without touching the caller's
    const { fileKey, commitment } = deriveKeys(dataKey, header.messageId);
    dataKey.fill(0);
    if (timingSafeEqual(commitment, header.commitment)) return fileKey;
    fileKey.fill(0);
    commitmentMismatch = true;
  }
  if (commitmentMismatch) fail('KeyCommitmentMismatch', 'no unwrapped data key matches the header commitment');
  throw lastError ?? new Error('no wrapped key could be unwrapped');
}

function verifyHeaderTag(buf, header, fileKey) {
  const aad = buf.subarray(0, header.headerLength - TAG_LENGTH);
  if (gcmDecrypt(fileKey, HEADER_NONCE, aad, Buffer.alloc(0), header.tag) === null) {
    fail('HeaderTampered', 'the header tag does not verify');
  }
}

// §6/§7 step 7: read F+16 bytes at a time; a full read is a regular frame, a short read of at least 16 bytes is the
// final frame, anything shorter is truncation. No length is stored; the file length decides.
function decryptFrames(buf, header, fileKey) {
  const F = header.frameLength;
  const slot = F + TAG_LENGTH;
  const chunks = [];
  let pos = header.headerLength;
  for (let index = 1; ; index++) {
    if (index > MAX_FRAMES) fail('FrameTampered', 'more than 2^32 frames', { frameIndex: index });
    const n = Math.min(slot, buf.length - pos);
    if (n < TAG_LENGTH) fail('Truncated', `frame ${index} has ${n} bytes, fewer than a tag`, { frameIndex: index });
    const final = n < slot;
    const length = n - TAG_LENGTH;
    const plaintext = gcmDecrypt(fileKey, frameNonce(index), frameAad(header.messageId, index, final, length),
      buf.subarray(pos, pos + length), buf.subarray(pos + length, pos + n));
    if (plaintext === null) {
      for (const c of chunks) c.fill(0);
      fail('FrameTampered', `frame ${index} does not verify`, { frameIndex: index });
    }
    chunks.push(plaintext);
    pos += n;
    if (final) return chunks;
  }
}

export function decrypt(buf, { unwrap, requiredContext = {}, maxWrappedKeys } = {}) {
  if (typeof unwrap !== 'function') throw new TypeError('decrypt needs an unwrap function');
  const header = parseHeader(buf, { maxWrappedKeys });
  if (header.version === VERSION_2) {
    const { fileKey, active } = authenticateV2(header, unwrap);
    try {
      checkRequiredContext(active.context, requiredContext);
      const plaintext = Buffer.concat(decryptFrames(buf, header, fileKey));
      return {
        plaintext, header: { ...header, generation: active.generation, context: active.context, wrappedKeys: active.wrappedKeys },
        activeSlot: active.index, slotStates: slotStates(header, active),
      };
    } finally {
      fileKey.fill(0);
    }
  }
  checkRequiredContext(header.context, requiredContext);
  const fileKey = unwrapCommittedKey(header, unwrap);
  try {
    verifyHeaderTag(buf, header, fileKey);
    // Plaintext is released only after every frame, the final one included, has verified (§7 step 8).
    return { plaintext: Buffer.concat(decryptFrames(buf, header, fileKey)), header };
  } finally {
    fileKey.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Re-wrapping (§12.5), in memory: the new file as a complete update leaves it (both slots new). `wrappedKeys` is the
// complete new list (entries kept, entries the caller wrapped anew). The body bytes are copied as they are.

export function rewrap(buf, { unwrap, wrappedKeys, headerNonce = randomBytes(HEADER_NONCE_LENGTH) }) {
  const header = parseHeader(buf, { maxWrappedKeys: MAX_WRAPPED_KEYS_FORMAT });
  let fileKey;
  let context;
  let generation;
  let { commitment } = header;
  if (header.version === VERSION_2) {
    const auth = authenticateV2(header, unwrap);
    fileKey = auth.fileKey;
    context = auth.active.context;
    commitment = auth.active.commitment;
    generation = Math.max(header.slots[0].rawGeneration, header.slots[1].rawGeneration) + 1; // §12.5 step 3
    if (generation > 0xffffffff) fail('MalformedHeader', 'the generation cannot grow further');
  } else {
    fileKey = unwrapCommittedKey(header, unwrap);
    verifyHeaderTag(buf, header, fileKey);
    context = header.context;
    generation = 1;
  }
  try {
    const body = buf.subarray(header.headerLength);
    const fields = { generation, headerNonce, context, wrappedKeys, commitment };
    if (header.version === VERSION_2) {
      const slot = sealSlot({ preamble: header.preamble, slotSize: header.slotSize, fileKey, ...fields });
      if (slot !== null) return { file: Buffer.concat([header.preamble, slot, slot, body]), rewritten: false, generation };
    }
    const area = encodeV2Header({ frameLength: header.frameLength, messageId: header.messageId, fileKey, ...fields });
    return { file: Buffer.concat([area, body]), rewritten: true, generation };
  } finally {
    fileKey.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CLI

function usage() {
  return [
    'usage: node ekms.mjs encrypt --key-hex <64 hex> --in <path> --out <path> [--frame-length N]',
    '                            [--context-json \'{...}\'] [--blob <ciphertextBlob> --key-id <id>]',
    '                            [--key-version-id <v>] [--region <r>] [--message-id-hex <64 hex>]',
    '                            [--version 1|2 (default 2)] [--header-nonce-hex <16 hex> (v2)]',
    '       node ekms.mjs rewrap --key-hex <64 hex> --in <path> --out <path> --wrapped-keys-json \'[{...}]\'',
    '                            [--header-nonce-hex <16 hex>]   (prints {"rewritten":…,"generation":…})',
    '       node ekms.mjs decrypt --key-hex <64 hex> --in <path> --out <path> [--context-json \'{...}\' (required pairs)]',
    '       node ekms.mjs header --in <path>          (prints the parsed header as JSON)',
  ].join('\n');
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const options = {};
  for (let i = 0; i < rest.length; i += 2) {
    if (!rest[i].startsWith('--') || i + 1 >= rest.length) throw new Error(`bad argument "${rest[i]}"\n${usage()}`);
    options[rest[i].slice(2)] = rest[i + 1];
  }
  return { command, options };
}

function hexKey(hex, what) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex ?? '')) throw new Error(`${what} must be 64 hex digits`);
  return Buffer.from(hex, 'hex');
}

// Writes beside the destination with owner-only permissions and renames into place, so a failure leaves no output.
function writeAtomically(path, data) {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(temp, data, { mode: 0o600, flag: 'wx' });
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
}

function runCli(argv) {
  const { command, options } = parseArgs(argv);
  if (!options.in) throw new Error(`--in is required\n${usage()}`);
  const input = readFileSync(options.in);
  if (command === 'header') {
    const h = parseHeader(input);
    const hex = (b) => b.toString('hex');
    const out = { ...h, messageId: hex(h.messageId), commitment: hex(h.commitment), tag: hex(h.tag) };
    if (h.version === VERSION_2) {
      delete out.preamble;
      delete out.candidates;
      out.slots = h.slots.map((s) => (s.parsed
        ? { index: s.index, parsed: true, generation: s.generation, headerNonce: hex(s.headerNonce), contentLength: s.contentLength, keyIds: s.wrappedKeys.map((k) => k.keyId) }
        : { index: s.index, parsed: false, error: s.error.code }));
    }
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  if (!options.out) throw new Error(`--out is required\n${usage()}`);
  const key = hexKey(options['key-hex'], '--key-hex');
  const context = options['context-json'] ? JSON.parse(options['context-json']) : {};
  if (command === 'encrypt') {
    const out = encrypt({
      plaintext: input,
      dataKey: key,
      messageId: options['message-id-hex'] ? hexKey(options['message-id-hex'], '--message-id-hex') : undefined,
      frameLength: options['frame-length'] ? Number(options['frame-length']) : DEFAULT_FRAME_LENGTH,
      context,
      version: options.version ? Number(options.version) : VERSION_2,
      headerNonce: options['header-nonce-hex'] ? Buffer.from(options['header-nonce-hex'], 'hex') : undefined,
      wrappedKeys: [{
        providerId: 'aliyun-kms',
        keyId: options['key-id'] ?? 'node-interop-key',
        keyVersionId: options['key-version-id'] ?? '',
        region: options.region ?? '',
        ciphertextBlob: options.blob ?? Buffer.from('node-interop-blob').toString('base64'),
      }],
    });
    writeAtomically(options.out, out);
  } else if (command === 'decrypt') {
    const { plaintext, activeSlot, slotStates: states } = decrypt(input, { unwrap: () => key, requiredContext: context });
    writeAtomically(options.out, plaintext);
    if (activeSlot !== undefined) process.stdout.write(JSON.stringify({ activeSlot, slotStates: states }) + '\n');
  } else if (command === 'rewrap') {
    const { file, rewritten, generation } = rewrap(input, {
      unwrap: () => key,
      wrappedKeys: JSON.parse(options['wrapped-keys-json'] ?? 'null'),
      headerNonce: options['header-nonce-hex'] ? Buffer.from(options['header-nonce-hex'], 'hex') : undefined,
    });
    writeAtomically(options.out, file);
    process.stdout.write(JSON.stringify({ rewritten, generation }) + '\n');
  } else {
    throw new Error(usage());
  }
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  try {
    runCli(process.argv.slice(2));
  } catch (e) {
    // The error code alone on the first line, so callers can match it; the message follows.
    process.stderr.write(`${e.code ?? 'Error'}\n${e.message}\n`);
    process.exitCode = 1;
  }
}
