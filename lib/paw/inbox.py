"""Finding slides in the inbox and deciding which have finished arriving.

Size alone does not tell: SMB clients set the full size first, Explorer keeps updating mtime, a
Windows copy may restore an old mtime. A slide is *stable* when the fingerprint of every member
(size, mtime, ctime, inode) is the same in `unchanged_runs` consecutive runs and nothing changed
for `min_age_seconds` (ctime counts: clients cannot set it). Which files make one slide is
bundle.py's to say.
"""

import fnmatch
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

from . import bundle
from .durable import write_atomic

STATE_FILE = "stability.json"


@dataclass
class Unit:
    """One slide as it sits in the inbox: its main file and every member path (relative)."""
    main: str
    members: tuple
    kind: str              # bundle kind: file, mrxs, dicom, vsi
    fingerprint: str
    newest_change: float   # latest mtime/ctime over the members, in seconds


def _ignore_matcher(patterns):
    """One compiled regex for all ignore patterns: the inbox walk calls it for every name."""
    if not patterns:
        return lambda name: False
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def _fingerprint(path):
    """size:mtime:ctime:inode as one string (cheap to store and compare for 10,000 files)."""
    st = os.lstat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}", max(st.st_mtime, st.st_ctime)


def _tree_fingerprint(path):
    """Every entry below a slide folder counts, ignored names too: all of them are claimed with
    the slide (bundle.contents removes or refuses what the format does not need), and a hidden
    temporary file (rsync writes `.NAME.XXXXXX`) means a copy is still arriving."""
    fp, newest = _fingerprint(path)
    parts = [fp]
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in dirs + sorted(files):
            full = os.path.join(root, name)
            fp, change = _fingerprint(full)
            parts.append(f"{os.path.relpath(full, path)}={fp}")
            newest = max(newest, change)
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest(), newest


def _unit_fingerprint(inbox, members, kind):
    """Fingerprint and newest change of a unit: a file, a DICOM folder, or an MRXS file plus
    its folder."""
    main = os.path.join(inbox, members[0])
    if kind == bundle.DICOM:
        return _tree_fingerprint(main)
    fp, change = _fingerprint(main)
    if len(members) == 1:
        return fp, change
    fp_dir, change_dir = _tree_fingerprint(os.path.join(inbox, members[1]))
    return f"{fp}|{fp_dir}", max(change, change_dir)


def still_as_scanned(inbox, unit):
    """Whether the unit is exactly as the scan saw it (a technician may overwrite a slide)."""
    try:
        fingerprint, _ = _unit_fingerprint(inbox, unit.members, unit.kind)
    except FileNotFoundError:
        return False
    return fingerprint == unit.fingerprint


def find_units(inbox, patterns):
    """Every slide unit in the inbox, walking sub-folders, skipping ignored names."""
    units, ignored = [], _ignore_matcher(patterns)
    inbox = os.path.normpath(inbox)
    for root, dirs, files in os.walk(inbox):
        prefix = root[len(inbox) + 1:]
        dirs[:] = sorted(d for d in dirs if not ignored(d))
        found, dirs[:] = bundle.in_folder(root, sorted(f for f in files if not ignored(f)), dirs)
        for each in found:
            members = tuple(os.path.join(prefix, m) if prefix else m for m in each.members)
            try:
                fingerprint, change = _unit_fingerprint(inbox, members, each.kind)
            except FileNotFoundError:
                continue  # vanished while we looked: the next run sees what is there
            units.append(Unit(members[0], members, each.kind, fingerprint, change))
    return units


class Stability:
    """The per-path fingerprints of the previous run, kept in state_dir."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, STATE_FILE)
        try:
            with open(self.path, encoding="utf-8") as fh:
                self.seen = json.load(fh)
        except (OSError, ValueError):
            self.seen = {}

    def observe(self, units, unchanged_runs, min_age, now=None):
        """Record this run's fingerprints; return (stable units, waiting units)."""
        now = time.time() if now is None else now
        seen, stable, waiting = {}, [], []
        for unit in units:
            fingerprint = unit.fingerprint
            previous = self.seen.get(unit.main)
            runs = previous["runs"] + 1 if previous and previous["fp"] == fingerprint else 1
            seen[unit.main] = {"fp": fingerprint, "runs": runs}
            ready = runs >= unchanged_runs and now - unit.newest_change >= min_age
            (stable if ready else waiting).append(unit)
        self.seen = seen
        return stable, waiting

    def save(self):
        write_atomic(self.path, json.dumps(self.seen).encode("utf-8"))
