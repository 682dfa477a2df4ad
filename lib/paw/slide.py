"""One slide's way through paw, journaled so that a crash at any instant is finished by the next run.

The journal (journal.py, in `state_dir/staging/<job>/`) is written *before* each step that
changes files, and every step can be repeated:

  claiming    move the members from the inbox into the job's staging folder
  claimed     identify the format, plan the edits (the plan goes into the journal), then
  applying    apply the plan (replayable), verify independently
  delivering  the outcome and the output names are decided; move to outbox or quarantine
  recording   append the ledger row (unless the ledger already has this job), drop the folder

This module never reads or writes a format's bytes: that is the handler's (paw.formats).
"""

import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from . import bundle, durable, formats, fsops, journal, label, naming
from .durable import PARTIAL_PREFIX
from .errors import PawError, SlideRefused
from .inbox import still_as_scanned
from .journal import Journal, State, Status
from .verify import name_values, verify

log = logging.getLogger("paw")


@dataclass
class Outcome:
    status: Status
    original: str
    output: str
    reason: str
    seconds: float
    size: int


def start(config, unit, ledger):
    """Claim and process one stable slide; None if it changed since the scan (next run sees it)."""
    if not still_as_scanned(config.inbox, unit):
        log.info("%s changed since the scan; left for the next run", naming.printable(unit.main))
        return None
    job = uuid.uuid4().hex[:16]
    stage = os.path.join(config.staging, job)
    if not ledger.claim(unit.main, job, stage):
        return None  # another host is on it
    os.makedirs(stage, mode=0o700)
    record = Journal(job=job, original=unit.main, members=list(unit.members), started=time.time(),
                     kind=unit.kind)
    record.save(stage)
    return advance(config, stage, record, ledger)


def resume(config, stage, ledger):
    """Finish a job a previous run left in staging; None if there was nothing to finish."""
    for name in os.listdir(stage):  # copies and journal writes cut short
        if name.startswith(PARTIAL_PREFIX) or name == journal.FILE + ".tmp":
            fsops.remove(os.path.join(stage, name))
    try:
        record = journal.load(stage)
    except FileNotFoundError:
        if os.listdir(stage):  # cannot happen: members move only after the journal exists
            raise SlideRefused(f"staging folder {stage} has files but no journal; check it by hand")
        os.rmdir(stage)  # killed before the first journal write: the slide never left the inbox
        return None
    if not ledger.heartbeat(record.job):
        log.info("%s was taken over by another host", naming.printable(record.original))
        return None
    log.info("resuming %s, interrupted while %s", naming.printable(record.original), record.state.value)
    return advance(config, stage, record, ledger)


def advance(config, stage, record, ledger):
    began = time.monotonic()
    if record.state == State.CLAIMING:
        if not _claim(config, stage, record):
            fsops.remove(stage)
            return None
        record.update(stage, state=State.CLAIMED)
    if record.state in (State.CLAIMED, State.APPLYING):
        ledger.heartbeat(record.job)  # the claim stays fresh through the long steps
        try:
            with time_limit(config.time_limit_seconds):
                _anonymize(config, stage, record)
            record.update(stage, state=State.DELIVERING, status=Status.ANONYMIZED, reason="",
                          destination=config.outbox, names=_output_names(config, record))
        except Exception as exc:  # fail closed: whatever went wrong, the slide is quarantined
            reason = _one_line(exc)
            log.debug("quarantining %s", record.original, exc_info=True)
            record.update(stage, state=State.DELIVERING, status=Status.QUARANTINED, reason=reason,
                          destination=config.quarantine, names=_quarantine_names(config, record))
    if record.state == State.DELIVERING:
        ledger.heartbeat(record.job)
        _deliver(config, stage, record)
        record.update(stage, state=State.RECORDING)
    if record.state == State.RECORDING:
        if record.status == Status.QUARANTINED:
            reason_file = os.path.join(record.destination, record.names[0] + ".reason.txt")
            durable.write_atomic(reason_file, (record.reason + "\n").encode("utf-8"), 0o640)
        if not ledger.has_job(record.job):
            ledger.append(_row(config, record, time.monotonic() - began))
        ledger.release(record.job)
        fsops.remove(stage)
    return Outcome(record.status, record.original, record.names[0], record.reason,
                   time.monotonic() - began, record.size)


