#!/usr/bin/python3
"""An independent implementation of the Alibaba Cloud Encryption SDK message format, AES-GCM algorithms (1 and 2),
in both layouts (the ASN.1 "byte" message and the Java SDK's stream layout), for EnvelopeKms's test suite.

Written from the official SDKs' own sources, read (not copied) at aliyun/alibabacloud-encryption-sdk-java 3f1e08c
(1.1.0) and aliyun/alibabacloud-encryption-sdk-python 26f8029 (0.1.1) -- not from docs/alibaba-sdk-format.md and not
from the C# code, so that a mistake in our page cannot be shared by both implementations (issue 15: the page said
"big-endian" for the stream layout's body IV length, which the Java SDK writes little-endian). The SDK class and
method that writes each field is named where it is written here. It is checked against messages the official SDKs
wrote (tests/vectors/alibaba-esdk/). DER comes from asn1crypto, the library the official Python SDK uses, and AES-GCM
from pyca/cryptography: Debian's python3-asn1crypto and python3-cryptography (build.ps1's Test task installs them).

    alibaba_sdk.py encrypt --layout asn1|stream (--key-hex H | --key-b64 B) --in P --out M
                           [--context-json J] --edk ARN BLOB_BASE64 [--edk ...] [--header-iv-hex H] [--body-iv-hex H]
    alibaba_sdk.py decrypt (--key-hex H | --key-b64 B) --in M --out P        prints the header as JSON
    alibaba_sdk.py header --in M                                              prints the header as JSON, no key
    alibaba_sdk.py vectors --out FILE                                         writes the known-answer vectors

The JSON has every field of the message: layout, version, algorithm, encryptedDataKeys (ARN and CiphertextBlob text,
in message order), encryptionContext, contextBytes, headerIv, headerAuthTag, bodyIv, bodyAuthTag (hex),
plaintextLength, and for the stream layout bodyIvLengthField (the 4 bytes as stored, hex) and its offset.

Exit codes: 0 success, 2 usage, 3 authentication failed (header or body tag), 4 malformed or unsupported message.
"""

import argparse
import base64
import json
import os
import struct
import sys

from asn1crypto import core
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
IV_LENGTH = 12
TAG_LENGTH = 16
ALGORITHM_FOR_KEY_LENGTH = {16: 1, 32: 2}  # AES_GCM_NOPADDING_128, AES_GCM_NOPADDING_256
KEY_LENGTH_FOR_ALGORITHM = {1: 16, 2: 32}
KEY_IV_LENGTH = {1: 12, 2: 12}  # Java CryptoAlgorithm / Python model.Algorithm: ivLen of AES_GCM_NOPADDING_128/256


class MessageError(Exception):
    """A message that cannot be read: malformed, unsupported, or failing authentication."""

    def __init__(self, message, exit_code=4):
        super().__init__(message)
        self.exit_code = exit_code


# ---- the ASN.1 structures ---------------------------------------------------------------------------------------------
# Java: handler/Asn1FormatHandler.serialize -> combineEncryptionInfo / combineEncryptionHead / combineEncryptionBody /
# combineEncryptedDataKeys / combineEncryptionContext (BouncyCastle DERSequence, DERSet, DEROctetString, ASN1Integer).
# Python: handle/format.py Asn1FormatHandler._combine_asn1_header / _combine_asn1_body and the ASN1Cipher* classes.

class EncryptedDataKey(core.Sequence):
    # key ARN (UTF-8) and the CiphertextBlob base64-DECODED (Java: Base64.decode(dataKey.getDataKey());
    # Python: base64.b64decode(data_key.encrypted_data_key)).
    _fields = [('key_id', core.OctetString), ('encrypted_data_key', core.OctetString)]


class EncryptedDataKeys(core.SetOf):
    _child_spec = EncryptedDataKey


class ContextEntry(core.Sequence):
    _fields = [('key', core.OctetString), ('value', core.OctetString)]


class ContextEntries(core.SetOf):
    _child_spec = ContextEntry


