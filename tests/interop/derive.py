"""Independent re-implementation of Tessera's owner key derivation (docs/formats.md, "Owner key derivation"),
on Python's `cryptography` package and the standard library's HMAC, for the interop tests.

Usage: derive.py PKCS8_PEM_PATH ; prints "verifying_key_hex self_key_hex" for that RSA key.
"""
import hashlib
import hmac
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def hkdf_expand(prk, info, length):
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def main(path):
    with open(path, "rb") as f:
        numbers = serialization.load_pem_private_key(f.read(), password=None).private_numbers()
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    canonical = k.to_bytes(2, "big") + n.to_bytes(k, "big") + min(numbers.p, numbers.q).to_bytes(k, "big")
    prk = hmac.new(b"tessera/v1/owner-key", canonical, hashlib.sha256).digest()
    seed = hkdf_expand(prk, b"tessera/v1/signing\0", 32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{raw.hex()} {hkdf_expand(prk, b'tessera/v1/self' + bytes([0]), 32).hex()}"


if __name__ == "__main__":
    sys.stdout.write(main(sys.argv[1]))
