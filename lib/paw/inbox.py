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
from .fsops import REASON_SUFFIX, ownership, paws_user, special_kind

STATE_FILE = "stability.json"
STATE_VERSION = 2
SKEW_SECONDS = 2.0  # a file time further ahead of paw's clock than this is clock skew
REASON_FILE_MAX = 4096  # paw's reason files are one line; a larger file of that name is not one


@dataclass(slots=True)
class Unit:
    """One slide as it sits in the inbox: its main file and every member path (relative)."""
    main: str
    members: tuple
    kind: str              # bundle kind: file, mrxs, dicom, vsi, loose-dicom, folder
    fingerprint: int
    newest_change: float   # latest mtime/ctime over the members, in seconds


def _ignore_matcher(patterns):
    """One compiled regex for all ignore patterns and paw's own reason files: the inbox walk
    calls it for every name. A reason file (`NAME.reason.txt`, which comes along when a
    technician moves a quarantined slide back to try again) is never a slide: its match's
    `lastgroup` is "reason"."""
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    parts.append(f"(?P<reason>(?s:.*){re.escape(REASON_SUFFIX)})\\Z")
    return re.compile("|".join(parts)).match


def _why(exc):
    return exc.strerror or type(exc).__name__


def _facts(st):
    """A 64-bit fingerprint of (size, mtime, ctime, inode) and the newest of mtime/ctime.
    Python's hash of a tuple of integers is fixed (unlike that of text, it is not seeded per
    process); an int is a third the memory of the same facts as text, for 100,000 files."""
    return (hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)),
            max(st.st_mtime_ns, st.st_ctime_ns) / 1e9)


def _tree_fingerprint(path):
    """Fingerprint and newest change of a folder and everything below it. Every entry counts,
    ignored names too: all of them are claimed with the slide (bundle.contents removes or
    refuses what the format does not need), and a hidden temporary file (rsync writes
    `.NAME.XXXXXX`) means a copy is still arriving. OSError if part of it cannot be read; the
    relative path of a special file in it as the third value (such a folder is not a slide)."""
    fp, newest = _facts(os.lstat(path))
    parts, odd = [str(fp)], None
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
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big", signed=True), newest, odd


def _unit_fingerprint(inbox, members, kind):
    """(fingerprint, newest change, special file inside or None) of a unit: a file, a DICOM
    folder, or an MRXS file plus its folder."""
    main = os.path.join(inbox, members[0])
    if kind in (bundle.DICOM, bundle.FOLDER):
        return _tree_fingerprint(main)
    fp, change = _facts(os.lstat(main))
    if len(members) == 1:
        return fp, change, None
    fp_dir, change_dir, odd = _tree_fingerprint(os.path.join(inbox, members[1]))
    return hash((fp, fp_dir)), max(change, change_dir), odd


def still_as_scanned(inbox, unit):
    """Whether the unit is exactly as the scan saw it (a technician may overwrite a slide)."""
    try:
        fingerprint, _, _ = _unit_fingerprint(inbox, unit.members, unit.kind)
    except OSError:
        return False
    return fingerprint == unit.fingerprint


def find_units(inbox, patterns, problems=None):
    """Every slide unit in the inbox (see scan), as a list."""
    return list(scan(inbox, patterns, problems))