class Head(core.Sequence):
    _fields = [
        ('version', core.Integer),
        ('algorithm', core.Integer),
        ('encrypted_data_keys', EncryptedDataKeys),
        ('encryption_context', ContextEntries),
        ('header_iv', core.OctetString),
        ('header_auth_tag', core.OctetString),
    ]


class Body(core.Sequence):
    _fields = [('iv', core.OctetString), ('cipher_text', core.OctetString), ('auth_tag', core.OctetString)]


class Message(core.Sequence):
    _fields = [('header', Head), ('body', Body)]


# ---- the authenticated bytes ------------------------------------------------------------------------------------------

def int32(value):
    """Every header integer: Java DataOutputStream.writeInt / ByteBuffer (big-endian by default); Python struct '>I'."""
    return struct.pack('>I', value)


def serialized_context(context):
    """Java CipherHeader.serializeContext / Python model.serialize_context: empty for no context; else the count, then
    (len, key, len, value) for each pair sorted by the key's UTF-8 bytes compared unsigned (Java's TreeMap comparator
    on `& 0xFF`; Python's sort of bytes)."""
    if not context:
        return b''
    pairs = sorted((k.encode('utf-8'), v.encode('utf-8')) for k, v in context.items())
    out = bytearray(int32(len(pairs)))
    for key, value in pairs:
        out += int32(len(key)) + key + int32(len(value)) + value
    return bytes(out)


def serialized_data_key(arn, blob_text):
    """Java EncryptedDataKey.toByteArray / Python EncryptedDataKey.serialize: len, ARN, len, the blob's base64 TEXT."""
    return int32(len(arn)) + arn + int32(len(blob_text)) + blob_text


def sorted_by_arn(keys):
    """Java: new TreeSet<>(encryptedDataKeys), EncryptedDataKey.compareTo (ARN bytes, unsigned, shorter first).
    Python: list.sort(key=lambda item: item.key_arn) on bytes."""
    return sorted(keys, key=lambda k: k[0])


def authenticated_fields(algorithm, context_count, context_bytes, keys):
    """Java CipherHeader.serializeAuthenticatedFields / Python CipherHeader._serialize_authenticated_fields: version,
    algorithm, the context's pair COUNT, then the serialized context (which starts with the count again), the number of
    keys, then each key sorted by ARN. keys: [(arn bytes, blob base64 text bytes)]."""
    out = bytearray(int32(VERSION) + int32(algorithm) + int32(context_count) + context_bytes + int32(len(keys)))
    for arn, text in sorted_by_arn(keys):
        out += serialized_data_key(arn, text)
    return bytes(out)


def header_tag(data_key, header_iv, fields):
    """Java AlgorithmHandler.headerGcmEncrypt / Python CipherHeader._header_gcm_encrypt: AES-GCM of an empty plaintext
    with the fields as AAD; the 16-byte tag alone (a GMAC)."""
    return AESGCM(data_key).encrypt(header_iv, b'', fields)


# ---- writing ------------------------------------------------------------------------------------------------------------

