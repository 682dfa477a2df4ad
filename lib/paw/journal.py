"""The journal of one slide in work: a typed, versioned record, replaced atomically at each step.

It is written *before* each step that changes files, so a run killed at any instant knows where
the slide is and what to finish (see slide.py for the steps). It holds the original name and the
removed values (verification must search for them after a crash too): the staging folder is
private to paw (0700), like the ledger.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from .durable import write_atomic

VERSION = 1
FILE = "job.json"


class State(str, Enum):
    CLAIMING = "claiming"      # moving the members from the inbox into staging
    CLAIMED = "claimed"        # in staging, nothing changed yet: parse and plan
    APPLYING = "applying"      # the plan is journaled: apply it (replayable), verify
    DELIVERING = "delivering"  # outcome and output names decided: move to outbox or quarantine
    RECORDING = "recording"    # delivered: append the ledger row, drop the staging folder


class Status(str, Enum):
    ANONYMIZED = "anonymized"
    QUARANTINED = "quarantined"


@dataclass
class Journal:
    job: str
    original: str               # the main member's path relative to the inbox
    members: list               # every member's path relative to the inbox, main first
    started: float
    kind: str = "file"          # bundle kind: file, mrxs, dicom, vsi
    state: State = State.CLAIMING
    version: int = VERSION
    pseudonym: str = ""
    kept: dict = field(default_factory=dict)   # identifier groups the lab keeps
    size: int = 0
    format: str = ""            # the handler's name
    plan: dict = None           # the handler's plan, serialised
    found: dict = field(default_factory=dict)  # image roles found
    status: Status = None
    reason: str = ""
    destination: str = ""
    names: list = field(default_factory=list)  # delivered names, one per member

    def update(self, stage, **changes):
        """Change fields and write the journal (an unknown field is a bug, not a new key)."""
        for key, value in changes.items():
            if not hasattr(self, key):
                raise AttributeError(f"the journal has no field {key!r}")
            setattr(self, key, value)
        self.save(stage)

    def save(self, stage):
        write_atomic(os.path.join(stage, FILE), json.dumps(asdict(self)).encode("utf-8"))


def load(stage):
    """The journal in a staging folder, or None if there is none (FileNotFoundError passes)."""
    with open(os.path.join(stage, FILE), encoding="utf-8") as fh:
        data = json.load(fh)
    version = data.get("version", 0)
    if version > VERSION:
        raise ValueError(f"journal version {version} is newer than this paw ({VERSION})")
    if version == 0:  # written before the journal had a version: same fields, no kind
        data["kind"] = "dicom" if len(data["members"]) == 1 and _looks_like_folder(stage, data) else \
            "mrxs" if len(data["members"]) == 2 else "file"
        data["version"] = VERSION
    known = {f.name for f in fields(Journal)}
    journal = Journal(**{k: v for k, v in data.items() if k in known})
    journal.state = State(journal.state)
    journal.status = Status(journal.status) if journal.status else None
    return journal


def _looks_like_folder(stage, data):
    return os.path.isdir(os.path.join(stage, os.path.basename(data["members"][0])))
