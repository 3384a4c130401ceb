#!/usr/bin/env python3
"""Writes the raw seed corpora of the fuzz targets into tests/fuzz/seeds/<target>/ from the test vectors
(tests/vectors: EKMS v1/v2 known answers, the Encryption SDK vectors, the official Java/Python SDK messages) and from
the shapes the module's own tests use (credential files, KMS and credentials-URI responses, signed server requests).
build.ps1 -Task Fuzz minimises them with afl-cmin into tests/fuzz/corpus/<target>/, which is what the repository keeps
and CI replays. Standard library only; deterministic (fixed keys, nonces, timestamps)."""
import base64, glob, hashlib, hmac, json, os, shutil, struct
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, 'tests', 'fuzz', 'seeds')
seeds = {}

def add(target, name, data):
    seeds.setdefault(target, {})[name] = data.encode() if isinstance(data, str) else data

def vectors(name):
    with open(os.path.join(ROOT, 'tests', 'vectors', name)) as f:
        return json.load(f)

# EKMS v1 and v2 files (what Protect-EnvelopeFile writes, byte for byte): header, slots and frames.
for version in ('v1', 'v2'):
    doc = vectors(f'ekms-{version}.json')
    for v in doc['vectors']:
        data = bytes.fromhex(v['file'])
        if len(data) > 64 * 1024: continue
        add('ekms-header', f'{version}-{v["plaintextLength"]}', data)
        add('ekms-frames', f'{version}-{v["plaintextLength"]}', data)
    ctx = doc['encryptionContext']
    enc = struct.pack('>H', len(ctx)) + b''.join(
        struct.pack('>H', len(k.encode())) + k.encode() + struct.pack('>H', len(val.encode())) + val.encode()
        for k, val in sorted(ctx.items(), key=lambda p: p[0].encode()))
    add('context', f'ekms-binary-{version}', enc)

# Encryption SDK messages: our vectors (both layouts) and the official SDKs' output.
for i, v in enumerate(vectors('alibaba-sdk.json')['vectors']):
    add('esdk-asn1', f'vector-{i}', bytes.fromhex(v['asn1']))
    add('esdk-stream', f'vector-{i}', bytes.fromhex(v['stream']))
    add('context', f'esdk-binary-{i}', bytes.fromhex(v['contextBytes']))
    add('context', f'json-{i}', json.dumps(v['encryptionContext'], ensure_ascii=False))
for path in sorted(glob.glob(os.path.join(ROOT, 'tests', 'vectors', 'alibaba-esdk', '*.json'))):
    v = json.load(open(path))
    data = base64.b64decode(v['message_b64'])
    if len(data) > 64 * 1024: continue
    add('esdk-stream' if v['layout'] == 'stream' else 'esdk-asn1', os.path.basename(path)[:-5], data)

# Legacy: the documentation sample's four lines (CiphertextBlob, nonce, ciphertext, tag), LF and CRLF.
blob = base64.b64encode(b'legacy-vector-blob-' + bytes(range(40))).decode()
lines = [blob, base64.b64encode(bytes(range(16))).decode(), base64.b64encode(bytes(range(100, 133))).decode(),
         base64.b64encode(bytes(range(200, 216))).decode()]
add('legacy', 'lf', '\n'.join(lines) + '\n')
add('legacy', 'crlf', '\r\n'.join(lines) + '\r\n')

# KMS responses, in the shapes the local server and KMS answer.
add('kms-response', 'generate-data-key', '{"KeyId":"key-1","KeyVersionId":"v-1","CiphertextBlob":"dmVjdG9yLWJsb2I=","Plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","RequestId":"r-1"}')
add('kms-response', 'describe-key', '{"KeyMetadata":{"KeyId":"key-1","Arn":"acs:kms:cn-hangzhou:1234567890:key/key-1","KeyState":"Enabled","KeyUsage":"ENCRYPT/DECRYPT","CreationDate":"2026-01-01T00:00:00Z","DeleteDate":"","Origin":"Aliyun_KMS","ProtectionLevel":"SOFTWARE","Description":"d"},"RequestId":"r-2"}')
add('kms-response', 'list-keys', '{"Keys":{"Key":[{"KeyId":"key-1","KeyArn":"acs:kms:cn-hangzhou:1:key/key-1"}]},"TotalCount":1,"PageNumber":1,"PageSize":10,"RequestId":"r-3"}')
add('kms-response', 'list-aliases', '{"Aliases":{"Alias":[{"AliasName":"alias/a","AliasArn":"acs:kms:cn-hangzhou:1:alias/a","KeyId":"key-1"}]},"TotalCount":"1","PageNumber":1,"PageSize":10,"RequestId":"r-4"}')
add('kms-response', 'list-tags', '{"Tags":{"Tag":[{"TagKey":"k","TagValue":"v","KeyId":"key-1"}]},"RequestId":"r-5"}')