def encrypt(plaintext, data_key, keys, context, layout, header_iv=None, body_iv=None):
    """keys: [(arn str, raw CiphertextBlob bytes)]."""
    if len(data_key) not in ALGORITHM_FOR_KEY_LENGTH:
        raise ValueError('the data key must be 16 or 32 bytes')
    algorithm = ALGORITHM_FOR_KEY_LENGTH[len(data_key)]
    header_iv = header_iv if header_iv is not None else os.urandom(IV_LENGTH)
    body_iv = body_iv if body_iv is not None else os.urandom(IV_LENGTH)
    text_keys = [(arn.encode('utf-8'), base64.b64encode(raw)) for arn, raw in keys]
    ctx = serialized_context(context)
    tag_of_header = header_tag(data_key, header_iv, authenticated_fields(algorithm, len(context), ctx, text_keys))
    # Java DefaultEncryptHandler.encrypt / encryptStream, Python DefaultEncryptHandler.encrypt: the body's AAD is the
    # serialized context (empty without one).
    sealed = AESGCM(data_key).encrypt(body_iv, plaintext, ctx)
    ciphertext, body_tag = sealed[:-TAG_LENGTH], sealed[-TAG_LENGTH:]

    if layout == 'asn1':
        head = Head({
            'version': VERSION,
            'algorithm': algorithm,
            'encrypted_data_keys': EncryptedDataKeys([EncryptedDataKey({'key_id': arn.encode('utf-8'), 'encrypted_data_key': raw}) for arn, raw in keys]),
            'encryption_context': ContextEntries([ContextEntry({'key': k.encode('utf-8'), 'value': v.encode('utf-8')}) for k, v in context.items()]),
            'header_iv': header_iv,
            'header_auth_tag': tag_of_header,
        })
        body = Body({'iv': body_iv, 'cipher_text': ciphertext, 'auth_tag': body_tag})
        return Message({'header': head, 'body': body}).dump()  # asn1crypto sorts SET OF elements by their encodings

    if layout == 'stream':
        # Java CipherHeader.serialize (written by DefaultDataKeyProvider.writeCipherHeader): version, algorithm,
        # len(contextBytes), contextBytes, key count, keys sorted by ARN (blob as base64 text), len + header IV,
        # len + header tag -- all DataOutputStream.writeInt, big-endian.
        out = bytearray(int32(VERSION) + int32(algorithm) + int32(len(ctx)) + ctx + int32(len(text_keys)))
        for arn, text in sorted_by_arn(text_keys):
            out += serialized_data_key(arn, text)
        out += int32(len(header_iv)) + header_iv + int32(len(tag_of_header)) + tag_of_header
        # Java DefaultEncryptHandler.writeIv: CopyStreamUtil.intToBytes(iv.length) -- LITTLE-endian -- then the IV.
        out += struct.pack('<I', len(body_iv)) + body_iv
        # Java encryptStream: CryptoInputStream over the GCM cipher, copied to the end: ciphertext, then the tag.
        return bytes(out + ciphertext + body_tag)

    raise ValueError('layout must be asn1 or stream')


# ---- reading ------------------------------------------------------------------------------------------------------------

def parse(message):
    """Returns a dict: layout, version, algorithm, keys [(arn bytes, blob base64 text bytes)] in message order, context,
    context_bytes, header_iv, header_tag, body_iv, ciphertext, body_tag (and for the stream layout the body IV length
    field as stored, and its offset)."""
    if message[:1] == b'\x30':
        return parse_asn1(message)
    if len(message) >= 8 and message[:4] == int32(VERSION):
        return parse_stream(message)
    raise MessageError('not an Encryption SDK message')


def check_algorithm(algorithm):
    if algorithm not in KEY_LENGTH_FOR_ALGORITHM:
        raise MessageError('unsupported algorithm %d' % algorithm)


def parse_asn1(message):
    """Java Asn1FormatHandler.deserialize / Python Asn1FormatHandler.deserialize. Both rebuild the context bytes from the
    parsed pairs (Java: the CipherHeader constructor calls serializeContext) and re-encode each blob as base64 text
    (Java: BouncyCastle Base64.encode; Python: base64.b64encode)."""
    try:
        parsed = Message.load(message, strict=True)
        head, body = parsed['header'], parsed['body']
        version, algorithm = head['version'].native, head['algorithm'].native
        keys = [(k['key_id'].native, base64.b64encode(k['encrypted_data_key'].native)) for k in head['encrypted_data_keys']]
        context = {e['key'].native.decode('utf-8'): e['value'].native.decode('utf-8') for e in head['encryption_context']}
        result = dict(layout='asn1', version=version, algorithm=algorithm, keys=keys, context=context,
                      context_bytes=serialized_context(context),
                      header_iv=head['header_iv'].native, header_tag=head['header_auth_tag'].native,
                      body_iv=body['iv'].native, ciphertext=body['cipher_text'].native, body_tag=body['auth_tag'].native)
    except (ValueError, TypeError, KeyError) as e:
        raise MessageError('malformed ASN.1 message: %s' % e)
    if version != VERSION:
        raise MessageError('unsupported version %d' % version)
    check_algorithm(algorithm)
    return result


