"""Peer for tools/Bench.ps1: the Alibaba Cloud KMS documentation sample's approach to envelope encryption.

    python3 kms-doc-sample.py <encrypt|decrypt> <source> <destination>

The whole file is read into memory, encrypted with AES-EAX (pycryptodome, imported as Cryptodome as Debian's
python3-pycryptodome ships it) and written as four base64 lines: wrapped data key, nonce, ciphertext, tag.
The KMS call is left out (a fixed key and a placeholder for the wrapped key): only the file handling is measured.
"""
import base64
import sys

from Cryptodome.Cipher import AES

KEY = bytes([7]) * 32
WRAPPED_KEY_PLACEHOLDER = base64.b64encode(b"benchmark placeholder for the KMS CiphertextBlob")

op, src, dst = sys.argv[1:4]
if op == "encrypt":
    with open(src, "rb") as f:
        data = f.read()
    cipher = AES.new(KEY, AES.MODE_EAX)
    ciphertext, tag = cipher.encrypt_and_digest(data)
    with open(dst, "wb") as f:
        f.write(b"\n".join([WRAPPED_KEY_PLACEHOLDER, base64.b64encode(cipher.nonce),
                            base64.b64encode(ciphertext), base64.b64encode(tag)]) + b"\n")
elif op == "decrypt":
    with open(src, "rb") as f:
        lines = f.read().split(b"\n")
    nonce, ciphertext, tag = (base64.b64decode(line) for line in lines[1:4])
    cipher = AES.new(KEY, AES.MODE_EAX, nonce=nonce)
    with open(dst, "wb") as f:
        f.write(cipher.decrypt_and_verify(ciphertext, tag))
else:
    sys.exit("usage: kms-doc-sample.py <encrypt|decrypt> <source> <destination>")
