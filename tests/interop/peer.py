"""Cross-implementation peer for Tessera's interop tests, on Python's `cryptography` package (OpenSSL).

Usage: peer.py MODE ARG... ; every byte string is hex, the result is printed as hex.
  aesgcm-open KEY NONCE CIPHERTEXT_AND_TAG AAD
  aesgcm-seal KEY NONCE PLAINTEXT AAD
  oaep-decrypt PKCS8_PEM_PATH LABEL CIPHERTEXT
  oaep-encrypt SPKI_PEM_PATH LABEL PLAINTEXT
"""
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def oaep(label):
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None)


def main(mode, *args):
    if mode == "aesgcm-open":
        key, nonce, ct, aad = (bytes.fromhex(a) for a in args)
        return AESGCM(key).decrypt(nonce, ct, aad)
    if mode == "aesgcm-seal":
        key, nonce, pt, aad = (bytes.fromhex(a) for a in args)
        return AESGCM(key).encrypt(nonce, pt, aad)
    if mode == "oaep-decrypt":
        with open(args[0], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        return key.decrypt(bytes.fromhex(args[2]), oaep(bytes.fromhex(args[1])))
    if mode == "oaep-encrypt":
        with open(args[0], "rb") as f:
            key = serialization.load_pem_public_key(f.read())
        return key.encrypt(bytes.fromhex(args[2]), oaep(bytes.fromhex(args[1])))
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.stdout.write(main(*sys.argv[1:]).hex())