@contextlib.contextmanager
def time_limit(seconds):
    """Raise Refused if the block runs longer than `seconds` (parsing a hostile file must not
    hang the run). Uses SIGALRM, so only in the main thread; elsewhere it does nothing."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise SlideRefused(f"took longer than anonymize.time_limit_seconds ({seconds:g} s)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the steps ----------------------------------------------------------------------------------

def _claim(config, stage, record):
    """Move every member into staging; False if the slide vanished before any was claimed."""
    same_device = os.stat(config.inbox).st_dev == os.stat(stage).st_dev
    claimed = 0
    for member in record.members:
        source = os.path.join(config.inbox, member)
        target = os.path.join(stage, os.path.basename(member))
        if os.path.lexists(target):
            claimed += 1
            if os.path.lexists(source) and not same_device:
                fsops.remove(source)  # an interrupted cross-device copy had finished
            continue
        if os.path.lexists(source):
            fsops.move(source, target)
            claimed += 1
    return claimed > 0


def _anonymize(config, stage, record):
    path = os.path.join(stage, os.path.basename(record.original))
    if not os.path.lexists(path):
        raise SlideRefused("the slide file vanished while paw was working on it")
    for member in record.members:
        _refuse_links(os.path.join(stage, os.path.basename(member)))
    record.size = sum(_folder_size(os.path.join(stage, os.path.basename(m))) for m in record.members)
    stem = _stem(record)
    if record.state == State.CLAIMED:
        kept = naming.kept_identifiers(config.naming_pattern, stem)
        pseudonym = naming.new_pseudonym(config.naming_prefix)
        drawn = label.render(pseudonym, label.text_lines(config.label_text, pseudonym, kept)) \
            if label.wanted(config) else None
        handler = formats.identify(path)
        prepared = handler.plan(path, config, pseudonym, drawn)
        record.update(stage, state=State.APPLYING, pseudonym=pseudonym, kept=kept, format=handler.name,
                      plan=prepared.plan.to_json(), found=prepared.found)
    handler = formats.handler(record.format)
    plan = handler.plan_from_json(record.plan)
    plan.apply(path)
    verify(path, handler, plan, config, extra_values=name_values(stem))


def _stem(record):
    """The original name without extension (a folder's whole name)."""
    name = os.path.basename(record.original)
    return name if record.kind == bundle.DICOM else fsops.split_ext(name)[0]


def _output_names(config, record):
    """The pseudonym for every member: `P.mrxs` and its folder `P`, or just `P.svs`."""
    name = os.path.basename(record.original)
    extension = "" if record.kind == bundle.DICOM else fsops.split_ext(name)[1]
    pseudonym = record.pseudonym or naming.new_pseudonym(config.naming_prefix)
    stem = fsops.split_ext(naming.render(config.naming_template, pseudonym, record.kept, extension))[0]
    return fsops.free_names(config.outbox, bundle.member_names(record.kind, stem, extension))


def _quarantine_names(config, record):
    """Members keep their names (the technician recognises them)."""
    return fsops.free_names(config.quarantine, [os.path.basename(m) for m in record.members])


def _deliver(config, stage, record):
    for i, member in enumerate(record.members):
        source = os.path.join(stage, os.path.basename(member))
        target = os.path.join(record.destination, record.names[i])
        if not os.path.lexists(source):
            continue  # delivered before an interruption
        if os.path.lexists(target):
            if os.stat(stage).st_dev != os.stat(record.destination).st_dev:
                fsops.remove(source)  # an interrupted cross-device copy had completed
                continue
            # Not ours (a rename leaves no source behind): take another name.
            names = _output_names(config, record) if record.status == Status.ANONYMIZED \
                else _quarantine_names(config, record)
            record.update(stage, names=names)
            target = os.path.join(record.destination, record.names[i])
        fsops.move(source, target)
        if record.status == Status.ANONYMIZED:
            _inherit_group(target, record.destination)
def _folder_size(path):
    """Bytes of a file, or of every file below a folder."""
    if not os.path.isdir(path):
        return os.lstat(path).st_size
    return sum(os.lstat(os.path.join(root, f)).st_size for root, _, files in os.walk(path) for f in files)


def _refuse_links(path):
    """paw edits files in place: a hard link would carry the edit to a name outside the inbox,
    a symlink inside a slide folder would lead outside it."""
    entries = [path] + ([os.path.join(root, n) for root, dirs, files in os.walk(path) for n in dirs + files]
                        if os.path.isdir(path) and not os.path.islink(path) else [])
    for entry in entries:
        info = os.lstat(entry)
        if os.path.islink(entry):
            raise SlideRefused("symbolic link refused: paw only anonymizes files inside the inbox")
        if not os.path.isdir(entry) and info.st_nlink > 1:
            raise SlideRefused("hard-linked file refused: editing it would also change its other names")


def _inherit_group(path, folder):
    """In a setgid outbox new files get the share's group; a moved file keeps its old one, so
    paw sets it the same way (researchers read the outbox through that group). paw never
    changes the folder itself."""
    info = os.stat(folder)
    if not info.st_mode & 0o2000:
        return
    paths = [path] + [os.path.join(root, n) for root, dirs, files in os.walk(path) for n in dirs + files]
    for each in paths:
        if os.lstat(each).st_gid != info.st_gid:
            try:
                os.chown(each, -1, info.st_gid, follow_symlinks=False)
            except OSError as exc:
                log.warning("could not give %s the outbox's group: %s", os.path.basename(each), exc.strerror)


def _row(config, record, seconds):
    digest = ""
    if config.ledger_sha256 and record.status == Status.ANONYMIZED:
        digest = sha256([os.path.join(record.destination, n) for n in record.names])
    return {
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job": record.job, "status": record.status.value, "original": record.original,
        "output": record.names[0],
        "format": record.format,
        "kept": "; ".join(f"{k}={v}" for k, v in record.kept.items()),
        "removed": "; ".join(dict.fromkeys(record.plan["actions"])) if record.plan else "",
        "bytes": record.size or "", "seconds": f"{seconds:.3f}",
        "error": record.reason, "sha256": digest,
    }


def sha256(paths):
    """SHA-256 of a delivered slide. One file: of its bytes (what `sha256sum` prints). A slide
    of several members or a folder (MRXS, DICOM): of every file's relative name and bytes, in
    sorted order, so the digest covers the whole slide."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(root, n) for root, _, names in os.walk(path) for n in names]
        else:
            files.append(path)
    named = len(files) > 1 or files != list(paths)
    base = os.path.dirname(paths[0])
    digest = hashlib.sha256()
    for path in sorted(files):
        if named:
            digest.update(os.path.relpath(path, base).encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _one_line(exc):
    if isinstance(exc, PawError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or 'I/O error'} (errno {exc.errno})"
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300]
