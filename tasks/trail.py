"""The audit trail of a run: one canonical JSON record per event in runs/<run-id>/audit.jsonl.

Field names follow the Logboek Dataverwerkingen standard (trace_id, operation_id,
parent_operation_id, name, start_time, end_time, status_code, resource, attributes with
dpl.core.*) and the BIO's (actor, action, object, result, origin). The person is never in the
clear: `dpl.core.data_subject_id` is an HMAC of the BSN under the municipality's key.
Writing is synchronous; the file is fsynced at every item boundary, and a record that cannot
be written stops the run (fail closed).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks import __version__
from tasks.errors import AuditError
from tasks.privacy import redact
from tasks.signing import Signer, checkpoint_message

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


def new_trace_id() -> str:
    """16 random bytes, hex: one per run."""
    return secrets.token_hex(16)


def new_operation_id() -> str:
    """8 random bytes, hex: one per item and per action."""
    return secrets.token_hex(8)


def canonical(record: Mapping[str, Any]) -> str:
    """Canonical JSON: sorted keys, no NaN or Infinity, UTF-8 characters as they are."""
    return json.dumps(
        record,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )


GENESIS_HASH = "0" * 64


def record_hash(line: bytes) -> str:
    """SHA-256 of one record as written (its canonical JSON, without the newline)."""
    return hashlib.sha256(line).hexdigest()


def pseudonym(bsn: str, key: bytes) -> str:
    """The data subject id of a person: HMAC-SHA256 of the BSN, hex."""
    return hmac.new(key, bsn.encode("ascii"), hashlib.sha256).hexdigest()


class Trail:
    """Append-only writer of one run's audit.jsonl."""

    def __init__(
        self,
        path: Path,
        *,
        run_id: str,
        trace_id: str,
        task: str,
        definition_sha256: str,
        app: str,
        processing_activity: str,
        legal_basis: str,
        actor: str,
        subject_key: bytes,
        signer: Signer | None = None,
        checkpoint_every: int = 500,
        checkpoint_seconds: float = 60.0,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.trace_id = trace_id
        self.task = task
        self.definition_sha256 = definition_sha256
        self.processing_activity = processing_activity
        self.legal_basis = legal_basis
        self.actor = actor
        self._subject_key = subject_key
        self._resource = {
            "service.name": "klerk",
            "service.version": __version__,
            "host.name": socket.gethostname(),
            "klerk.app": app,
        }
        self.seq, self.last_hash = self._last_record()
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = checkpoint_seconds
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise AuditError(f"cannot open the audit trail {path}: {exc.strerror}") from None

    def _last_record(self) -> tuple[int, str]:
        """Sequence number and hash of the last record already in the file (a resumed run)."""
        if not self.path.exists():
            return 0, GENESIS_HASH
        seq, last_hash = 0, GENESIS_HASH
        with self.path.open("rb") as existing:
            for line in existing:
                try:
                    seq = int(json.loads(line)["klerk.seq"])
                except (ValueError, KeyError, TypeError):
                    raise AuditError(
                        f"the audit trail {self.path} has an unreadable record after seq {seq}; "
                        "check it with `klerk audit verify` before resuming"
                    ) from None
                last_hash = record_hash(line.rstrip(b"\n"))
        return seq, last_hash

    def subject_id(self, bsn: str | None) -> str | None:
        """The pseudonym of a BSN (None when the item concerns nobody)."""
        return pseudonym(bsn, self._subject_key) if bsn else None

    def record(
        self,
        name: str,
        *,
        operation_id: str | None = None,
        parent: str | None = None,
        start: float | None = None,
        end: float | None = None,
        status: int = STATUS_OK,
        action: str = "",
        obj: str = "",
        result: str = "",
        item_key: str | None = None,
        subject: str | None = None,
        extra: Mapping[str, Any] | None = None,
        facts: Mapping[str, Any] | None = None,
        sync: bool = False,
    ) -> str:
        """Write one record and return its operation id. Raises AuditError when it cannot."""
        now = time.time()
        self.seq += 1
        operation_id = operation_id or new_operation_id()
        attributes: dict[str, Any] = {
            "dpl.core.processing_activity_id": self.processing_activity,
            "dpl.core.legal_basis": self.legal_basis,
            "klerk.run_id": self.run_id,
            "klerk.task": self.task,
            "klerk.definition_sha256": self.definition_sha256,
            "bio.actor": self.actor,
            "bio.action": action or name,
            "bio.object": redact(obj),
            "bio.result": redact(result),
            "bio.origin": self._resource["host.name"],
        }
        if item_key is not None:
            attributes["klerk.item_key"] = redact(item_key)
        if subject:
            attributes["dpl.core.data_subject_id"] = self.subject_id(subject)
        for key, value in (extra or {}).items():
            attributes[key] = redact(value) if isinstance(value, str) else value
        # hashes, signatures and ids: never masked (a run of hex digits can look like a BSN)
        attributes.update(facts or {})
        record = {
            "trace_id": self.trace_id,
            "operation_id": operation_id,
            "parent_operation_id": parent,
            "name": name,
            "start_time": int((start or now) * 1000),
            "end_time": int((end or now) * 1000),
            "status_code": status,
            "resource": {"attributes": self._resource},
            "attributes": attributes,
            "klerk.seq": self.seq,
            "klerk.wall_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "klerk.monotonic": round(time.monotonic(), 6),
            "klerk.prev_hash": self.last_hash,
        }
        _check_finite(record)
        line = canonical(record).encode("utf-8")
        self._append(line + b"\n", sync=sync)
        self.last_hash = record_hash(line)
        self._since_checkpoint += 1
        if name != "checkpoint" and self._checkpoint_due():
            self.checkpoint()
        return operation_id

    def _append(self, data: bytes, *, sync: bool) -> None:
        """Write one whole record or nothing: a partly written record (disk full) is cut off
        again, so that the trail stays a verifiable prefix of what happened."""
        if self._fd is None:
            raise AuditError(f"the audit trail {self.path} is closed; the run stops")
        size = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if sync:
                os.fsync(self._fd)
        except OSError as exc:
            self.seq -= 1
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise AuditError(
                f"cannot write the audit trail {self.path}: {exc.strerror or exc}; the run "
                "stops before its next action (free space or fix permissions, then "
                "`klerk resume`)"
            ) from None

    def _checkpoint_due(self) -> bool:
        if self._signer is None:
            return False
        return (
            self._since_checkpoint >= self._checkpoint_every
            or time.monotonic() - self._checkpoint_at >= self._checkpoint_seconds
        )

    def checkpoint(self) -> None:
        """Seal everything written so far: a record holding the signed hash of the one before.

        Written at run end and every N records or M seconds, so that a crashed run can be
        verified up to its last checkpoint.
        """
        if self._signer is None:
            return
        sealed = self.last_hash
        message = checkpoint_message(self.run_id, self.seq + 1, sealed)
        self.record(
            "checkpoint",
            action="seal",
            obj=f"trail of run {self.run_id}",
            facts={
                "klerk.checkpoint.sealed_hash": sealed,
                "klerk.checkpoint.key_id": self._signer.key_id,
                "klerk.checkpoint.signature": self._signer.sign(message),
            },
            sync=True,
        )
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()

    def sync(self) -> None:
        """Fsync: called at every item boundary."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise AuditError(f"cannot sync the audit trail {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Sync and close."""
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None


def _check_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise AuditError("a trail record holds NaN or Infinity")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
