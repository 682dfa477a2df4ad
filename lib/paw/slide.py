"""One slide's way through paw, journaled so that a crash at any instant is finished by the next run.

A job's folder `state_dir/staging/<job>/` holds the journal (journal.py), paw's other files
(`undo/`, a copy in progress) and, in `slide/`, the slide's members under their own names: no
slide name can meet one of paw's files. The journal is written *before* each step that changes
files, and every step can be repeated:

  claiming    each member's identity (inode, size, times) is journaled, then the members move
              from the inbox into `slide/`; a source is removed only if it is provably the file
              that was copied (a scan saved again under the same name stays in the inbox)
  claimed     identify the format; decide the names (pseudonyms, kept groups, outbox folder);
              plan the edits (names and plan go into the journal before anything uses them), then
  applying    apply the plan (replayable), keeping the original bytes of every range it
              overwrites in `undo/` first; verify independently; hash (ledger.sha256) — all
              inside the time limit
  delivering  the outcome and the output names are decided; a quarantined slide is first rolled
              back to the scanner's bytes; move to outbox or quarantine (a cross-file-system
              copy's inode is journaled before it takes its name, so only paw's copy is trusted)
  recording   the reason file (never over an existing file), the ledger row (unless the ledger
              already has this job), drop the folder

A slide that cannot be claimed (a permission, a name the system refuses) is put back as it was
and raises ClaimFailed: the job counts the attempt and, after a few, leaves the slide alone
until it changes. This module never reads or writes a format's bytes: that is the handler's
(paw.formats).
"""

import contextlib
import hashlib
import logging
import os
import signal
import stat
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from . import bundle, durable, formats, fsops, journal, label, naming
from .durable import PARTIAL_PREFIX
from .errors import ClaimFailed, LedgerUnavailable, NamingError, PawError, SlideRefused, SourceChanged
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
    # Files delivered without the outbox's group and modes: (their owner's uid, the system's
    # word) when paw's user may not change them (job.py warns once per run).
    modes_kept: tuple = ()


def start(config, unit, ledger):
    """Claim and process one stable slide; None if it changed since the scan (next run sees it).
    ClaimFailed if it cannot be taken from the inbox (it is then where it was)."""
    if not still_as_scanned(config.inbox, unit):
        log.info("%s changed since the scan; left for the next run", naming.printable(unit.main))
        return None
    job = uuid.uuid4().hex[:16]
    stage = os.path.join(config.staging, job)
    if not ledger.claim(unit.main, job, stage):
        return None  # another host is on it
    try:
        sources = {m: fsops.identity(os.path.join(config.inbox, m)) for m in unit.members}
        durable.make_private_dir(stage)  # staging too, 0700, if someone removed it
    except FileNotFoundError:
        ledger.release(job)
        return None
    except OSError as exc:
        ledger.release(job)
        raise ClaimFailed(_one_line(exc), errno=exc.errno) from None
    record = Journal(job=job, original=unit.main, members=list(unit.members), started=time.time(),
                     kind=unit.kind, sources=sources)
    record.save(stage)
    return advance(config, stage, record, ledger)


def resume(config, stage, ledger):
    """Finish a job a previous run left in staging; None if there was nothing to finish."""
    leftovers = journal.FILE + ".tmp", journal.CLAIM_PARTIAL
    for name in os.listdir(stage):  # a journal write or a claim's copy cut short
        if name in leftovers:
            fsops.remove(os.path.join(stage, name))
    try:
        record = journal.load(stage)
    except FileNotFoundError:
        if os.listdir(stage):  # cannot happen: members move only after the journal exists
            raise SlideRefused(f"staging folder {stage} has files but no journal; check it by hand")
        os.rmdir(stage)  # killed before the first journal write: the slide never left the inbox
        return None
    if record.version < 2:  # an older paw's layout: its partial copies sat among the members
        for name in os.listdir(stage):
            if name.startswith(PARTIAL_PREFIX):
                fsops.remove(os.path.join(stage, name))
    if not ledger.heartbeat(record.job):
        log.info("%s was taken over by another host", naming.printable(record.original))
        return None
    log.info("resuming %s, interrupted while %s", naming.printable(record.original), record.state.value)
    return advance(config, stage, record, ledger)