def scan(inbox, patterns, problems=None, reasons=None):
    """Yield every slide unit in the inbox, walking sub-folders, skipping ignored names.
    Entries that cannot be read or are special files are skipped; with `problems` (a list)
    each is added as (path relative to the inbox, reason). With `reasons` (a list), the
    relative path of every reason file (`NAME.reason.txt`) is added: never a slide, removed by
    the run once its slide is gone (tidy_reason_files). Written for 100,000 files: the
    listing uses the directory's own file types (no system call per name), one lstat per
    slide, nothing kept per file but what the caller keeps."""
    ignored = _ignore_matcher(patterns)
    note = problems.append if problems is not None else (lambda item: None)
    inbox = os.path.normpath(inbox)
    pending = [("", False)]
    lstat, join, file_kind = os.lstat, os.path.join, bundle.FILE  # local names: a tight loop
    while pending:
        prefix, loose = pending.pop()
        folder = join(inbox, prefix) if prefix else inbox
        files, dirs = [], []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    match = ignored(name)
                    if match:
                        if match.lastgroup == "reason" and reasons is not None \
                                and entry.is_file(follow_symlinks=False):
                            reasons.append(join(prefix, name))
                        continue
                    try:
                        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                            files.append(name)
                        elif entry.is_dir(follow_symlinks=False):
                            dirs.append(name)
                        else:
                            kind = special_kind(entry.stat(follow_symlinks=False).st_mode) or "not a file"
                            note((join(prefix, name), f"{kind}, not a slide file: left alone"))
                    except OSError as exc:
                        note((join(prefix, name), _why(exc)))
        except OSError as exc:
            note((prefix or ".", _why(exc)))
            continue
        files.sort()
        dirs.sort()
        found, walk = bundle.in_folder(folder, files, dirs, loose)
        here = folder + os.sep
        relative = prefix + os.sep if prefix else ""
        for kind, names in found:
            members = tuple(relative + m for m in names) if relative else names
            try:
                if kind == file_kind:  # the common case, _facts inlined: 100,000 times per tick
                    st = lstat(here + names[0])
                    fingerprint = hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                    change = (st.st_mtime_ns if st.st_mtime_ns > st.st_ctime_ns else st.st_ctime_ns) / 1e9
                    odd = None
                else:
                    fingerprint, change, odd = _unit_fingerprint(inbox, members, kind)
            except FileNotFoundError:
                continue  # vanished while we looked: the next run sees what is there
            except OSError as exc:
                note((members[-1], _why(exc)))
                continue
            if odd:
                note((join(members[-1], odd), "a FIFO, socket or device inside a slide folder: "
                      "the slide is left alone"))
                continue
            yield Unit(members[0], members, kind, fingerprint, change)
        pending.extend((join(prefix, d.name) if prefix else d.name, d.loose) for d in reversed(walk))


def tidy_reason_files(inbox, reasons):
    """Remove the reason files (scan's `reasons`) whose slide is no longer beside them: it was
    claimed in this run, or the file came back alone. Only what paw writes there (a small plain
    file holding one line of UTF-8 text): anything else under such a name stays, ignored, for a
    person to look at. Returns the paths removed."""
    removed = []
    for rel in reasons:
        path = os.path.join(inbox, rel)
        if os.path.lexists(path[:-len(REASON_SUFFIX)]):
            continue  # its slide is still waiting: it goes once the slide is claimed
        try:
            if _written_by_paw(path):
                os.unlink(path)
                removed.append(rel)
        except OSError:
            pass  # gone already, or not ours to remove: it stays ignored
    return removed


def _written_by_paw(path):
    """Whether a reason file holds what paw writes: one line of UTF-8 text, nothing binary."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > REASON_FILE_MAX:
            return False
        data = os.read(fd, REASON_FILE_MAX + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.endswith("\n") and "\n" not in text[:-1] and "\0" not in text


def _can_write(path, need=os.W_OK):
    """As the kernel would judge paw's effective user (ACLs and read-only mounts included)."""
    return os.access(path, need, effective_ids=os.access in os.supports_effective_ids)


def unwritable(inbox, unit):
    """What would keep paw's user from taking the unit and editing it, as one phrase naming
    the file or folder, its owner and mode; None when nothing does. Claiming renames each
    member out of its folder (write on that folder; on a folder member itself, too, for its
    `..`; with the sticky bit, owning the file or the folder), and the edit writes the files.
    Asked before the claim, so a slide paw could not finish never leaves the inbox: a scan
    saved 0644 by another user would otherwise be claimed and then fail its edit."""
    euid = os.geteuid()
    for member in unit.members:
        path = os.path.join(inbox, member)
        parent = os.path.dirname(path)
        info, folder = os.lstat(path), os.stat(parent)
        sticky = folder.st_mode & stat.S_ISVTX and euid not in (0, info.st_uid, folder.st_uid)
        if sticky or not _can_write(parent, os.W_OK | os.X_OK):
            where = os.path.relpath(parent, inbox)
            return (f"{paws_user()} cannot move it out of the folder "
                    f"{'the inbox' if where == '.' else where} ({ownership(parent)})")
        files = [path]
        if stat.S_ISDIR(info.st_mode):
            files += [os.path.join(root, n) for root, dirs, names in os.walk(path) for n in dirs + names]
        for each in files:
            if not os.path.islink(each) and not _can_write(each):
                return f"{paws_user()} cannot write {os.path.relpath(each, inbox)} ({ownership(each)})"
    return None