def parse_stream(message):
    """Java DefaultDataKeyProvider.getCipherMaterial(InputStream): CipherHeader.deserialize (DataInputStream.readInt,
    big-endian), then 4 bytes read with CopyStreamUtil.bytesToInt (LITTLE-endian) as the body IV's length, the IV, and
    the rest of the stream as GCM ciphertext and tag (DefaultEncryptHandler.decryptStream). Java keeps the stored
    context bytes as they are (the body's AAD) and the stored blob text as it is (the header tag's input)."""
    position = 0

    def take(n):
        nonlocal position
        if n < 0 or position + n > len(message):
            raise MessageError('truncated stream message')
        chunk = message[position:position + n]
        position += n
        return chunk

    def take_int():
        return struct.unpack('>i', take(4))[0]

    version = take_int()
    algorithm = take_int()
    if version != VERSION:
        raise MessageError('unsupported version %d' % version)
    check_algorithm(algorithm)
    ctx = take(take_int())
    context = {}
    if ctx:  # Java CipherHeader.deserializeContext
        count, = struct.unpack('>i', ctx[:4])
        at = 4
        for _ in range(count):
            (klen,) = struct.unpack('>i', ctx[at:at + 4]); key = ctx[at + 4:at + 4 + klen]; at += 4 + klen
            (vlen,) = struct.unpack('>i', ctx[at:at + 4]); value = ctx[at + 4:at + 4 + vlen]; at += 4 + vlen
            context[key.decode('utf-8')] = value.decode('utf-8')
        if at != len(ctx):
            raise MessageError('malformed encryption context')
    keys = []
    for _ in range(take_int()):
        arn = take(take_int())
        text = take(take_int())
        base64.b64decode(text, validate=True)  # KMS returns base64; anything else cannot be unwrapped
        keys.append((arn, text))
    header_iv = take(take_int())
    tag = take(take_int())
    iv_length_offset = position
    iv_length_field = take(4)
    iv_length, = struct.unpack('<i', iv_length_field)
    if iv_length != KEY_IV_LENGTH[algorithm]:
        # Java AlgorithmHandler.cipherInit: "Invalid iv length: " + iv.length
        raise MessageError('Invalid iv length: %d' % iv_length)
    body_iv = take(iv_length)
    rest = message[position:]
    if len(rest) < TAG_LENGTH:
        raise MessageError('truncated stream message')
    return dict(layout='stream', version=version, algorithm=algorithm, keys=keys, context=context, context_bytes=ctx,
                header_iv=header_iv, header_tag=tag, body_iv=body_iv, body_iv_length_field=iv_length_field,
                body_iv_length_offset=iv_length_offset, ciphertext=rest[:-TAG_LENGTH], body_tag=rest[-TAG_LENGTH:])


def decrypt(message, data_key):
    """Java DefaultEncryptHandler.decrypt / decryptStream, Python DefaultEncryptHandler.decrypt: the header tag first
    (CipherHeader.verifyHeaderAuthTag), then the body with the context bytes as AAD."""
    m = parse(message)
    if len(data_key) != KEY_LENGTH_FOR_ALGORITHM[m['algorithm']]:
        raise MessageError('the data key has the wrong length for algorithm %d' % m['algorithm'], 3)
    if len(m['header_iv']) != IV_LENGTH:
        raise MessageError('Invalid iv length: %d' % len(m['header_iv']))  # Java AlgorithmHandler.headerGcmEncrypt
    fields = authenticated_fields(m['algorithm'], len(m['context']), m['context_bytes'], m['keys'])
    if header_tag(data_key, m['header_iv'], fields) != m['header_tag']:
        raise MessageError('header authTag verify failed', 3)
    if len(m['body_tag']) != TAG_LENGTH:
        raise MessageError('Invalid tag length: %d' % len(m['body_tag']))
    try:
        plaintext = AESGCM(data_key).decrypt(m['body_iv'], m['ciphertext'] + m['body_tag'], m['context_bytes'])
    except InvalidTag:
        raise MessageError('body authentication failed', 3)
    return plaintext, m