def advance(config, stage, record, ledger):
    began = time.monotonic()
    if record.state == State.CLAIMING:
        if not _claim(config, stage, record, ledger):
            return None
        record.update(stage, state=State.CLAIMED)
    if record.state in (State.CLAIMED, State.APPLYING):
        ledger.heartbeat(record.job)  # the claim stays fresh through the long steps
        try:
            with time_limit(config.time_limit_seconds):
                names, digest = _anonymize(config, stage, record, ledger)
            record.update(stage, state=State.DELIVERING, status=Status.ANONYMIZED, reason="",
                          destination=_destination(config, record), names=names, sha256=digest)
        except (LedgerUnavailable, ModuleNotFoundError):
            raise  # the ledger's or the installation's fault, not the slide's: it waits in staging
        except Exception as exc:  # fail closed: whatever went wrong, the slide is quarantined
            reason = _unwritable(exc) if isinstance(exc, PermissionError) else _one_line(exc)
            log.debug("quarantining %s", record.original, exc_info=True)
            record.update(stage, state=State.DELIVERING, status=Status.QUARANTINED, reason=reason,
                          destination=config.quarantine, names=_quarantine_names(config, record))
    modes_kept = ()
    if record.state == State.DELIVERING:
        ledger.heartbeat(record.job)
        if record.status == Status.QUARANTINED:
            _roll_back(stage, record)
        elif record.undo_folder(stage):
            fsops.remove(record.undo_folder(stage))  # the originals are no longer needed
        modes_kept = _deliver(config, stage, record)
        record.update(stage, state=State.RECORDING, ledger_mark=ledger.mark())
    if record.state == State.RECORDING:
        if record.status == Status.QUARANTINED:
            _write_reason(record)
        if not ledger.has_job(record.job, since=record.ledger_mark):
            ledger.append(_row(config, record, time.monotonic() - began))
        ledger.release(record.job)
        fsops.remove(stage)
    delivered = record.names[0]
    if record.status == Status.ANONYMIZED and record.folder:
        delivered = os.path.join(record.folder, delivered)
    return Outcome(record.status, record.original, delivered, record.reason,
                   time.monotonic() - began, record.size, modes_kept)


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

def _claim(config, stage, record, ledger):
    """Move every member into the job's slide folder. False (the job dropped) if the slide
    vanished or changed before it was claimed; ClaimFailed (every member put back) if the
    system refuses the move."""
    folder = record.slide_folder(stage)
    odd = [rel for facts in record.sources.values() for rel in fsops.specials(facts)]
    try:
        if odd:  # never opened, never copied: a FIFO would block, a device never end
            raise ClaimFailed("a FIFO, socket or device is part of the slide; paw leaves it alone",
                              final=True)
        durable.make_private_dir(folder)
        same_device = os.stat(config.inbox).st_dev == os.stat(folder).st_dev
        for member in record.members:
            source = os.path.join(config.inbox, member)
            target = os.path.join(folder, os.path.basename(member))
            if os.path.lexists(target):
                if os.path.lexists(source):  # a copy finished before an interruption
                    _forget_source(source, target, record.sources.get(member), same_device)
                continue
            if os.path.lexists(source):
                fsops.move(source, target, partial=os.path.join(stage, journal.CLAIM_PARTIAL),
                           expect=record.sources.get(member))
    except (OSError, PawError) as exc:
        if not _unclaim(config, stage, record):
            raise  # a member could not go back: the job stays, the next run tries again
        ledger.release(record.job)
        fsops.remove(stage)
        if isinstance(exc, (SourceChanged, FileNotFoundError)):
            log.info("%s changed while paw claimed it; left for the next run",
                     naming.printable(record.original))
            return False
        if isinstance(exc, ClaimFailed):
            raise
        raise ClaimFailed(_one_line(exc), errno=getattr(exc, "errno", None)) from None
    if not any(os.path.lexists(os.path.join(folder, os.path.basename(m))) for m in record.members):
        ledger.release(record.job)
        fsops.remove(stage)  # vanished before any member was claimed
        return False
    return True


def _forget_source(source, target, expected, same_device):
    """Remove an inbox file whose copy is already in staging, but only if it is provably the
    file that was copied: a scan saved again under the same name since then stays."""
    if expected is not None:
        if not fsops.remove_if_same(source, expected):
            log.warning("%s was saved again while paw was claiming it: the new file stays in the inbox",
                        naming.printable(source))
        return
    # A journal of an older paw recorded no identity: the copy carries the source's size and
    # mtime; anything else is a new file.
    info, copy = os.lstat(source), os.lstat(target)
    if not same_device and (info.st_size, info.st_mtime_ns) == (copy.st_size, copy.st_mtime_ns) \
            and not os.path.isdir(source):
        fsops.remove(source)


