"""Finding slides in the inbox and deciding which have finished arriving.

Size alone does not tell: SMB clients set the full size first, Explorer keeps updating mtime, a
Windows copy may restore an old mtime. A slide is *stable* when the fingerprint of every member
(size, mtime, ctime, inode) is the same in `unchanged_runs` consecutive runs and nothing changed
for `min_age_seconds`. That age is judged by paw's own clock as well as by the file's times: a
client with a clock ahead of the NAS can write an mtime in the future, which would otherwise
make the slide wait forever (paw warns about such a clock). Which files make one slide is
bundle.py's to say.

One bad entry never stops the scan: a folder or file paw cannot read (a permission, a path past
the system's limit) and a special file (FIFO, socket, device: recognised by lstat, never
opened) are skipped and reported as (relative path, reason) for the log and `status`.

Kept cheap: this is all an idle tick does (100,000 waiting files in well under a second), so no
parsing code, and the stability record is a few flat lists.
"""

import fnmatch
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass

from . import bundle
from .durable import write_atomic
from .fsops import special_kind

STATE_FILE = "stability.json"
STATE_VERSION = 2
SKEW_SECONDS = 2.0  # a file time further ahead of paw's clock than this is clock skew


@dataclass(slots=True)
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


def _why(exc):
    return exc.strerror or type(exc).__name__


def _facts(st):
    """size:mtime:ctime:inode as one string, and the newest of mtime/ctime."""
    return (f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}",
            max(st.st_mtime_ns, st.st_ctime_ns) / 1e9)


def _tree_fingerprint(path):
    """Fingerprint and newest change of a folder and everything below it. Every entry counts,
    ignored names too: all of them are claimed with the slide (bundle.contents removes or
    refuses what the format does not need), and a hidden temporary file (rsync writes
    `.NAME.XXXXXX`) means a copy is still arriving. OSError if part of it cannot be read; the
    relative path of a special file in it as the third value (such a folder is not a slide)."""
    fp, newest = _facts(os.lstat(path))
    parts, odd = [fp], None
    stack = [("", path)]
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
        for entry in listed:
            sub = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if special_kind(st.st_mode) and odd is None:
                odd = sub
            fp, change = _facts(st)
            parts.append(f"{sub}={fp}")
            newest = max(newest, change)
            if stat.S_ISDIR(st.st_mode):
                stack.append((sub, entry.path))
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return digest, newest, odd


def _unit_fingerprint(inbox, members, kind, main_facts=None):
    """(fingerprint, newest change, special file inside or None) of a unit: a file, a DICOM
    folder, or an MRXS file plus its folder."""
    main = os.path.join(inbox, members[0])
    if kind == bundle.DICOM:
        return _tree_fingerprint(main)
    fp, change = main_facts or _facts(os.lstat(main))
    if len(members) == 1:
        return fp, change, None
    fp_dir, change_dir, odd = _tree_fingerprint(os.path.join(inbox, members[1]))
    return f"{fp}|{fp_dir}", max(change, change_dir), odd


def still_as_scanned(inbox, unit):
    """Whether the unit is exactly as the scan saw it (a technician may overwrite a slide)."""
    try:
        fingerprint, _, _ = _unit_fingerprint(inbox, unit.members, unit.kind)
    except OSError:
        return False
    return fingerprint == unit.fingerprint


