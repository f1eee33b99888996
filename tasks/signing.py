"""Signing keys for trail checkpoints (Ed25519): the municipality's private key signs, anybody
with the public key file can verify, without any secret."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tasks.errors import AuditError


def checkpoint_message(run_id: str, seq: int, record_hash: str) -> bytes:
    """What a checkpoint signs: the run, the seq of the checkpoint and the hash it seals."""
    return f"klerk-checkpoint:{run_id}:{seq}:{record_hash}".encode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of its SHA-256."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints with the private key."""

    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        """The fingerprint of the matching public key."""
        return key_id(self.private.public_key())

    def sign(self, message: bytes) -> str:
        """The signature, base64."""
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def create_keys(private_path: Path) -> Path:
    """Make a new key pair: the private key (mode 0600) and `<name>.pub` beside it."""
    private = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)
    public_path = private_path.with_suffix(".pub")
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public_path


def load_signer(private_path: Path) -> Signer:
    """The signer from a private key file (PEM, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuditError(f"cannot read the signing key {private_path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"{private_path} is not an Ed25519 private key")
    return Signer(key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file (PEM) for verifying."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read the public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path} is not an Ed25519 public key")
    return key


def signature_is_valid(public: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    """True when `signature` (base64) signs `message` under `public`."""
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
