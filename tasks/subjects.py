"""Finding everything klerk did to one person: trail records whose pseudonym matches the BSN's.

Only someone holding the municipality's subject key can compute the pseudonym, so the trail
can be searched by person without holding any BSN in the clear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.trail import pseudonym


@dataclass(frozen=True)
class SubjectRecord:
    """One trail record that concerned the person."""

    run_id: str
    task: str
    item_key: str
    name: str
    action: str
    obj: str
    result: str
    wall_time: str
    processing_activity: str
    legal_basis: str


def records_about(runs_dir: Path, bsn: str, key: bytes) -> Iterator[SubjectRecord]:
    """Every trail record under `runs_dir` about the person with this BSN, oldest run first."""
    wanted = pseudonym(bsn, key)
    for trail in sorted(runs_dir.glob("*/audit.jsonl")):
        with trail.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if wanted not in line:  # cheap filter before parsing
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                attributes = record.get("attributes", {})
                if attributes.get("dpl.core.data_subject_id") != wanted:
                    continue
                yield SubjectRecord(
                    run_id=str(attributes.get("klerk.run_id", trail.parent.name)),
                    task=str(attributes.get("klerk.task", "")),
                    item_key=str(attributes.get("klerk.item_key", "")),
                    name=str(record.get("name", "")),
                    action=str(attributes.get("bio.action", "")),
                    obj=str(attributes.get("bio.object", "")),
                    result=str(attributes.get("bio.result", "")),
                    wall_time=str(record.get("klerk.wall_time", "")),
                    processing_activity=str(attributes.get("dpl.core.processing_activity_id", "")),
                    legal_basis=str(attributes.get("dpl.core.legal_basis", "")),
                )