def describe(m):
    d = {
        'layout': m['layout'], 'version': m['version'], 'algorithm': m['algorithm'],
        'encryptedDataKeys': [{'cmkArn': arn.decode('utf-8'), 'ciphertextBlob': text.decode('ascii')} for arn, text in m['keys']],
        'encryptionContext': m['context'], 'contextBytes': m['context_bytes'].hex(),
        'headerIv': m['header_iv'].hex(), 'headerAuthTag': m['header_tag'].hex(),
        'bodyIv': m['body_iv'].hex(), 'bodyAuthTag': m['body_tag'].hex(), 'plaintextLength': len(m['ciphertext']),
    }
    if m['layout'] == 'stream':
        d['bodyIvLengthField'] = m['body_iv_length_field'].hex()
        d['bodyIvLengthOffset'] = m['body_iv_length_offset']
    return d


# ---- known-answer vectors (tests/vectors/alibaba-sdk.json) ----------------------------------------------------------

def vector_plaintext(n):
    return bytes(i % 251 for i in range(n))


VECTOR_CASES = [
    # name, data key, context, keys (arn, blob text), plaintext length
    ('AES-256-GCM, two context pairs, one CMK, empty plaintext', bytes(range(32)),
     {'project': 'Apollo', 'purpose': 'known-answer vector'},
     [('acs:kms:cn-hangzhou:1234567890:key/key-vector', 'dmVjdG9yLWJsb2I=')], 0),
    ('AES-256-GCM, two context pairs, one CMK, 1 byte', bytes(range(32)),
     {'project': 'Apollo', 'purpose': 'known-answer vector'},
     [('acs:kms:cn-hangzhou:1234567890:key/key-vector', 'dmVjdG9yLWJsb2I=')], 1),
    ('AES-256-GCM, no context, one CMK, 300 bytes (long-form DER lengths)', bytes(range(32)), {},
     [('acs:kms:cn-hangzhou:1234567890:key/key-vector', 'dmVjdG9yLWJsb2I=')], 300),
    # The ARN order (cn-beijing first) differs from the DER SET order (the shorter SEQUENCE, cn-shanghai, first).
    ('AES-128-GCM, no context, two CMKs whose ARN order differs from the DER SET order', bytes(range(16)), {},
     [('acs:kms:cn-shanghai:1234567890:key/key-b', base64.b64encode(b'blob-b').decode()),
      ('acs:kms:cn-beijing:1234567890:key/key-a', base64.b64encode(b'a much longer ciphertext blob for key a').decode())], 33),
    # U+FF61 sorts before U+1F600 by UTF-8 bytes (EF BD A1 < F0 9F 98 80) but after it in UTF-16 (FF61 > D83D).
    ('AES-256-GCM, non-ASCII context keys whose UTF-8 order differs from their UTF-16 order', bytes(range(0x40, 0x60)),
     {'\U0001F600': 'grin', '\uFF61': 'halfwidth', 'ключ': 'значение', 'a': ''},
     [('acs:kms:ap-southeast-1:1234567890:key/key-unicode', 'ASNFZ4mrze8=')], 64),
]


