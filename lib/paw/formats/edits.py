"""A plan of byte edits to one file: writes at offsets and ranges to zero. TIFF slides, the
iSyntax header and every file of an MRXS slide are anonymized this way, in place."""

import os
from dataclasses import dataclass, field

from ..sparse import nonzero_blocks
from . import undo as undo_log
from .base import Plan


@dataclass
class EditPlan(Plan):
    """Edits to apply to one file: absolute, idempotent, and serialisable for the journal."""
    writes: list = field(default_factory=list)   # (offset, bytes)
    zeros: list = field(default_factory=list)    # (offset, length)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    kept_data: list = field(default_factory=list)  # (offset, length) of kept image payload
    blanked: list = field(default_factory=list)    # payload of kept directories, zeroed
    added: list = field(default_factory=list)      # image data paw appended (a drawn label)
    layout: list = field(default_factory=list)     # (offset, length) of kept tile/strip tables

    def to_json(self):
        return {"writes": [[o, b.hex()] for o, b in self.writes], "zeros": self.zeros,
                "removed": self.removed, "actions": self.actions, "kept_data": self.kept_data,
                "blanked": self.blanked, "added": self.added, "layout": self.layout}

    @classmethod
    def from_json(cls, data):
        pairs = lambda key: [tuple(x) for x in data.get(key, [])]  # noqa: E731
        return cls([(o, bytes.fromhex(h)) for o, h in data["writes"]], pairs("zeros"),
                   data["removed"], data["actions"], pairs("kept_data"), pairs("blanked"),
                   pairs("added"), pairs("layout"))

    def apply(self, path, undo=None):
        """Write every edit and fsync. Replaying a plan on a partly edited file finishes it.
        With `undo`, the original bytes are kept there first (see keep_originals).

        Zero ranges are cleared only where they hold data: holes are skipped and blocks that
        already read as zeros are not rewritten, so a replay, or a sparse gap of gigabytes,
        costs (almost) nothing.
        """
        if undo is not None:
            self.keep_originals(path, undo)
        fd = os.open(path, os.O_RDWR)
        try:
            for offset, data in self.writes:
                os.pwrite(fd, data, offset)
            for offset, length in self.zeros:
                for start, block in nonzero_blocks(fd, offset, length):
                    os.pwrite(fd, bytes(len(block)), start)
            os.fsync(fd)
        finally:
            os.close(fd)

    def keep_originals(self, path, undo, budget=None):
        """Save what rollback needs into the folder `undo`: the bytes under every write, the
        non-zero data of every range to zero, the size; at most `budget` bytes (undo.LIMIT).
        Returns the bytes kept (a committed log is not saved again)."""
        return undo_log.RangeLog(undo).save(path, [(o, len(d)) for o, d in self.writes], self.zeros,
                                            undo_log.LIMIT if budget is None else budget)

    def rollback(self, path, undo):
        undo_log.RangeLog(undo).restore(path)

    def changes(self, path):
        """Whether a write differs from the bytes it covers or a range to zero holds data."""
        fd = os.open(path, os.O_RDONLY)
        try:
            for offset, data in self.writes:
                if os.pread(fd, len(data), offset) != data:
                    return True
            return any(True for offset, length in self.zeros for _ in nonzero_blocks(fd, offset, length))
        finally:
            os.close(fd)

    def summary(self):
        zeroed = sum(length for _, length in self.zeros)
        return (f"zero {zeroed} unreferenced bytes in {len(self.zeros)} places; rewrite "
                f"{len(self.writes)} directory/value spans; image data untouched")


def keep_originals(base, plans, undo):
    """For a plan over several files ({path relative to `base`: EditPlan}: MRXS, VSI): each
    file's originals in `undo/file-N`, all of them within one undo.LIMIT. Returns what is
    left of the budget."""
    budget = undo_log.LIMIT
    for i, (rel, plan) in enumerate(plans.items()):
        budget -= plan.keep_originals(os.path.join(base, rel), os.path.join(undo, f"file-{i}"), budget)
    return budget


def roll_back(base, plans, undo):
    """Undo `keep_originals` + apply for every file of such a plan."""
    for i, rel in enumerate(plans):
        undo_log.RangeLog(os.path.join(undo, f"file-{i}")).restore(os.path.join(base, rel))