def find_units(inbox, patterns, problems=None):
    """Every slide unit in the inbox, walking sub-folders, skipping ignored names. Entries that
    cannot be read or are special files are skipped; with `problems` (a list) each is added
    as (path relative to the inbox, reason)."""
    units, ignored = [], _ignore_matcher(patterns)
    note = problems.append if problems is not None else (lambda item: None)
    inbox = os.path.normpath(inbox)
    pending = [""]
    while pending:
        prefix = pending.pop()
        folder = os.path.join(inbox, prefix) if prefix else inbox
        files, dirs, facts = [], [], {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if ignored(name):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            dirs.append(name)
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        note((os.path.join(prefix, name), _why(exc)))
                        continue
                    odd = special_kind(st.st_mode)
                    if odd:
                        note((os.path.join(prefix, name), f"{odd}, not a slide file: left alone"))
                        continue
                    files.append(name)
                    facts[name] = _facts(st)
        except OSError as exc:
            note((prefix or ".", _why(exc)))
            continue
        files.sort()
        dirs.sort()
        found, walk = bundle.in_folder(folder, files, dirs)
        for each in found:
            members = tuple(os.path.join(prefix, m) if prefix else m for m in each.members)
            try:
                fingerprint, change, odd = _unit_fingerprint(inbox, members, each.kind,
                                                             facts.get(each.members[0]))
            except FileNotFoundError:
                continue  # vanished while we looked: the next run sees what is there
            except OSError as exc:
                note((members[-1], _why(exc)))
                continue
            if odd:
                note((os.path.join(members[-1], odd), "a FIFO, socket or device inside a slide "
                      "folder: the slide is left alone"))
                continue
            units.append(Unit(members[0], members, each.kind, fingerprint, change))
        pending.extend(os.path.join(prefix, d) if prefix else d for d in reversed(walk))
    return units


def open_for_writing(inbox, unit):
    """Whether a process on this host holds a file of the unit open for writing (a writer that
    keeps the inode open could change the file after paw moved it). Asked with a read lease
    (fcntl F_SETLEASE), which the kernel refuses while anyone has the file open for writing,
    smbd included. Where no lease can be taken (another owner without CAP_LEASE, NFS, FUSE)
    this cannot tell and says False: the stability rule is then all there is."""
    import fcntl
    paths = []
    for member in unit.members:
        path = os.path.join(inbox, member)
        if os.path.isdir(path) and not os.path.islink(path):
            paths += [os.path.join(root, n) for root, _, names in os.walk(path) for n in names]
        else:
            paths.append(path)
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        except BlockingIOError:
            return True
        except OSError:
            continue
        finally:
            os.close(fd)
    return False


class Stability:
    """What the previous run saw of each unit: fingerprint, in how many consecutive runs, and
    since when (paw's clock). Kept in state_dir as flat lists: 100,000 entries load and save
    in a fraction of a second."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, STATE_FILE)
        self.paths, self.fps, self.runs, self.since = [], [], [], []
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") == STATE_VERSION:
                self.paths, self.fps, self.runs, self.since = (
                    data["paths"], data["fps"], data["runs"], data["since"])
        except (OSError, ValueError, AttributeError, KeyError):
            pass  # none yet, or an older paw's: every slide starts counting again
        self.index = {p: i for i, p in enumerate(self.paths)}

    def previous(self, main):
        """(fingerprint, runs, since) of the previous run, or None."""
        i = self.index.get(main)
        return None if i is None else (self.fps[i], self.runs[i], self.since[i])

    def observe(self, units, unchanged_runs, min_age, now=None):
        """Record this run's fingerprints; return (stable units, waiting units, [(unit,
        seconds a file time lies ahead of paw's clock)])."""
        now = time.time() if now is None else now
        paths, fps, runs, since = [], [], [], []
        stable, waiting, skewed = [], [], []
        for unit in units:
            i = self.index.get(unit.main)
            if i is not None and self.fps[i] == unit.fingerprint:
                count, first = self.runs[i] + 1, self.since[i]
            else:
                count, first = 1, int(now)
            paths.append(unit.main)
            fps.append(unit.fingerprint)
            runs.append(count)
            since.append(first)
            ahead = unit.newest_change - now
            if ahead > SKEW_SECONDS:
                skewed.append((unit, ahead))
            # Unchanged for min_age: by the file's own times, or by what paw saw itself.
            age = max(now - unit.newest_change, now - first)
            (stable if count >= unchanged_runs and age >= min_age else waiting).append(unit)
        self.paths, self.fps, self.runs, self.since = paths, fps, runs, since
        self.index = None  # rebuilt on load; not needed after observing
        return stable, waiting, skewed

    def save(self):
        data = {"version": STATE_VERSION, "paths": self.paths, "fps": self.fps,
                "runs": self.runs, "since": self.since}
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8", "surrogateescape"))