# Credential files: the aliyun CLI's config.json and the ini credentials file, every mode.
add('cli-config', 'all-modes', '{"current":"work","profiles":[{"name":"default","mode":"AK","access_key_id":"id","access_key_secret":"s","region_id":"cn-hangzhou"},{"name":"work","mode":"StsToken","access_key_id":"id","access_key_secret":"s","sts_token":"t"}]}')
add('cli-config', 'role', '{"current":"default","profiles":[{"name":"default","mode":"RamRoleArn","access_key_id":"id","access_key_secret":"s","ram_role_arn":"acs:ram::1:role/kms","ram_session_name":"n","expired_seconds":900,"sts_region":"cn-hangzhou","enable_vpc":true}]}')
add('cli-config', 'ecs', '{"profiles":[{"name":"default","mode":"EcsRamRole","ram_role_name":"MyRole"}]}')
add('ini-credentials', 'access-key', '# comment\n[default]\ntype = access_key            # access_key | ecs_ram_role | ram_role_arn\naccess_key_id = ini-id\naccess_key_secret = ini-secret\nregion_id = ap-southeast-1\n')
add('ini-credentials', 'role', '[default]\r\ntype = ram_role_arn\r\naccess_key_id = id\r\naccess_key_secret = s\r\nrole_arn = acs:ram::1:role/ini\r\nrole_session_name = n\r\nduration_seconds = 900\r\nsts_region = cn-shanghai\r\n')
add('ini-credentials', 'ecs-sts', '[other]\ntype = sts\n[default]\ntype = ecs_ram_role\nrole_name = MyRole\n')

# Credentials-URI and STS responses.
add('credentials-uri', 'flat', '{"Code":"Success","AccessKeyId":"STS.id","AccessKeySecret":"s","SecurityToken":"CAIS","Expiration":"2026-01-01T01:00:00Z"}')
add('credentials-uri', 'sts', '{"RequestId":"r","Credentials":{"AccessKeyId":"STS.id","AccessKeySecret":"s","SecurityToken":"CAIS","Expiration":"2026-01-01T01:00:00Z"}}')

# Server requests (layout: method, query, content type, headers, blank line, body), signed with the harness's pair.
AK, SECRET, DATE = 'fuzz-access-key', 'fuzz-access-key-secret', '2026-01-01T00:00:00Z'
def enc(s): return quote(s, safe='-_.~')
def v1(method, params):
    canon = '&'.join(f'{enc(k)}={enc(v)}' for k, v in sorted(params.items()))
    sts = f'{method}&%2F&{enc(canon)}'
    return base64.b64encode(hmac.new((SECRET + '&').encode(), sts.encode(), hashlib.sha1).digest()).decode()
p = {'Action': 'Encrypt', 'Version': '2016-01-20', 'Format': 'JSON', 'AccessKeyId': AK, 'SignatureMethod': 'HMAC-SHA1',
     'SignatureVersion': '1.0', 'SignatureNonce': 'n-1', 'Timestamp': DATE, 'KeyId': 'key-1', 'Plaintext': 'aGVsbG8=',
     'EncryptionContext': '{"a":"b"}'}
p['Signature'] = v1('POST', p)
form = '&'.join(f'{enc(k)}={enc(v)}' for k, v in p.items())
add('server-request', 'v1-form', 'POST\n\napplication/x-www-form-urlencoded\nhost: 127.0.0.1\n\n' + form)
q = dict(p); q['SignatureNonce'] = 'n-2'; del q['Signature']; q['Signature'] = v1('GET', q)
add('server-request', 'v1-query', 'GET\n' + '&'.join(f'{enc(k)}={enc(v)}' for k, v in q.items()) + '\n\n\n')
def v3(query, body, extra=None):
    headers = {'host': '127.0.0.1', 'x-acs-action': 'Decrypt', 'x-acs-version': '2016-01-20', 'x-acs-date': DATE,
               'x-acs-signature-nonce': 'n-3', 'x-acs-content-sha256': hashlib.sha256(body).hexdigest()}
    headers.update(extra or {})
    names = sorted(headers)
    cq = '&'.join(f'{enc(k)}={enc(v)}' for k, v in sorted(query))
    creq = '\n'.join(['POST', '/', cq, ''.join(f'{n}:{headers[n].strip()}\n' for n in names), ';'.join(names), headers['x-acs-content-sha256']])
    sts = 'ACS3-HMAC-SHA256\n' + hashlib.sha256(creq.encode()).hexdigest()
    sig = hmac.new(SECRET.encode(), sts.encode(), hashlib.sha256).hexdigest()
    headers['authorization'] = f'ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={";".join(names)},Signature={sig}'
    return ('POST\n' + '&'.join(f'{enc(k)}={enc(v)}' for k, v in query) + '\napplication/x-www-form-urlencoded\n'
            + ''.join(f'{n}: {v}\n' for n, v in headers.items()) + '\n').encode() + body
add('server-request', 'v3', v3([('CiphertextBlob', 'dmVjdG9yLWJsb2I=')], b'EncryptionContext=%7B%22a%22%3A%22b%22%7D'))
add('server-request', 'v3-sts-token', v3([], b'', {'x-acs-security-token': 'CAIS'}))

shutil.rmtree(OUT, ignore_errors=True)
for target, files in sorted(seeds.items()):
    os.makedirs(os.path.join(OUT, target))
    for name, data in files.items():
        with open(os.path.join(OUT, target, name), 'wb') as f: f.write(data)
    print(f'{target}: {len(files)} seeds')
