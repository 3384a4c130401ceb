#!/usr/bin/python3
"""An independent implementation of the Alibaba Cloud Encryption SDK message format, AES-GCM algorithms (1 and 2),
in both layouts (the ASN.1 "byte" message and the Java SDK's stream layout), for EnvelopeKms's test suite.

Written from the layout in docs/alibaba-sdk-format.md (itself from shared/reference/alibaba-kms-api.md §6), not from
the C# code. DER comes from asn1crypto, the library the official Python SDK uses, and AES-GCM from pyca/cryptography:
Debian's python3-asn1crypto and python3-cryptography (build.ps1's Test task installs them).

    alibaba_sdk.py encrypt --layout asn1|stream (--key-hex H | --key-b64 B) --in P --out M
                           [--context-json J] --edk ARN BLOB_BASE64 [--edk ...] [--header-iv-hex H] [--body-iv-hex H]
    alibaba_sdk.py decrypt (--key-hex H | --key-b64 B) --in M --out P        prints the header as JSON
    alibaba_sdk.py header --in M                                              prints the header as JSON, no key
    alibaba_sdk.py vectors --out FILE                                         writes the known-answer vectors

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


class MessageError(Exception):
    """A message that cannot be read: malformed, unsupported, or failing authentication."""

    def __init__(self, message, exit_code=4):
        super().__init__(message)
        self.exit_code = exit_code


# ---- the ASN.1 structures (docs/alibaba-sdk-format.md §2) ------------------------------------------------------------

class EncryptedDataKey(core.Sequence):
    _fields = [('cmk_arn', core.OctetString), ('encrypted_data_key', core.OctetString)]


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
    _fields = [('head', Head), ('body', Body)]


# ---- the authenticated bytes (§3) -------------------------------------------------------------------------------------

def int32(value):
    return struct.pack('>i', value)


def serialized_context(context):
    """Empty for no context; else count, then (len, key, len, value) sorted by the keys' UTF-8 bytes."""
    if not context:
        return b''
    pairs = sorted((k.encode('utf-8'), v.encode('utf-8')) for k, v in context.items())
    out = bytearray(int32(len(pairs)))
    for key, value in pairs:
        out += int32(len(key)) + key + int32(len(value)) + value
    return bytes(out)


def authenticated_fields(algorithm, context, keys):
    """keys: list of (arn, raw encrypted data key). The context count appears twice (once more inside the context
    bytes); each data key contributes its ARN and the base64 TEXT of its blob, sorted by ARN bytes."""
    out = bytearray()
    out += int32(VERSION) + int32(algorithm) + int32(len(context)) + serialized_context(context)
    out += int32(len(keys))
    for arn, raw in sorted(keys, key=lambda k: k[0].encode('utf-8')):
        arn_bytes = arn.encode('utf-8')
        text = base64.b64encode(raw)
        out += int32(len(arn_bytes)) + arn_bytes + int32(len(text)) + text
    return bytes(out)


def header_tag(data_key, header_iv, fields):
    """GCM over an empty plaintext: the 16-byte tag alone (a GMAC of the authenticated fields)."""
    return AESGCM(data_key).encrypt(header_iv, b'', fields)


# ---- writing ------------------------------------------------------------------------------------------------------------

def encrypt(plaintext, data_key, keys, context, layout, header_iv=None, body_iv=None):
    if len(data_key) not in ALGORITHM_FOR_KEY_LENGTH:
        raise ValueError('the data key must be 16 or 32 bytes')
    algorithm = ALGORITHM_FOR_KEY_LENGTH[len(data_key)]
    header_iv = header_iv if header_iv is not None else os.urandom(IV_LENGTH)
    body_iv = body_iv if body_iv is not None else os.urandom(IV_LENGTH)
    tag_of_header = header_tag(data_key, header_iv, authenticated_fields(algorithm, context, keys))
    sealed = AESGCM(data_key).encrypt(body_iv, plaintext, serialized_context(context))
    ciphertext, body_tag = sealed[:-TAG_LENGTH], sealed[-TAG_LENGTH:]

    if layout == 'asn1':
        head = Head({
            'version': VERSION,
            'algorithm': algorithm,
            'encrypted_data_keys': EncryptedDataKeys([EncryptedDataKey({'cmk_arn': arn.encode('utf-8'), 'encrypted_data_key': raw}) for arn, raw in keys]),
            'encryption_context': ContextEntries([ContextEntry({'key': k.encode('utf-8'), 'value': v.encode('utf-8')}) for k, v in context.items()]),
            'header_iv': header_iv,
            'header_auth_tag': tag_of_header,
        })
        body = Body({'iv': body_iv, 'cipher_text': ciphertext, 'auth_tag': body_tag})
        return Message({'head': head, 'body': body}).dump()  # asn1crypto sorts SET OF elements by their encodings

    if layout == 'stream':
        ctx = serialized_context(context)
        out = bytearray(int32(VERSION) + int32(algorithm) + int32(len(ctx)) + ctx + int32(len(keys)))
        for arn, raw in sorted(keys, key=lambda k: k[0].encode('utf-8')):
            arn_bytes = arn.encode('utf-8')
            text = base64.b64encode(raw)
            out += int32(len(arn_bytes)) + arn_bytes + int32(len(text)) + text
        for field in (header_iv, tag_of_header, body_iv):
            out += int32(len(field)) + field
        return bytes(out + ciphertext + body_tag)

    raise ValueError('layout must be asn1 or stream')