def _unclaim(config, stage, record):
    """Put back the members a failed claim had already moved (an MRXS file without its folder
    would otherwise wait in staging forever). True if nothing of the slide is left in staging."""
    folder = record.slide_folder(stage)
    back = True
    for member in record.members:
        source = os.path.join(config.inbox, member)
        target = os.path.join(folder, os.path.basename(member))
        if not os.path.lexists(target):
            continue
        if os.path.lexists(source):
            back = False  # its inbox name is taken again: it stays in paw's hands
            continue
        try:
            fsops.move(target, source)
        except OSError:
            back = False
    return back


def _anonymize(config, stage, record, ledger):
    """Plan, apply, verify, strip extended attributes, choose the output names and hash: the
    bounded step. Returns (names, sha256 or "")."""
    folder = record.slide_folder(stage)
    path = os.path.join(folder, os.path.basename(record.original))
    if not os.path.lexists(path):
        raise SlideRefused("the slide file vanished while paw was working on it")
    members = [os.path.join(folder, os.path.basename(m)) for m in record.members]
    for member in members:
        _refuse_links(member)
    record.size = sum(_folder_size(m) for m in members)
    stem = _stem(record)
    if record.state == State.CLAIMED:
        handler, names, prepared = _decide(config, record, ledger, path)
        record.update(stage, state=State.APPLYING, **names, format=handler.name,
                      plan=prepared.plan.to_json(), found=prepared.found)
    handler = formats.handler(record.format)
    plan = handler.plan_from_json(record.plan)
    undo = record.undo_folder(stage)
    if undo is not None:
        durable.make_private_dir(undo)
    plan.apply(path, undo=undo)
    withheld = _withheld(config, stem)
    verify(path, handler, plan, config, extra_values=name_values(stem) + list(withheld.values()))
    for member in members:  # Samba streams, macOS metadata, ACLs: none may reach the outbox
        if fsops.strip_attributes(member):
            raise SlideRefused("the slide carries extended attributes paw cannot remove")
    names = _output_names(config, record, _destination(config, record))
    digest = sha256(members, names) if config.ledger_sha256 else ""
    return names, digest


def _decide(config, record, ledger, path):
    """Identify the slide at `path`, decide its names and plan its edits, writing nothing:
    (handler, names, prepared). The names are for the journal: pseudonym, kept, case, folder."""
    refused = bundle.refusal(record.kind, path)  # a unit taken only to be refused
    if refused:
        raise SlideRefused(refused)
    handler = formats.identify(path)  # first: a file paw refuses gets no case pseudonym
    names = _names(config, record, ledger, _stem(record))
    drawn = None
    if label.wanted(config):
        drawn = label.render(names["pseudonym"], _label_lines(config, names))
    return handler, names, handler.plan(path, config, names["pseudonym"], drawn)


def _label_lines(config, names):
    values = naming.fields(names["pseudonym"], names["case"], names["kept"], config.naming_case)
    return label.text_lines(config.label_text, config.naming_template, values)


@dataclass
class Prediction:
    """What processing a slide would do (predict): the outcome, and for people the details."""
    status: Status
    output: str            # anonymized: the path it would get under the outbox; else its quarantine name
    reason: str = ""       # quarantined: why
    handler: object = None
    plan: object = None
    found: dict = None
    names: dict = None     # pseudonym (an example), kept, case, folder
    case_known: bool = False  # the case pseudonym is the ledger's (else an example of a new one)
    label_lines: list = None  # the drawn label's lines (anonymize.label: replace)


class _CasesReadOnly:
    """The ledger's case pseudonyms as predict() may use them: the known one, or an example of a
    new one that is never recorded (the same example for every slide of the case in `examples`)."""

    def __init__(self, ledger, examples):
        self.ledger, self.examples = ledger, examples
        self.known = False

    def case_pseudonym(self, key, fresh):
        found = self.ledger.known_case(key) if self.ledger is not None else None
        self.known = found is not None
        return found or self.examples.setdefault(key, fresh())


