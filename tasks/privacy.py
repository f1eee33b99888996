"""The one place every log line, report, error message and evidence text passes through.

Known secret values are replaced; BSNs (nine digits passing the elfproef), IBANs and e-mail
addresses are masked. The operator log, messages in the store and the trail use `redact`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from tasks.fields import is_valid_bsn

_NINE_DIGITS = re.compile(r"(?<![0-9])([0-9]{9})(?![0-9])")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

_lock = threading.Lock()
_secrets: set[str] = set()


def add_secrets(values: Iterable[str]) -> None:
    """Remember secret values (passwords) so that `redact` replaces them wherever they appear."""
    with _lock:
        _secrets.update(value for value in values if value and len(value) >= 3)


def _mask_bsn(match: re.Match[str]) -> str:
    digits = match.group(1)
    return "*********" if is_valid_bsn(digits) else digits


def redact(text: str) -> str:
    """`text` with secrets replaced by '***' and BSNs, IBANs and e-mail addresses masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    text = _NINE_DIGITS.sub(_mask_bsn, text)
    text = _IBAN.sub("[IBAN]", text)
    return _EMAIL.sub("[e-mail]", text)
