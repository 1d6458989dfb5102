"""TokenCipher: access tokens are stored as Fernet ciphertext and only come back through an explicit decrypt()."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from chronogram.crypto import TokenCipher, TokenDecryptionError, load_or_create_dev_key
from chronogram.settings import Settings

TOKEN = "IGAAJ-secret-long-lived-token-0123456789abcdefghijklmnopqrstuvwxyz"


def test_round_trip(cipher: TokenCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN)
    assert ciphertext != TOKEN
    assert TOKEN not in ciphertext
    assert ciphertext.startswith("gAAAAA")  # what instagram_accounts' CHECK expects
    decrypted = cipher.decrypt(ciphertext)
    assert isinstance(decrypted, SecretStr)
    assert decrypted.get_secret_value() == TOKEN


def test_a_secret_str_can_be_encrypted_and_each_encryption_differs(cipher: TokenCipher) -> None:
    first, second = cipher.encrypt(SecretStr(TOKEN)), cipher.encrypt(TOKEN)
    assert first != second
    assert cipher.decrypt(first).get_secret_value() == cipher.decrypt(second).get_secret_value() == TOKEN


def test_the_token_never_shows_in_reprs_or_errors(cipher: TokenCipher) -> None:
    key = TokenCipher.generate_key()
    keyed = TokenCipher([key])
    decrypted = keyed.decrypt(keyed.encrypt(TOKEN))
    renderings = [repr(keyed), str(keyed), repr(decrypted), str(decrypted), f"{decrypted}"]
    with pytest.raises(TokenDecryptionError) as wrong_key:
        cipher.decrypt(keyed.encrypt(TOKEN))
    renderings.append(str(wrong_key.value))
    for rendering in renderings:
        assert TOKEN not in rendering
        assert key not in rendering


def test_a_wrong_key_fails_clearly(cipher: TokenCipher) -> None:
    ciphertext = TokenCipher([TokenCipher.generate_key()]).encrypt(TOKEN)
    with pytest.raises(TokenDecryptionError, match="CHRONOGRAM_TOKEN_ENCRYPTION_KEY"):
        cipher.decrypt(ciphertext)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "non-ascii"])
def test_altered_ciphertext_fails_clearly(cipher: TokenCipher, damage: str) -> None:
    ciphertext = cipher.encrypt(TOKEN)
    altered = {
        "flip": ciphertext[:-5] + ("A" if ciphertext[-5] != "A" else "B") + ciphertext[-4:],
        "truncate": ciphertext[:-10],
        "garbage": "not a token",
        "non-ascii": ciphertext + "é",
    }[damage]
    with pytest.raises(TokenDecryptionError, match="altered"):
        cipher.decrypt(altered)


def test_an_invalid_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="key #2 is not a Fernet key") as error:
        TokenCipher([TokenCipher.generate_key(), "hunter2-not-a-key"])
    assert "hunter2" not in str(error.value)
    with pytest.raises(ValueError, match="at least one key"):
        TokenCipher([])


def test_an_empty_token_is_refused(cipher: TokenCipher) -> None:
    with pytest.raises(ValueError, match="empty"):
        cipher.encrypt("")


def test_key_rotation() -> None:
    old_key, new_key = TokenCipher.generate_key(), TokenCipher.generate_key()
    stored = TokenCipher([old_key]).encrypt(TOKEN)

    during = TokenCipher([new_key, old_key])
    assert during.decrypt(stored).get_secret_value() == TOKEN
    rotated = during.rotate(stored)

    after = TokenCipher([new_key])
    assert after.decrypt(rotated).get_secret_value() == TOKEN
    with pytest.raises(TokenDecryptionError):
        after.decrypt(stored)
    with pytest.raises(TokenDecryptionError):
        after.rotate(stored)


def test_keys_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = TokenCipher.generate_key(), TokenCipher.generate_key()
    monkeypatch.setenv("CHRONOGRAM_TOKEN_ENCRYPTION_KEY", f" {new_key} , {old_key} ")
    settings = Settings()
    assert new_key not in repr(settings)

    dev_key_file = tmp_path / "token.key"
    cipher = TokenCipher.from_settings(settings, dev_key_file=dev_key_file)

    assert repr(cipher) == "TokenCipher(keys=2)"
    assert TokenCipher([new_key]).decrypt(cipher.encrypt(TOKEN)).get_secret_value() == TOKEN
    assert cipher.decrypt(TokenCipher([old_key]).encrypt(TOKEN)).get_secret_value() == TOKEN
    assert not dev_key_file.exists()


def test_without_a_key_development_gets_one_private_key_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(token_encryption_key=SecretStr(""))
    dev_key_file = tmp_path / "data" / "token.key"

    with caplog.at_level(logging.WARNING, logger="chronogram.crypto"):
        first = TokenCipher.from_settings(settings, dev_key_file=dev_key_file)
        second = TokenCipher.from_settings(settings, dev_key_file=dev_key_file)

    assert stat.S_IMODE(dev_key_file.stat().st_mode) == 0o600
    assert second.decrypt(first.encrypt(TOKEN)).get_secret_value() == TOKEN
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "Production must set CHRONOGRAM_TOKEN_ENCRYPTION_KEY" in warnings[0]
    assert dev_key_file.read_text().strip() not in warnings[0]
    assert list(dev_key_file.parent.iterdir()) == [dev_key_file]  # no temporary file left behind


def test_an_existing_development_key_is_kept(tmp_path: Path) -> None:
    dev_key_file = tmp_path / "token.key"
    key = TokenCipher.generate_key()
    dev_key_file.write_text(key + "\n")
    assert load_or_create_dev_key(dev_key_file) == key
    dev_key_file.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_or_create_dev_key(dev_key_file)
