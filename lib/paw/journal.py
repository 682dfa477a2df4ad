"""The journal of one slide in work: a typed, versioned record, replaced atomically at each step.

It is written *before* each step that changes files, so a run killed at any instant knows where
the slide is and what to finish (see slide.py for the steps). It holds the original name and the
removed values (verification must search for them after a crash too): the staging folder is
private to paw (0700), like the ledger.

Layout of a job's folder (version 2): the journal and paw's other files (`undo/`, a copy in
progress) sit *beside* the slide, whose members are in `slide/`: a slide named `job.json` or
`.paw-partial-x` can never meet one of paw's files. Version 0 and 1 journals (members directly
in the job's folder) are still loaded and finished the way they were started.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from .durable import write_atomic

VERSION = 3  # 2: slide/ and undo/ beside the journal; 3: case, folder
FILE = "job.json"
SLIDE = "slide"                      # the members, under their original names
UNDO = "undo"                        # what rolls the slide back to the scanner's bytes
CLAIM_PARTIAL = ".paw-partial-claim"  # a cross-file-system copy from the inbox in progress


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
    case: str = ""              # the case pseudonym (naming.case); "" without one
    folder: str = ""            # the outbox sub-folder it goes to (outbox_layout mirror)
    size: int = 0
    format: str = ""            # the handler's name
    plan: dict = None           # the handler's plan, serialised
    found: dict = field(default_factory=dict)  # image roles found
    status: Status = None
    reason: str = ""
    destination: str = ""
    names: list = field(default_factory=list)  # delivered names, one per member
    sources: dict = field(default_factory=dict)  # member -> fsops.identity() before the claim
    copies: dict = field(default_factory=dict)   # member index -> [dev, inode] of a finished
    #                                              cross-file-system copy in the destination
    sha256: str = ""            # of the delivered slide (ledger.sha256), made before delivery
    ledger_mark: object = None  # the ledger's position before this job's row (Ledger.mark)

    def slide_folder(self, stage):
        """Where the members are: `slide/` beside the journal (version 2), or the job's folder
        itself for journals of an older paw."""
        return os.path.join(stage, SLIDE) if self.version >= 2 else stage

    def undo_folder(self, stage):
        """The undo log's folder, None for journals of a paw that kept none."""
        return os.path.join(stage, UNDO) if self.version >= 2 else None

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
    if version == 0:  # written before the journal had a version: version 1's layout, no kind
        data["kind"] = "dicom" if len(data["members"]) == 1 and _looks_like_folder(stage, data) else \
            "mrxs" if len(data["members"]) == 2 else "file"
        data["version"] = 1
    known = {f.name for f in fields(Journal)}
    journal = Journal(**{k: v for k, v in data.items() if k in known})
    journal.state = State(journal.state)
    journal.status = Status(journal.status) if journal.status else None
    return journal


def _looks_like_folder(stage, data):
    return os.path.isdir(os.path.join(stage, os.path.basename(data["members"][0])))