def predict(config, original, kind, members, ledger, examples=None):
    """What a run would do with this slide, doing everything but the writes: the checks on its
    files, identification, naming (the outbox folder, the case pseudonym the ledger holds), the
    plan, the names it would be delivered or quarantined under. `original` is its path relative
    to the inbox (or its name, for a file elsewhere), `members` its files' paths. A pseudonym
    is an example: the real one is drawn when the slide is processed. Verification needs the
    edited file, so a slide a run would refuse only there is predicted delivered. `examples`:
    a dict shared by the predictions of one dry run (one example case pseudonym per new case)."""
    record = Journal(job="", original=original, members=list(members), started=0.0, kind=kind)
    path = members[0]
    cases = _CasesReadOnly(ledger, {} if examples is None else examples)
    try:
        with time_limit(config.time_limit_seconds):
            if not os.path.lexists(path):
                raise SlideRefused("the slide file vanished")
            for member in members:
                _refuse_links(member)
            handler, names, prepared = _decide(config, record, cases, path)
            for key, value in names.items():
                setattr(record, key, value)
            output = _output_names(config, record, _destination(config, record))[0]
    except (LedgerUnavailable, ModuleNotFoundError):
        raise
    except Exception as exc:  # what the run would quarantine it for
        log.debug("predicting %s", original, exc_info=True)
        return Prediction(Status.QUARANTINED, _quarantine_names(config, record)[0], _one_line(exc))
    return Prediction(Status.ANONYMIZED, os.path.join(names["folder"], output), handler=handler,
                      plan=prepared.plan, found=prepared.found, names=names, case_known=cases.known,
                      label_lines=_label_lines(config, names) if config.replace_label else None)


def _roll_back(stage, record):
    """Give a quarantined slide back exactly as the scanner wrote it (idempotent)."""
    undo = record.undo_folder(stage)
    path = os.path.join(record.slide_folder(stage), os.path.basename(record.original))
    if not record.plan or undo is None or not os.path.isdir(undo) or not os.path.lexists(path):
        return  # nothing was applied (or an older paw kept no undo log)
    formats.plan_from_json(record.format, record.plan).rollback(path, undo)


def _names(config, record, ledger, stem):
    """What the slide will be called: the kept groups, the outbox folder, the case pseudonym and
    the slide's own. They are journaled with the plan, before anything uses them; a replay
    after a crash before that decides again, and the ledger gives the same case pseudonym for
    the same case however often it is asked (nothing used the first slide pseudonym)."""
    groups = naming.identifiers(config.naming_pattern, stem)
    key = naming.case_key(groups[config.naming_case]) if config.naming_case else ""
    if config.naming_case and not key:
        raise NamingError(f"the file name has no value for the case group '{config.naming_case}' "
                          "(naming.case)")
    kept = naming.safe(groups)
    shown = _shown_text(config, kept)
    hidden = _hidden(config, groups)
    what = naming.holding(shown, hidden)
    if what:  # a kept group that also caught the case number, say: `S26-1 S26-1.svs`
        raise NamingError(f"the output name or label would hold {what}, which paw removes from the "
                          "slide's name; make naming.pattern's kept groups match less")
    if not naming.holding(shown, [("the name", stem)]):  # unless the output name keeps all of it
        hidden += [("the file's own name", value) for value in name_values(stem)]
    folder = _outbox_folder(config, record, hidden)
    case = ledger.case_pseudonym(key, lambda: naming.new_pseudonym(config.naming_prefix)) if key else ""
    return {"pseudonym": naming.new_pseudonym(config.naming_prefix), "kept": kept, "case": case,
            "folder": folder}


def _shown(config):
    """The templates whose fields a researcher sees: the name's, and the label's if one is drawn."""
    return (config.naming_template, config.label_text if config.replace_label else "")


def _shown_text(config, kept):
    """The output name and label text without their pseudonyms: only what the name gives them."""
    values = naming.fields("", "", kept, config.naming_case)
    lines = label.text_lines(config.label_text, config.naming_template, values) if config.replace_label else []
    return "\n".join([naming.render(config.naming_template, values, "")] + lines)


def _hidden(config, groups):
    """The values of groups neither the output name nor the label shows (the case group
    always), described: [(what, value)]."""
    return [(f"the case group '{name}' (naming.case)" if name == config.naming_case else
             f"the group '{name}' of naming.pattern", value)
            for name, value in naming.withheld(groups, config.naming_case, *_shown(config)).items()]


