"""The CA key's passphrase: the local run's 0600 file, and refusing weak or placeholder settings."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from gpulab_pki.ca import CA_UNAVAILABLE, CaKeyError, WeakPassphrase, check_passphrase, ensure_passphrase_file
from gpulab_pki.ca.passphrase import passphrase_from_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_a_random_passphrase_readable_by_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ca" / "passphrase"

    passphrase = ensure_passphrase_file(path)

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert path.read_bytes() == passphrase + b"\n"
    assert len(base64.b64decode(passphrase, validate=True)) == 32
    assert [p.name for p in path.parent.iterdir()] == ["passphrase"]  # no temporary file left behind


def test_file_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        ensure_passphrase_file(tmp_path / "passphrase")
    finally:
        os.umask(previous)

    assert mode(tmp_path / "passphrase") == 0o600


def test_later_starts_read_the_same_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"

    first = ensure_passphrase_file(path)

    assert ensure_passphrase_file(path) == first
    assert passphrase_from_file(path) == first


def test_two_passphrases_differ(tmp_path: Path) -> None:
    assert ensure_passphrase_file(tmp_path / "a") != ensure_passphrase_file(tmp_path / "b")


def test_processes_starting_together_agree_on_one_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(ensure_passphrase_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    assert len(results) == 8
    assert set(results) == {path.read_bytes().strip()}
    assert [p.name for p in tmp_path.iterdir()] == ["passphrase"]


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_file_others_can_read_is_refused_and_left_alone(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "passphrase"
    path.write_bytes(b"Zq3vJ0y1T9mX8b2kL5nR7wE4cA6dF0gH\n")
    path.chmod(file_mode)

    with pytest.raises(CaKeyError) as caught:
        ensure_passphrase_file(path)

    assert caught.value.code == CA_UNAVAILABLE
    assert caught.value.reason == "insecure_file"
    assert f"mode {file_mode:04o}" in caught.value.message
    assert f"chmod 600 {path}" in caught.value.message
    assert path.read_bytes() == b"Zq3vJ0y1T9mX8b2kL5nR7wE4cA6dF0gH\n"  # not replaced: the key needs it


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.write_bytes(b"Zq3vJ0y1T9mX8b2kL5nR7wE4cA6dF0gH\n")
    target.chmod(0o600)
    link = tmp_path / "passphrase"
    link.symlink_to(target)

    with pytest.raises(CaKeyError) as caught:
        passphrase_from_file(link)

    assert caught.value.reason == "insecure_file"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaKeyError) as caught:
        passphrase_from_file(tmp_path / "nope")

    assert caught.value.reason == "missing_file"
    assert str(tmp_path / "nope") in caught.value.message


def test_file_holding_a_placeholder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_bytes(b"change-me-before-production\n")
    path.chmod(0o600)

    with pytest.raises(WeakPassphrase, match="placeholder"):
        passphrase_from_file(path)


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("change-me", "placeholder"),
        ("change-me-to-something-long-and-random", "placeholder"),
        ("CHANGEME-please-really-do-it", "placeholder"),
        ("replace-me-with-a-real-secret", "placeholder"),
        ("short-secret", "12 characters; at least 16"),
    ],
)
def test_weak_passphrase_setting_is_refused(value: str, phrase: str) -> None:
    with pytest.raises(WeakPassphrase, match=phrase) as caught:
        check_passphrase(value)

    assert caught.value.reason == "weak_passphrase"
    assert isinstance(caught.value, ValueError)


def test_strong_passphrase_setting_is_kept_as_given() -> None:
    assert check_passphrase("n9W!x2-long-enough-pass") == b"n9W!x2-long-enough-pass"


class _Settings(BaseModel):
    """What the pki service's settings will do with the passphrase field."""

    ca_key_passphrase: str

    @field_validator("ca_key_passphrase")
    @classmethod
    def _strong(cls, value: str) -> str:
        check_passphrase(value)
        return value


def test_settings_validator_stops_on_a_placeholder_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="placeholder from an example"):
        _Settings(ca_key_passphrase="change-me-in-production")