# ---- reading ------------------------------------------------------------------------------------------------------------

def parse(message):
    """Returns a dict: layout, version, algorithm, keys [(arn, raw)], context, header_iv, header_tag, body_iv,
    ciphertext, body_tag."""
    if message[:1] == b'\x30':
        return parse_asn1(message)
    if len(message) >= 8 and message[:4] == int32(VERSION):
        return parse_stream(message)
    raise MessageError('not an Encryption SDK message')


def check_algorithm(algorithm):
    if algorithm not in KEY_LENGTH_FOR_ALGORITHM:
        raise MessageError('unsupported algorithm %d' % algorithm)


def parse_asn1(message):
    try:
        parsed = Message.load(message, strict=True)
        head, body = parsed['head'], parsed['body']
        version, algorithm = head['version'].native, head['algorithm'].native
        keys = [(k['cmk_arn'].native.decode('utf-8'), k['encrypted_data_key'].native) for k in head['encrypted_data_keys']]
        context = {e['key'].native.decode('utf-8'): e['value'].native.decode('utf-8') for e in head['encryption_context']}
        result = dict(layout='asn1', version=version, algorithm=algorithm, keys=keys, context=context,
                      header_iv=head['header_iv'].native, header_tag=head['header_auth_tag'].native,
                      body_iv=body['iv'].native, ciphertext=body['cipher_text'].native, body_tag=body['auth_tag'].native)
    except (ValueError, TypeError, KeyError) as e:
        raise MessageError('malformed ASN.1 message: %s' % e)
    if version != VERSION:
        raise MessageError('unsupported version %d' % version)
    check_algorithm(algorithm)
    return result


def parse_stream(message):
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
    if ctx:
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
        arn = take(take_int()).decode('utf-8')
        text = take(take_int())
        keys.append((arn, base64.b64decode(text, validate=True)))
    header_iv = take(take_int())
    tag = take(take_int())
    body_iv = take(take_int())
    rest = message[position:]
    if len(rest) < TAG_LENGTH:
        raise MessageError('truncated stream message')
    return dict(layout='stream', version=version, algorithm=algorithm, keys=keys, context=context, header_iv=header_iv,
                header_tag=tag, body_iv=body_iv, ciphertext=rest[:-TAG_LENGTH], body_tag=rest[-TAG_LENGTH:])


def decrypt(message, data_key):
    m = parse(message)
    if len(data_key) != KEY_LENGTH_FOR_ALGORITHM[m['algorithm']]:
        raise MessageError('the data key has the wrong length for algorithm %d' % m['algorithm'], 3)
    expected = header_tag(data_key, m['header_iv'], authenticated_fields(m['algorithm'], m['context'], m['keys']))
    if expected != m['header_tag']:
        raise MessageError('header authTag verify failed', 3)
    try:
        plaintext = AESGCM(data_key).decrypt(m['body_iv'], m['ciphertext'] + m['body_tag'], serialized_context(m['context']))
    except InvalidTag:
        raise MessageError('body authentication failed', 3)
    return plaintext, m


def describe(m):
    return {
        'layout': m['layout'], 'version': m['version'], 'algorithm': m['algorithm'],
        'encryptedDataKeys': [{'cmkArn': arn, 'ciphertextBlob': base64.b64encode(raw).decode('ascii')} for arn, raw in m['keys']],
        'encryptionContext': m['context'], 'plaintextLength': len(m['ciphertext']),
    }


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
        fields = authenticated_fields(algorithm, context, keys)
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
                       '(asn1crypto + cryptography) from the documented layout; the C# implementation must reproduce every byte.',
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