def _withheld(config, stem):
    """The values of the name's groups that neither the output name nor the label shows."""
    if config.naming_pattern is None or config.naming_pattern.search(stem) is None:
        return {}
    groups = naming.identifiers(config.naming_pattern, stem)
    return naming.withheld(groups, config.naming_case, *_shown(config))


def _outbox_folder(config, record, hidden):
    """The sub-folder of the outbox the slide goes to: with outbox_layout mirror, the one it was
    saved in under the inbox (the technician's routing: per project or requestor). A folder
    name is not scrubbed, so one that holds a value paw removes from the slide's name (the case
    number, a group the template leaves out, the name itself) refuses the slide."""
    folder = os.path.dirname(record.original)
    if config.outbox_layout == "flat" or not folder:
        return ""
    what = naming.holding(folder, hidden)
    if what:
        raise SlideRefused(f"the name of its folder in the inbox holds {what}, which paw removes from "
                           "the slide's name; rename the folder (folder names reach the outbox as they "
                           "are) or set outbox_layout: flat")
    return folder


def _destination(config, record):
    """Where an anonymized slide goes: its outbox folder (outbox_layout mirror), or the outbox."""
    return os.path.join(config.outbox, record.folder) if record.folder else config.outbox


def _stem(record):
    """The original name without extension (a folder's whole name)."""
    name = os.path.basename(record.original)
    return name if record.kind == bundle.DICOM else fsops.split_ext(name)[0]


def _output_names(config, record, destination):
    """The output name for every member: `P.mrxs` and its folder `P`, or just `P.svs`."""
    name = os.path.basename(record.original)
    extension = "" if record.kind == bundle.DICOM else fsops.split_ext(name)[1]
    pseudonym = record.pseudonym or naming.new_pseudonym(config.naming_prefix)
    # A journal of an older paw has no case pseudonym: the slide's own stands in for it.
    values = naming.fields(pseudonym, record.case or pseudonym, record.kept, config.naming_case)
    stem = fsops.split_ext(naming.render(config.naming_template, values, extension))[0]
    return fsops.free_names(destination, bundle.member_names(record.kind, stem, extension))


def _quarantine_names(config, record):
    """Members keep their names (the technician recognises them); the reason file beside
    them must be free too (a slide may be called `x.svs.reason.txt`)."""
    return fsops.free_names(config.quarantine, [os.path.basename(m) for m in record.members],
                            companions=(fsops.reason_name,))


def _deliver(config, stage, record):
    folder = record.slide_folder(stage)
    if record.status == Status.ANONYMIZED:
        _make_folders(config.outbox, record.folder, config.outbox_mode)
    # A cross-file-system copy is built under a name made of the job's (random) id: a copy cut
    # short is recognisably paw's own.
    partial = os.path.join(record.destination, f"{PARTIAL_PREFIX}{record.job}")
    fsops.remove(partial)
    if record.version < 2:  # an older paw built its copies beside the targets
        for name in record.names:
            fsops.remove(durable.partial_path(os.path.join(record.destination, name)))
    # A copy's inode is only trusted while its copy holds the name (an inode number is reused).
    copies = {k: v for k, v in record.copies.items()
              if os.path.lexists(os.path.join(record.destination, record.names[int(k)]))}
    if copies != record.copies:
        record.update(stage, copies=copies)
    for i, member in enumerate(record.members):
        source = os.path.join(folder, os.path.basename(member))
        target = os.path.join(record.destination, record.names[i])
        if not os.path.lexists(source):
            continue  # delivered before an interruption
        if os.path.lexists(target):
            if record.copies.get(str(i)) == _inode(target):
                fsops.remove(source)  # paw's finished cross-device copy; the source can go
                continue
            # Not ours (a rename leaves no source behind): take another name.
            names = _output_names(config, record, record.destination) \
                if record.status == Status.ANONYMIZED else _quarantine_names(config, record)
            record.update(stage, names=names)
            if record.sha256:
                record.update(stage, sha256=sha256(
                    [os.path.join(folder, os.path.basename(m)) for m in record.members], names))
            target = os.path.join(record.destination, record.names[i])
        fsops.move(source, target, partial=partial,
                   on_copied=lambda copy, i=i: record.update(
                       stage, copies={**record.copies, str(i): _inode(copy)}))
    kept = ()
    if record.status == Status.ANONYMIZED:  # again after a crash: it may have come between
        for name in record.names:
            if os.path.lexists(os.path.join(record.destination, name)):
                kept = _readable(os.path.join(record.destination, name), record.destination,
                                 config.outbox_mode) or kept
    return kept


