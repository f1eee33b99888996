"""Credentials for applications: from the environment, a .env file or the OS keyring; never YAML."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from tasks.errors import DefinitionError


@dataclass(frozen=True)
class Credentials:
    """A user name and a password that never prints."""

    username: str
    password: SecretStr


def _dotenv(path: Path = Path(".env")) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    return values


def load_credentials(reference: str) -> Credentials:
    """The credentials named `reference` (e.g. PARKEREN).

    Looks at KLERK_CRED_<REF>_USERNAME / _PASSWORD in the environment, then in ./.env, then
    the OS keyring (service 'klerk', entry '<REF>' holding 'username' and the password).
    """
    prefix = f"KLERK_CRED_{reference}_"
    sources = [dict(os.environ), _dotenv()]
    half_set = ""
    for source in sources:
        username = source.get(prefix + "USERNAME")
        password = source.get(prefix + "PASSWORD")
        if username and password:
            return Credentials(username, SecretStr(password))
        if (username or password) and not half_set:
            given, lacking = ("USERNAME", "PASSWORD") if username else ("PASSWORD", "USERNAME")
            half_set = f" ({prefix}{given} is set, {prefix}{lacking} is not)"
    keyring_credentials = _from_keyring(reference)
    if keyring_credentials is not None:
        return keyring_credentials
    raise DefinitionError(
        [
            f"credentials {reference!r} not found{half_set}: set {prefix}USERNAME and "
            f"{prefix}PASSWORD in the environment or in .env, or store them with "
            f"`keyring set klerk {reference}` (username) and `keyring set klerk "
            f"{reference}:password`"
        ]
    )


def _from_keyring(reference: str) -> Credentials | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        username = keyring.get_password("klerk", reference)
        password = keyring.get_password("klerk", f"{reference}:password")
    except (KeyringError, RuntimeError):
        return None
    if username and password:
        return Credentials(str(username), SecretStr(str(password)))
    return None
