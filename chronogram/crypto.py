"""Encryption at rest for Instagram access tokens: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

The key comes from Settings.token_encryption_key (CHRONOGRAM_TOKEN_ENCRYPTION_KEY). Several comma-separated keys
allow rotation: the first encrypts, all decrypt, and TokenCipher.rotate re-encrypts a stored token under the first.
Generate a key with:  python -c "from chronogram.crypto import TokenCipher; print(TokenCipher.generate_key())"

When no key is configured, a development key is generated once into .data/token.key (mode 0600) and reused, so a
fresh clone works without configuration. Production must set the key explicitly: whoever loses it loses every
connected account's token, and a key lying next to the database protects nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from chronogram.settings import DATA_DIR, Settings

DEV_KEY_FILE = DATA_DIR / "token.key"

logger = logging.getLogger(__name__)


class TokenDecryptionError(Exception):
    """The ciphertext was not produced by any configured key, or was altered."""


class TokenCipher:
    """Encrypts access tokens for the database and decrypts them only on an explicit `decrypt()` call.

    `decrypt()` returns a SecretStr, so a token that ends up in a log line or a traceback shows as '**********';
    call `.get_secret_value()` at the point where the Graph API request is built.
    """

    def __init__(self, keys: Sequence[str | bytes | SecretStr]) -> None:
        if not keys:
            raise ValueError("TokenCipher needs at least one key")
        self._fernet = MultiFernet([_fernet(key, index) for index, key in enumerate(keys)])
        self._key_count = len(keys)

    @classmethod
    def from_settings(cls, settings: Settings, *, dev_key_file: Path = DEV_KEY_FILE) -> TokenCipher:
        configured = settings.token_encryption_key.get_secret_value()
        keys = [key.strip() for key in configured.split(",") if key.strip()]
        if not keys:
            keys = [load_or_create_dev_key(dev_key_file)]
        return cls(keys)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, token: str | SecretStr) -> str:
        plaintext = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not plaintext:
            raise ValueError("refusing to encrypt an empty access token")
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> SecretStr:
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            # `from None`: InvalidToken carries no message, and the chained traceback would add nothing useful.
            raise TokenDecryptionError(
                "cannot decrypt the stored access token: it was encrypted with a key that is not configured in "
                "CHRONOGRAM_TOKEN_ENCRYPTION_KEY (wrong key, or an old key removed too early), or it was altered"
            ) from None
        return SecretStr(plaintext.decode("utf-8"))

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key, so that older keys can later be removed from the configuration."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise TokenDecryptionError(
                "cannot rotate the access token: no configured key decrypts it"
            ) from None

    def __repr__(self) -> str:
        return f"TokenCipher(keys={self._key_count})"


def load_or_create_dev_key(path: Path = DEV_KEY_FILE) -> str:
    """Return the development key stored at `path`, creating it (mode 0600) if it does not exist yet."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # The API and the worker may start together: write a private temporary file, then link it into place, which
    # fails if another process got there first; nobody can read a half-written key.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as sink:
            sink.write(key + b"\n")
            sink.flush()
            os.fsync(sink.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key(path)
    finally:
        os.unlink(temporary)
    logger.warning(
        "CHRONOGRAM_TOKEN_ENCRYPTION_KEY is not set: generated a development key in %s. "
        "Production must set CHRONOGRAM_TOKEN_ENCRYPTION_KEY.",
        path,
    )
    return key.decode("ascii")


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ValueError(f"{path} is empty: delete it to generate a new development key")
    return key


def _fernet(key: str | bytes | SecretStr, index: int) -> Fernet:
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    try:
        return Fernet(raw)
    except (ValueError, TypeError):
        # Never echo the key: it may be a real secret with a typo.
        raise ValueError(
            f"token encryption key #{index + 1} is not a Fernet key (32 url-safe base64-encoded bytes); "
            "generate one with TokenCipher.generate_key()"
        ) from None