def build_vectors():
    vectors = []
    for index, (name, data_key, context, blobs, length) in enumerate(VECTOR_CASES):
        header_iv = bytes(range(0xA0 + index, 0xAC + index))
        body_iv = bytes(range(0xB0 + index, 0xBC + index))
        keys = [(arn, base64.b64decode(text)) for arn, text in blobs]
        plaintext = vector_plaintext(length)
        algorithm = ALGORITHM_FOR_KEY_LENGTH[len(data_key)]
        fields = authenticated_fields(algorithm, len(context), serialized_context(context),
                                      [(arn.encode('utf-8'), text.encode('ascii')) for arn, text in blobs])
        sealed = AESGCM(data_key).encrypt(body_iv, plaintext, serialized_context(context))
        vectors.append({
            'name': name,
            'algorithm': algorithm,
            'dataKey': data_key.hex(),
            'headerIv': header_iv.hex(),
            'bodyIv': body_iv.hex(),
            'encryptionContext': context,
            'encryptedDataKeys': [{'cmkArn': arn, 'ciphertextBlob': text} for arn, text in blobs],
            'plaintextLength': length,
            'contextBytes': serialized_context(context).hex(),
            'authenticatedFields': fields.hex(),
            'headerAuthTag': header_tag(data_key, header_iv, fields).hex(),
            'ciphertext': sealed[:-TAG_LENGTH].hex(),
            'bodyAuthTag': sealed[-TAG_LENGTH:].hex(),
            'asn1': encrypt(plaintext, data_key, keys, context, 'asn1', header_iv, body_iv).hex(),
            'stream': encrypt(plaintext, data_key, keys, context, 'stream', header_iv, body_iv).hex(),
        })
    return {
        'description': 'Alibaba Cloud Encryption SDK messages (docs/alibaba-sdk-format.md §6), written by tests/interop/alibaba_sdk.py '
                       '(asn1crypto + cryptography) from the official SDKs\' sources; the C# implementation must reproduce every byte.',
        'plaintextRule': 'byte i = i mod 251',
        'vectors': vectors,
    }


# ---- command line -------------------------------------------------------------------------------------------------------

def read_key(args):
    if args.key_hex:
        return bytes.fromhex(args.key_hex)
    if args.key_b64:
        return base64.b64decode(args.key_b64, validate=True)
    raise SystemExit(2)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    e = commands.add_parser('encrypt')
    e.add_argument('--layout', choices=['asn1', 'stream'], required=True)
    for p in (e, commands.add_parser('decrypt')):
        p.add_argument('--key-hex')
        p.add_argument('--key-b64')
        p.add_argument('--in', dest='input', required=True)
        p.add_argument('--out', dest='output', required=True)
    e.add_argument('--context-json', default='{}')
    e.add_argument('--edk', nargs=2, action='append', metavar=('ARN', 'BLOB_BASE64'), required=True)
    e.add_argument('--header-iv-hex')
    e.add_argument('--body-iv-hex')
    h = commands.add_parser('header')
    h.add_argument('--in', dest='input', required=True)
    v = commands.add_parser('vectors')
    v.add_argument('--out', dest='output', required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == 'encrypt':
            with open(args.input, 'rb') as f:
                plaintext = f.read()
            keys = [(arn, base64.b64decode(blob, validate=True)) for arn, blob in args.edk]
            message = encrypt(plaintext, read_key(args), keys, json.loads(args.context_json), args.layout,
                              bytes.fromhex(args.header_iv_hex) if args.header_iv_hex else None,
                              bytes.fromhex(args.body_iv_hex) if args.body_iv_hex else None)
            with open(args.output, 'wb') as f:
                f.write(message)
        elif args.command == 'decrypt':
            with open(args.input, 'rb') as f:
                plaintext, m = decrypt(f.read(), read_key(args))
            with open(args.output, 'wb') as f:
                f.write(plaintext)
            print(json.dumps(describe(m), ensure_ascii=False))
        elif args.command == 'header':
            with open(args.input, 'rb') as f:
                print(json.dumps(describe(parse(f.read())), ensure_ascii=False))
        elif args.command == 'vectors':
            with open(args.output, 'w', encoding='utf-8', newline='\n') as f:
                json.dump(build_vectors(), f, ensure_ascii=False, indent=2)
                f.write('\n')
    except MessageError as error:
        print(json.dumps({'error': str(error)}), file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
