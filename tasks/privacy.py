"""The one place every log line, report, error message and evidence text passes through.

Known secret values are replaced; BSNs (nine digits passing the elfproef), IBANs and e-mail
addresses are masked. The operator log, messages in the store and the trail use `redact`.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tasks.fields import is_valid_bsn

_NINE_DIGITS = re.compile(r"(?<![0-9])([0-9]{9})(?![0-9])")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

_lock = threading.Lock()
_secrets: set[str] = set()


def add_secrets(values: Iterable[str]) -> None:
    """Remember secret values (passwords) so that `redact` replaces them wherever they appear."""
    with _lock:
        _secrets.update(
            form for value in values if value and len(value) >= 3 for form in _written_forms(value)
        )


def _written_forms(secret: str) -> set[str]:
    """The secret as text, and as a form post, a URL, JSON or HTML would write it (a browser
    trace holds all of these: "Demo-2026!" is "Demo-2026%21" in the login's request body)."""
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        html.escape(secret),
    }


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


def redact_archive(source: Path, target: Path) -> int:
    """Copy the zip archive `source` to `target` with every entry's name and text redacted;
    an entry that is not UTF-8 text (an image, a font) cannot be checked and is left out.

    `target` appears whole or not at all (a temporary file, then a rename). Returns how many
    entries were left out.
    """
    temporary = target.with_name(f".{target.name}.tmp")
    left_out = 0
    try:
        with (
            zipfile.ZipFile(source) as original,
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as scrubbed,
        ):
            for entry in original.infolist():
                if entry.is_dir():
                    continue
                try:
                    text = original.read(entry).decode("utf-8")
                except UnicodeDecodeError:
                    left_out += 1
                    continue
                # names too: a resource named by its hash is named the same way where it is used
                info = zipfile.ZipInfo(redact(entry.filename), date_time=entry.date_time)
                info.compress_type = zipfile.ZIP_DEFLATED
                scrubbed.writestr(info, redact(text))
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return left_out