def _inode(path):
    info = os.lstat(path)
    return [info.st_dev, info.st_ino]


def _write_reason(record):
    """NAME.reason.txt beside the quarantined slide (its name was free when the names were
    chosen); never over a file paw did not write."""
    data = (record.reason + "\n").encode("utf-8")
    path = os.path.join(record.destination, fsops.reason_name(record.names[0]))
    tmp = os.path.join(record.destination, f"{PARTIAL_PREFIX}{record.job}.reason")
    fsops.remove(tmp)  # written before an interruption, not yet linked
    while True:
        try:
            durable.create_new(path, data, tmp=tmp)
            return
        except FileExistsError:
            with open(path, "rb") as fh:
                if fh.read(len(data) + 1) == data:
                    return  # written before an interruption
            path = os.path.join(record.destination, fsops.free_name(record.destination,
                                                                    os.path.basename(path)))


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


def _modes(folder, outbox_mode=None):
    """(file mode, folder mode) for what paw delivers into `folder`: read for group and others
    as far as the folder lets them read (`outbox_mode` instead, when set), never write or
    execute for them; folders also get execute where they get read, and keep a setgid bit."""
    info = os.stat(folder)
    file_mode = outbox_mode if outbox_mode is not None else 0o600 | stat.S_IMODE(info.st_mode) & 0o044
    folder_mode = file_mode | 0o700 | (file_mode & 0o044) >> 2 | info.st_mode & stat.S_ISGID
    return file_mode, folder_mode


def _make_folders(outbox, folder, outbox_mode):
    """Create the mirror layout's sub-folders under the outbox, each readable as its parent is
    (_modes()); paw changes the mode only of folders it creates, never of the share."""
    parent = outbox
    for part in [p for p in folder.split(os.sep) if p]:
        path = os.path.join(parent, part)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise PawError(f"{path} is in the way of the outbox folder paw delivers into (it is a "
                           "link or a file, not a folder); move it away")
        if not os.path.isdir(path):
            mode = _modes(parent, outbox_mode)[1]
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass  # made by another host just now
            else:
                os.chmod(path, mode)
                durable.fsync_dir(parent)
        parent = path


def _readable(path, folder, outbox_mode):
    """Give a delivered slide (every file of a delivered folder) the _modes() of its outbox
    folder, and the folder's group when it is setgid (researchers read the outbox through that
    group; a moved file keeps its old one). Whatever the scanner gave it (a 0600 scan, a
    group-writable one) is not what the outbox should show. Only a file's owner (or root)
    may change that: returns (owner uid, the system's word) when it could not, else ()."""
    info = os.stat(folder)
    file_mode, folder_mode = _modes(folder, outbox_mode)
    paths = [path] + [os.path.join(root, n) for root, dirs, files in os.walk(path) for n in dirs + files]
    failed = []
    for each in paths:
        current = os.lstat(each)
        if stat.S_ISLNK(current.st_mode):
            continue  # refused before delivery; never followed
        try:
            if info.st_mode & stat.S_ISGID and current.st_gid != info.st_gid:
                os.chown(each, -1, info.st_gid, follow_symlinks=False)
            wanted = folder_mode if stat.S_ISDIR(current.st_mode) else file_mode
            if stat.S_IMODE(current.st_mode) != wanted:
                os.chmod(each, wanted)
        except OSError as exc:
            failed.append((current.st_uid, exc.strerror))
    return failed[0] if failed else ()


def _row(config, record, seconds):
    return {
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job": record.job, "status": record.status.value, "original": record.original,
        "output": record.names[0],
        "format": record.format,
        "kept": "; ".join(f"{k}={v}" for k, v in record.kept.items()),
        "removed": "; ".join(dict.fromkeys(record.plan["actions"])) if record.plan else "",
        "bytes": record.size or "", "seconds": f"{seconds:.3f}",
        "error": record.reason,
        "sha256": record.sha256 if record.status == Status.ANONYMIZED else "",
        "pseudonym": record.pseudonym, "case": record.case,
        "folder": record.folder if record.status == Status.ANONYMIZED else "",
    }


