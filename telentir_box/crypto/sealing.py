"""The master key and what it protects. Secrets are sealed with AES-256-GCM under a
subkey derived (HKDF-SHA256) per purpose, so one purpose's ciphertext never opens as
another's. The master key lives in a 0600 file in the data directory or in the env."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV = "TELENTIR_BOX_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
_VERSION = b"\x01"


class MasterKeyError(Exception):
    """The master key is missing, unreadable or malformed: said in one line."""


class WrongMasterKey(MasterKeyError):
    """The master key in force does not open the data directory's sealed secrets."""


def create_master_key(data_dir: Path) -> bool:
    """Write a new master key file (0600) unless one exists; True if it was created.
    Only for a data directory with no sealed data yet (see datadir.obtain_master_key).
    The key is written whole under a temporary name and linked into place, so a start
    killed half-way never leaves an empty key file behind."""
    path = data_dir / MASTER_KEY_FILE
    if path.exists():
        return False
    partial = data_dir / f".{MASTER_KEY_FILE}.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def master_key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key in TELENTIR_BOX_MASTER_KEY, or None when it is not set."""
    text = (os.environ if environ is None else environ).get(MASTER_KEY_ENV)
    return _decode(text, MASTER_KEY_ENV) if text else None


def master_key_source(data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """Where the key in force comes from, for messages."""
    environ = os.environ if environ is None else environ
    return MASTER_KEY_ENV if environ.get(MASTER_KEY_ENV) else str(data_dir / MASTER_KEY_FILE)


def load_master_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The key from the environment if set, else from the data directory's key file."""
    from_env = master_key_from_env(environ)
    if from_env is not None:
        return from_env
    path = data_dir / MASTER_KEY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MasterKeyError(f"no master key: {path} is missing and {MASTER_KEY_ENV} is not set") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise MasterKeyError(f"cannot read the master key {path}: {reason}") from None
    return _decode(text, str(path))


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"the master key in {source} is not 32 bytes of base64")
    return key


def hkdf(master_key: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"telentir-box/" + purpose.encode()
    ).derive(master_key)


class Sealer:
    """Seals and opens small secrets for one purpose under the master key."""

    def __init__(self, master_key: bytes, purpose: str) -> None:
        subkey = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"telentir-box/" + purpose.encode(),
        ).derive(master_key)
        self._aead = AESGCM(subkey)

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """`context` (e.g. a row id) is bound as associated data so sealed values
        cannot be swapped between rows."""
        nonce = secrets.token_bytes(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown sealed format")
        return self._aead.decrypt(sealed[1:13], sealed[13:], context)