def open_for_writing(inbox, unit, blind=None):
    """Whether a process on this host holds a file of the unit open for writing (a writer that
    keeps the inode open could change the file after paw moved it). Asked with a read lease
    (fcntl F_SETLEASE), which the kernel refuses while anyone has the file open for writing,
    smbd included. The kernel grants a lease only on a file whose owner is the process's file
    system user, or to a process with CAP_LEASE (fcntl(2)); elsewhere (another owner without
    CAP_LEASE, NFS, FUSE) this cannot tell and says False: the stability rule is then all
    there is. With `blind` (a list), the owner's uid of each file the kernel refused a lease
    for lack of that right is added, so the run can say the check is not being made."""
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
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                continue
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        except BlockingIOError:
            return True
        except PermissionError:  # EACCES: not the owner, no CAP_LEASE
            if blind is not None:
                blind.append(info.st_uid)
            continue
        except OSError:
            continue
        finally:
            os.close(fd)
    return False


class Stability:
    """What the previous run saw of each unit: fingerprint, in how many consecutive runs, and
    since when (paw's clock). Kept in state_dir as four flat lists: 100,000 entries load and
    save in a fraction of a second and a few tens of MB."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, STATE_FILE)
        self.paths, self.fps, self.runs, self.since = [], [], [], []
        self.waiting = []
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read())
            if data.get("version") == STATE_VERSION:
                self.paths, self.fps, self.runs, self.since = (
                    data["paths"], data["fps"], data["runs"], data["since"])
        except (OSError, ValueError, AttributeError, KeyError):
            pass  # none yet, or an older paw's: every slide starts counting again
        self._index = None

    def _find(self, main):
        """Position of `main` in the previous run's lists (an index made on first need)."""
        if self._index is None:
            self._index = {p: i for i, p in enumerate(self.paths)}
        return self._index.get(main)

    def previous(self, main):
        """(fingerprint, runs, since) of the previous run, or None."""
        i = self._find(main)
        return None if i is None else (self.fps[i], self.runs[i], self.since[i])

    def observe(self, units, unchanged_runs, min_age, now=None, keep=0):
        """Record this run's fingerprints of `units` (any iterable: the scan is consumed as it
        goes); return (stable units, number waiting, [(unit, seconds a file time lies ahead
        of paw's clock)]). The first `keep` waiting units are kept in `self.waiting` (for the
        status page; the others are only counted)."""
        now = time.time() if now is None else now
        today = int(now)
        old_paths, old_fps, old_runs, old_since = self.paths, self.fps, self.runs, self.since
        known = len(old_paths)
        paths, fps, runs, since = [], [], [], []
        add_path, add_fp, add_runs, add_since = paths.append, fps.append, runs.append, since.append
        stable, skewed, waiting, expected = [], [], 0, 0
        self.waiting = kept = []
        for unit in units:  # 100,000 times per tick: kept tight
            # The scan's order is the previous run's: look where the last match ended first,
            # and only build an index when the inbox changed.
            if expected < known and old_paths[expected] == unit.main:
                i = expected
            else:
                i = self._find(unit.main)
            if i is not None:
                expected = i + 1
            if i is not None and old_fps[i] == unit.fingerprint:
                add_path(old_paths[i])  # the previous run's objects: one copy in memory
                add_fp(old_fps[i])
                count, first = old_runs[i] + 1, old_since[i]
            else:
                add_path(unit.main)
                add_fp(unit.fingerprint)
                count, first = 1, today
            add_runs(count)
            add_since(first)
            newest = unit.newest_change
            if newest > now + SKEW_SECONDS:
                skewed.append((unit, newest - now))
            # Unchanged for min_age: by the file's own times, or by what paw saw itself.
            if count >= unchanged_runs and now - (newest if newest < first else first) >= min_age:
                stable.append(unit)
            else:
                waiting += 1
                if waiting <= keep:
                    kept.append(unit)
        self.paths, self.fps, self.runs, self.since = paths, fps, runs, since
        self._index = None
        return stable, waiting, skewed

    def present(self):
        """{main: fingerprint} of what the last observe saw."""
        return dict(zip(self.paths, self.fps))

    def save(self):
        data = {"version": STATE_VERSION, "paths": self.paths, "fps": self.fps,
                "runs": self.runs, "since": self.since}
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode("ascii"))