def sha256(paths, names=None):
    """SHA-256 of a slide as it is delivered. One file: of its bytes (what `sha256sum` prints).
    A slide of several members or a folder (MRXS, DICOM): of every file's relative name and
    bytes, in sorted order, so the digest covers the whole slide. `names` are the members'
    delivered names (the digest is made in staging, before delivery, within the time limit)."""
    names = names or [os.path.basename(p) for p in paths]
    files = []  # (delivered relative name, where the bytes are now)
    for path, name in zip(paths, names):
        if os.path.isdir(path):
            files += [(os.path.join(name, os.path.relpath(os.path.join(root, n), path)),
                       os.path.join(root, n)) for root, _, found in os.walk(path) for n in found]
        else:
            files.append((name, path))
    named = len(files) > 1 or os.path.isdir(paths[0])
    digest = hashlib.sha256()
    for name, path in sorted(files):
        if named:
            digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def by_hand(config, name, kind, copies, destination, ledger):
    """A slide anonymized by hand into `destination` (paw.py anonymize --output), named as a run
    names it: `copies` are paw's private copies of its members (main first), `name` the
    original's file or folder name. Identifies, names (a fresh pseudonym; the case pseudonym
    the ledger holds, recorded as a run records it), plans (with the drawn label), applies and
    verifies the copy, and chooses the free names in `destination` (record.names, one per
    member). Nothing is journaled: the copy is paw's own until it takes its name, and the
    caller removes it on any failure."""
    from .ledger import BY_HAND
    record = Journal(job=f"{BY_HAND}{uuid.uuid4().hex[:12]}", original=name, members=[name],
                     started=time.time(), kind=kind, status=Status.ANONYMIZED)
    for member in copies:
        _refuse_links(member)
    record.size = sum(_folder_size(m) for m in copies)
    path = copies[0]
    handler, names, prepared = _decide(config, record, ledger, path)
    for key, value in names.items():
        setattr(record, key, value)
    record.format, record.plan, record.found = handler.name, prepared.plan.to_json(), prepared.found
    prepared.plan.apply(path)
    stem = _stem(record)
    verify(path, handler, prepared.plan, config,
           extra_values=name_values(stem) + list(_withheld(config, stem).values()))
    for member in copies:
        if fsops.strip_attributes(member):
            raise SlideRefused("the slide carries extended attributes paw cannot remove")
    record.names = _output_names(config, record, destination)
    record.sha256 = sha256(copies, record.names) if config.ledger_sha256 else ""
    return record


def by_hand_row(config, record, original, destination, seconds):
    """The ledger row of a slide anonymized by hand: the job `by-hand-…`, `original` the path
    it was given (absolute: it need not be in the inbox), `folder` the absolute output folder."""
    row = _row(config, record, seconds)
    row.update(original=original, folder=destination)
    return row


def reason_of(exc):
    """The quarantine reason for an exception (the one line a run would write)."""
    return _one_line(exc)
def _unwritable(exc):
    """The reason for a slide quarantined because paw's user could not write one of its files
    after the claim (a permission changed meanwhile, an ACL): the owner, mode and fix."""
    facts = fsops.ownership(exc.filename) if exc.filename else ""
    return (f"{fsops.paws_user()} cannot write a file of the slide" + (f" ({facts})" if facts else "")
            + f": {fsops.OWNERSHIP_FIX}; then move the slide back into the inbox")


def _one_line(exc):
    """A reason for the reason file, the ledger and the log: one line that never quotes a text
    taken from the file. An unexpected exception's message may (a parser's ValueError quoting
    the value it choked on): only its type and where it happened are given."""
    if isinstance(exc, PawError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or 'I/O error'} (errno {exc.errno})"
    else:
        text = f"paw failed on it: unexpected {type(exc).__name__}{_where(exc)} (please report it; " \
               "'paw.py -v' logs the details)"
    return " ".join(text.split())[:300]


PACKAGE = os.path.dirname(os.path.realpath(__file__)) + os.sep   # lib/paw/ of this checkout


def _where(exc):
    """' in formats/aperio.py line 12': the last frame of paw's own code in the traceback (by
    the package's real path: a checkout in /opt/paw holds libraries and tests that are not)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.realpath(f.filename).startswith(PACKAGE)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" in {os.path.realpath(frame.filename)[len(PACKAGE):]} line {frame.lineno}"
