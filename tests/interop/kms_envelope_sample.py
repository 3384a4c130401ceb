"""The Alibaba Cloud KMS documentation sample's envelope encryption, as a script built on it would do it.

An *independent* counterpart of EnvelopeKms's legacy format (tests/pester/LegacyInterop.Tests.ps1): it shares no
code with the module. It follows the sample described in shared/reference/alibaba-kms-api.md §7 -- GenerateDataKey
(NumberOfBytes=32), pycryptodome AES.MODE_EAX with its defaults (16-byte random nonce, 16-byte tag, no header),
and a text file of four lines (CiphertextBlob as KMS returned it, base64 nonce, base64 ciphertext, base64 tag),
each ending in "\\n"; to decrypt, it reads the lines with readlines() and passes line 1 *with its trailing newline*
as the CiphertextBlob of Decrypt, as the sample does. Ported to Python 3 (the sample is Python-2-era code): the
file is read and written as bytes, and the base64 lines are decoded to text before they are written.

Instead of the old aliyunsdkcore/aliyunsdkkms packages, KMS is called with a small signature V1 (HMAC-SHA1)
client written from the API reference (alibaba-kms-api.md §1.2) with the standard library only: every parameter in
the query of a GET, as aliyunsdkkms's requests put them. That is a second independent check: of the local KMS
server's V1 verification.

    python3 kms_envelope_sample.py encrypt  --endpoint URL --key KEY --in PLAIN --out ENVELOPE [--newline lf|crlf]
    python3 kms_envelope_sample.py decrypt  --endpoint URL --in ENVELOPE --out PLAIN
    python3 kms_envelope_sample.py selftest

Credentials come from ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (the sample passes them to
AcsClient). Exit status: 0 on success; 1 with a one-line message on stderr on any failure (KMS error, failed
authentication of the file).
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

try:  # pycryptodome as pip installs it (the sample's import) ...
    from Crypto.Cipher import AES
except ImportError:  # ... or as Debian's python3-pycryptodome ships it
    from Cryptodome.Cipher import AES


# ---- a minimal KMS client: signature V1 (RPC, HMAC-SHA1), alibaba-kms-api.md §1.2 -------------------------------

def percent_encode(value):
    """RFC 3986: unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XY (upper-case hex) of its UTF-8 bytes."""
    return urllib.parse.quote(str(value), safe="~")


def signature_v1(method, params, secret):
    canonical = "&".join(percent_encode(k) + "=" + percent_encode(params[k]) for k in sorted(params))
    string_to_sign = method + "&" + percent_encode("/") + "&" + percent_encode(canonical)
    digest = hmac.new((secret + "&").encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class KmsClient:
    def __init__(self, endpoint, access_key_id, access_key_secret):
        self.endpoint = endpoint.rstrip("/")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret

    def call(self, action, **business):
        params = {
            "Action": action,
            "Version": "2016-01-20",
            "Format": "JSON",
            "AccessKeyId": self.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        params.update({k: str(v) for k, v in business.items()})
        params["Signature"] = signature_v1("GET", params, self.access_key_secret)
        query = "&".join(percent_encode(k) + "=" + percent_encode(v) for k, v in params.items())
        try:
            with urllib.request.urlopen(self.endpoint + "/?" + query, timeout=30) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read().decode("utf-8") or "{}")
            raise RuntimeError("KMS %s failed: HTTP %d %s" % (action, e.code, body.get("Code", "?"))) from None


# ---- the sample's functions ------------------------------------------------------------------------------------

def KmsGenerateDataKey(client, key_alias):
    response = client.call("GenerateDataKey", KeyId=key_alias, NumberOfBytes=32)
    return (response["Plaintext"], response["CiphertextBlob"])


def KmsDecrypt(client, ciphertext):
    response = client.call("Decrypt", CiphertextBlob=ciphertext)
    return response["Plaintext"]


def WriteTextFileLines(out_file, lines, newline):
    # The sample writes each line and then "\n" in text mode; a Windows run writes "\r\n" instead.
    with open(out_file, "w", newline=newline) as f:
        for ln in lines:
            f.write(ln)
            f.write("\n")


def ReadTextFileLines(in_file):
    with open(in_file, "r") as f:
        return f.readlines()  # each line keeps its "\n" (a "\r\n" is read as "\n", as in text mode anywhere)


def LocalEncrypt(datakey_plaintext, datakey_encrypted, in_file, out_file, newline):
    datakey = base64.b64decode(datakey_plaintext)
    cipher = AES.new(datakey, AES.MODE_EAX)
    with open(in_file, "rb") as f:
        in_content = f.read()
    ciphertext, tag = cipher.encrypt_and_digest(in_content)
    lines = [datakey_encrypted,
             base64.b64encode(cipher.nonce).decode("ascii"),
             base64.b64encode(ciphertext).decode("ascii"),
             base64.b64encode(tag).decode("ascii")]
    WriteTextFileLines(out_file, lines, newline)


def LocalDecrypt(datakey, nonce, ciphertext, tag, out_file):
    # b64decode drops the trailing newline of each line read by readlines(), as in the sample.
    cipher = AES.new(base64.b64decode(datakey), AES.MODE_EAX, base64.b64decode(nonce))
    plaintext = cipher.decrypt_and_verify(base64.b64decode(ciphertext), base64.b64decode(tag))
    with open(out_file, "wb") as f:
        f.write(plaintext)


def encrypt(args, client):
    datakey = KmsGenerateDataKey(client, args.key)
    LocalEncrypt(datakey[0], datakey[1], args.infile, args.outfile, "\r\n" if args.newline == "crlf" else "\n")
    # What the script relied on, for the test to check (the wrapped key exactly as KMS returned it).
    print(json.dumps({"CiphertextBlob": datakey[1]}))


def decrypt(args, client):
    in_lines = ReadTextFileLines(args.infile)
    if len(in_lines) < 4:
        raise RuntimeError("not a four-line envelope file")
    datakey = KmsDecrypt(client, in_lines[0])  # line 1 with its "\n", as the sample passes it
    LocalDecrypt(datakey, in_lines[1], in_lines[2], in_lines[3], args.outfile)
    print(json.dumps({"CiphertextBlobSent": in_lines[0]}))


def selftest():
    """Known answers of this script's own pieces, for the test to compare with the published values."""
    # alibaba-kms-api.md §1.3, V1-c (the KMS documentation's CreateKey example, GET) and the KMS-flavoured vectors.
    v1c = signature_v1("GET", {
        "AccessKeyId": "testid", "Action": "CreateKey", "Format": "json", "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0", "Timestamp": "2016-03-28T03:13:08Z", "Version": "2016-01-20"}, "testsecret")
    kms_params = {
        "AccessKeyId": "testid", "Action": "GenerateDataKey", "EncryptionContext": '{"purpose":"test file"}',
        "Format": "JSON", "KeyId": "alias/test-key", "KeySpec": "AES_256", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "15215528852396", "SignatureVersion": "1.0", "Timestamp": "2024-01-01T00:00:00Z",
        "Version": "2016-01-20"}
    # alibaba-kms-api.md §7: AES-256 key 00..1f, nonce 00..0f, no header, "hello,world\n".
    cipher = AES.new(bytes(range(32)), AES.MODE_EAX, nonce=bytes(range(16)))
    ciphertext, tag = cipher.encrypt_and_digest(b"hello,world\n")
    print(json.dumps({
        "V1c": v1c,
        "KmsGet": signature_v1("GET", kms_params, "testsecret"),
        "KmsPost": signature_v1("POST", kms_params, "testsecret"),
        "EaxCiphertext": base64.b64encode(ciphertext).decode("ascii"),
        "EaxTag": base64.b64encode(tag).decode("ascii"),
        "EaxDefaultNonceLength": len(AES.new(bytes(32), AES.MODE_EAX).nonce),
        "Pycryptodome": __import__(AES.__name__.split(".")[0]).__version__,
    }))


def main():
    parser = argparse.ArgumentParser(description="The KMS documentation sample's envelope encryption.")
    parser.add_argument("operation", choices=["encrypt", "decrypt", "selftest"])
    parser.add_argument("--endpoint")
    parser.add_argument("--key")
    parser.add_argument("--in", dest="infile")
    parser.add_argument("--out", dest="outfile")
    parser.add_argument("--newline", choices=["lf", "crlf"], default="lf")
    args = parser.parse_args()
    if args.operation == "selftest":
        selftest()
        return
    client = KmsClient(args.endpoint, os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
    try:
        (encrypt if args.operation == "encrypt" else decrypt)(args, client)
    except (RuntimeError, ValueError, KeyError) as e:  # ValueError: pycryptodome's "MAC check failed"
        sys.exit("%s failed: %s" % (args.operation, e))


if __name__ == "__main__":
    main()
