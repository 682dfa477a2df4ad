"""The hands-on commands an admin runs over SSH: inspect, anonymize, init, ledger export."""

import contextlib
import os
import stat
import sys
import time

from . import bundle, durable, fsops, naming
from .durable import PARTIAL_PREFIX
from .config import inside
from .errors import ExitCode, PawError, SlideRefused, UsageError
from .formats import prepare
from .verify import name_values, verify


def inspect(config, files):
    """Print what paw sees in each slide and what a run would do with it: the format, the
    images, the name it would be delivered under (and the drawn label's text), every value it
    would remove with its field, and the edits; or that it is already anonymized, or why it
    would be quarantined. Writes nothing. The values are shown to the admin on this host only:
    nothing of them goes to the ledger, the log or Sentry."""
    from . import slide
    from .journal import Status
    _require_files(files)
    status = ExitCode.OK
    ledger = _ledger_for_reading(config)
    try:
        for path in files:
            print(f"{path}:")
            unit = bundle.at(path.rstrip(os.sep))
            guess = slide.predict(config, _original(config, unit.main), unit.kind, list(unit.members), ledger)
            if guess.status == Status.ANONYMIZED:
                handler, plan, found = guess.handler, guess.plan, guess.found
            else:  # refused by its content, or only by its name or folder: say which
                try:
                    handler, plan, found = prepare(unit.main, config)
                except (SlideRefused, OSError) as exc:
                    print(f"  paw would quarantine it: {slide.reason_of(exc)}")
                    status = ExitCode.QUARANTINED
                    continue
                status = ExitCode.QUARANTINED
            print(f"  format: {handler.title} ({handler.name})")
            print("  images: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(found.items())))
            _print_names(config, handler, guess)
            if plan.changes(unit.main) is False:
                print("  already anonymized: nothing left to remove (paw's plan would change no byte)")
                continue
            _print_values(plan.removed)
            print("  anonymizing would:")
            for action in plan.actions:
                print(f"    - {action}")
            print(f"    - {plan.summary()}")
    finally:
        if ledger is not None:
            ledger.close()
    return status


def _print_names(config, handler, guess):
    from .journal import Status
    if guess.status != Status.ANONYMIZED:
        print(f"  output name: none: {guess.reason} (paw would quarantine it)")
        return
    names = guess.names
    note = [f"example pseudonym {names['pseudonym']}"]
    if names["case"]:
        note.append(f"case pseudonym {names['case']}" + (" from the ledger" if guess.case_known
                                                         else ", an example for a new case"))
    print(f"  output name: outbox/{naming.printable(guess.output)} ({'; '.join(note)})")
    if config.replace_label:
        print(f"  drawn label: {handler.label_place or f'none ({handler.title} has no label image)'}")
        if handler.label_place and guess.label_lines:
            print("  label text: " + " / ".join(guess.label_lines))


NOISE_LENGTH = 4  # a value this short without a letter ("0", "1", "-", "12") identifies nobody


def _print_values(removed):
    """Each value the plan removes with its field where the format names it; values a reader
    cannot learn anything from (short, no letter) are counted, not listed."""
    shown, noise = {}, set()
    for value in removed:
        text = value.strip()
        if not text:
            continue
        if len(text) < NOISE_LENGTH and not any(c.isalpha() for c in text):
            noise.add(text)
            continue
        shown.setdefault(text, getattr(value, "field", "") or "")
    print(f"  values it would remove: {len(shown)}")
    for text, field in sorted(shown.items(), key=lambda item: (item[1] == "", item[1], item[0])):
        print(f"    {field or '(field not named by the format)'}: {text!r}")
    if noise:
        print(f"    and {len(noise)} short value(s) without a letter (such as numbers)")


def _original(config, path):
    """The slide's path relative to the inbox when it is in it (its outbox folder follows), else
    its name."""
    inbox = os.path.realpath(config.inbox)
    real = os.path.realpath(path)
    if real.startswith(inbox + os.sep):
        return os.path.relpath(real, inbox)
    return os.path.basename(os.path.normpath(path))


def _ledger_for_reading(config):
    """The ledger for case pseudonyms already known, or None (a PostgreSQL server not reachable:
    every case is then shown as new)."""
    from .errors import LedgerUnavailable
    from .ledger import open_ledger
    try:
        return open_ledger(config)
    except LedgerUnavailable as exc:
        print(f"(the ledger cannot be read: {exc}; case pseudonyms shown are examples)")
        return None


def _require_files(files):
    missing = [f for f in files if not os.path.lexists(f)]
    if missing:
        raise UsageError(f"{missing[0]} does not exist" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1
                                                          else ""))


def anonymize(config, files, output, dry_run):
    """Anonymize slides by hand. `--output DIR`: copies named as a run names them (a fresh
    pseudonym through naming.template; the case pseudonym the ledger holds) — never the
    original name, which carries the accession — each printed as `original -> copy` and
    recorded in the ledger (job `by-hand-…`, folder DIR), the only key back. A copy is built
    in a private work folder in DIR and takes its name only once verified; on any failure
    the work folder is removed. `--in-place`: the files themselves, under their own names (the
    admin chose that; nothing is recorded). Every failure is one line and exit status 3."""
    _require_files(files)
    if output is not None and not os.path.isdir(output):
        raise UsageError(f"output folder {output} does not exist" if not os.path.lexists(output)
                         else f"output {output} is not a folder")
    if output is not None and inside(output, config.inbox):
        raise UsageError(f"output folder {output} is inside the inbox: the next run would take the "
                         "copies for new slides; give a folder outside it")
    ledger = None
    if output is not None:
        ledger = _ledger_for_reading(config) if dry_run else _open_ledger(config)
    status = ExitCode.OK
    try:
        for path in files:
            try:
                if dry_run:
                    ok = _predict_by_hand(config, path, output, ledger)
                elif output is not None:
                    ok = _copy_anonymized(config, path, output, ledger)
                else:
                    ok = _anonymize_in_place(config, path)
            except (SlideRefused, OSError) as exc:
                print(f"{path}: not anonymized: {_one_line(exc)}", file=sys.stderr)
                ok = False
            except (PawError, ModuleNotFoundError):  # the ledger, the lock: not this slide's fault
                raise
            except Exception as exc:  # noqa: BLE001 - a hostile file must not end in a traceback
                print(f"{path}: not anonymized: paw failed on it (unexpected {type(exc).__name__}); "
                      "nothing was written", file=sys.stderr)
                ok = False
            if not ok:
                status = ExitCode.QUARANTINED
    finally:
        if ledger is not None:
            ledger.close()
    return status


def _open_ledger(config):
    from .ledger import open_ledger
    return open_ledger(config)


def _predict_by_hand(config, path, output, ledger):
    """--dry-run: what anonymizing would do, writing nothing. True unless it would refuse."""
    from . import slide
    from .journal import Status
    unit = bundle.at(path.rstrip(os.sep))
    if output is None:
        _refuse_unit(unit)
        handler, plan, _ = prepare(unit.main, config)
        if plan.changes(unit.main) is False:
            print(f"{path}: already anonymized: nothing left to remove")
        else:
            print(f"{path}: would anonymize in place, keeping its name: " + "; ".join(plan.actions))
        return True
    name = os.path.basename(os.path.normpath(unit.main))
    guess = slide.predict(config, name, unit.kind, list(unit.members), ledger)
    if guess.status != Status.ANONYMIZED:
        print(f"{path}: would not anonymize: {guess.reason}")
        return False
    from .forecast import describe
    print(f"{path}: would anonymize -> {os.path.join(output, naming.printable(guess.output))} "
          f"({describe(guess)}): " + "; ".join(guess.plan.actions))
    return True


def _anonymize_in_place(config, path):
    """The file itself, keeping its name (what --in-place asks for). No pseudonym: no label is
    drawn, nothing goes to the ledger."""
    unit = bundle.at(path.rstrip(os.sep))
    _refuse_unit(unit)
    for member in unit.members:
        _refuse_specials(member)
    handler, plan, _ = prepare(unit.main, config)
    already = plan.changes(unit.main) is False
    if not already:
        plan.apply(unit.main)
    stem = os.path.basename(os.path.normpath(unit.main))
    if unit.kind != bundle.DICOM:
        stem = fsops.split_ext(stem)[0]
    verify(unit.main, handler, plan, config, extra_values=name_values(stem))
    if already:
        print(f"{path}: already anonymized: nothing left to remove (verified)")
    else:
        print(f"{path}: anonymized in place, its name kept: " + "; ".join(plan.actions))
    return True


def work_folder(output, source):
    """paw's private folder in `output` for a copy of the slide at `source` (a real path): named
    from the path, not the name (which may carry the accession), so that a folder an
    interrupted try left is found, and removed, by the next try."""
    import hashlib
    return os.path.join(output, PARTIAL_PREFIX + "by-hand-" + hashlib.sha256(os.fsencode(source)).hexdigest()[:16])


def _copy_anonymized(config, path, output, ledger):
    """One slide copied into `output` under a run's name, verified, recorded. True."""
    from . import slide
    began = time.monotonic()
    unit = bundle.at(path.rstrip(os.sep))
    members = list(unit.members)
    names = [os.path.basename(os.path.normpath(m)) for m in members]
    # One private folder holds the copies under their own names (X.mrxs beside X/, _X_ beside
    # X.vsi). Its name comes from the source's path (not its name, which may carry the
    # accession): a folder of that name is a copy an interrupted try left, removed first.
    source = os.path.realpath(unit.main)
    work = work_folder(output, source)
    fsops.remove(work)
    try:
        os.mkdir(work, 0o700)
        for member, name in zip(members, names):
            _copy(member, os.path.join(work, name))
        copies = [os.path.join(work, n) for n in names]
        with _run_lock(config):  # the case pseudonym and the row, as a run records them
            record = slide.by_hand(config, names[0], unit.kind, copies, os.path.abspath(output), ledger)
            # The row first: a copy must never exist without its way back in the ledger.
            ledger.append(slide.by_hand_row(config, record, source, os.path.abspath(output),
                                            time.monotonic() - began))
        targets = [os.path.join(output, n) for n in record.names]
        for copy, target in zip(copies, targets):
            fsops.rename_noreplace(copy, target)
        durable.fsync_dir(output)
    finally:
        fsops.remove(work)
    print(f"{path} -> {targets[0]}" + (f" (case pseudonym {record.case})" if record.case else "")
          + ": " + "; ".join(dict.fromkeys(record.plan["actions"])))
    return True


LOCK_WAIT_SECONDS = 600  # a run holding the lock longer than this is stuck, or busy with a batch


@contextlib.contextmanager
def _run_lock(config):
    """The run's lock (on the state folder), held while a copy by hand takes its case pseudonym
    and writes its row: a run and a copy by hand must never give one case two pseudonyms (the
    CSV ledger's case file is only written under the lock). Waits for a run in progress."""
    from .job import lock_state
    durable.make_private_dir(config.state_dir)
    deadline, said = time.monotonic() + LOCK_WAIT_SECONDS, False
    while (lock := lock_state(config.state_dir)) is None:
        if time.monotonic() > deadline:
            raise PawError(f"waited {LOCK_WAIT_SECONDS} s for the paw run holding the lock on "
                           f"{config.state_dir}; try again when it has finished")
        if not said:
            print("waiting for the paw run in progress to finish", file=sys.stderr)
            said = True
        time.sleep(1)
    try:
        yield
    finally:
        os.close(lock)


def _copy(source, target):
    """Copy a member the way the job claims it: regular files and folders only, sharing extents
    where the file system can (fsops.copy_file). A symbolic link inside a slide folder or a
    FIFO, socket or device anywhere in it refuses the slide before anything is copied (a FIFO
    would block, a link lead outside); the path given may itself be a link to the slide."""
    source = os.path.realpath(source)
    _refuse_specials(source)
    if any(kind == "l" for kind, *_ in fsops.identity(source).values()):
        raise SlideRefused("symbolic link refused: paw only anonymizes the files of the slide itself")
    fsops.copy_tree(source, target)
    _writable_by_paw(target)


def _writable_by_paw(path):
    """The private copy is paw's to edit: a read-only original (from a CD, an archive share, a
    0444 file) gives its copy its mode, which would refuse the edit."""
    if os.path.isdir(path):
        for root, folders, files in os.walk(path):
            os.chmod(root, stat.S_IMODE(os.stat(root).st_mode) | stat.S_IRWXU)
            for name in files:
                member = os.path.join(root, name)
                os.chmod(member, stat.S_IMODE(os.stat(member).st_mode) | stat.S_IRUSR | stat.S_IWUSR)
    else:
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRUSR | stat.S_IWUSR)


def _refuse_unit(unit):
    """A unit paw takes only to refuse (loose DICOM files, a DICOMDIR, a folder of mixed
    things): its reason, as a run gives it."""
    refused = bundle.refusal(unit.kind, unit.main)
    if refused:
        raise SlideRefused(refused)


def _refuse_specials(path):
    if fsops.specials(fsops.identity(os.path.realpath(path))):
        raise SlideRefused("a FIFO, socket or device is part of the slide; paw leaves it alone")


def _one_line(exc):
    """A reason as one line: an OSError by its message and number, never a path (paw's work
    folder is no business of the reader's); else the one line a run would write."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or 'I/O error'} (errno {exc.errno})"
    from .slide import reason_of
    return reason_of(exc)


def init(config):
    """Create the configured folders; the shares themselves are the admin's to create on a NAS."""
    for folder in (config.inbox, config.outbox, config.quarantine):
        os.makedirs(folder, exist_ok=True)
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    print(f"folders ready under {config.base}: inbox, outbox, quarantine, state")
    return ExitCode.OK


def _refuse_shares(config, target):
    """The ledger maps pseudonyms back to original names: a copy in a share (the researchers'
    outbox above all) hands out the re-identification key, as the ledger itself may not be
    kept there (config.py)."""
    from .config import inside
    from .errors import ConfigError
    for key in ("outbox", "inbox", "quarantine"):
        if inside(target, getattr(config, key)):
            raise ConfigError(f"ledger export: {target} is inside the {key}; the ledger is the "
                              "re-identification key: write it to a private folder outside the "
                              "shares, or to standard output (--csv with no file)")


def export_ledger(config, target):
    """The ledger, from whichever backend, as CSV with a BOM (Excel then reads it as UTF-8): to a
    private file or to standard output."""
    from .ledger import export_csv, open_ledger
    if target != "-":
        _refuse_shares(config, target)
    ledger = open_ledger(config)
    try:
        if target == "-":
            with _stdout_utf8() as out:
                export_csv(ledger, out)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                export_csv(ledger, out)
    finally:
        ledger.close()
    return ExitCode.OK


def find_in_ledger(config, text, as_csv):
    """The ledger rows of a pseudonym, a case (its number or its pseudonym) or an original name:
    where each slide went, for returning it to whoever asked for it."""
    from .ledger import export_csv, open_ledger
    if not text.strip():
        raise UsageError("ledger find: give a pseudonym, a case number or pseudonym, or part of a name")
    ledger = open_ledger(config)
    try:
        rows = ledger.find(text.strip())
    finally:
        ledger.close()
    if as_csv:
        with _stdout_utf8() as out:
            export_csv(None, out, rows)
        return ExitCode.OK
    if not rows:
        print(f"no ledger row holds {naming.printable(text)!r}")
    for row in rows:
        print(_found_line(row))
    return ExitCode.OK


def _found_line(row):
    printable = naming.printable
    when = row["time_utc"].replace("T", " ")[:16]
    if row["status"] == "anonymized":
        folder = row.get("folder", "")
        where = os.path.join(folder, row["output"]) if os.path.isabs(folder) else \
            "outbox/" + "/".join(p for p in (folder, row["output"]) if p)
        names = [f"pseudonym {row['pseudonym']}"] if row.get("pseudonym") else []
        names += [f"case {row['case']}"] if row.get("case") else []
        return (f"{when} {printable(row['original'])} -> {printable(where)}"
                + (f" ({', '.join(names)})" if names else ""))
    return f"{when} {printable(row['original'])}: quarantined ({row['error']})"


class _stdout_utf8:
    """Standard output as UTF-8 text whatever the locale (cron's is often C/ASCII), flushed and
    detached at the end so sys.stdout stays usable."""

    def __enter__(self):
        import io
        sys.stdout.flush()
        self.out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                                    write_through=False) if hasattr(sys.stdout, "buffer") else None
        return self.out or sys.stdout

    def __exit__(self, *exc):
        if self.out is not None:
            try:
                self.out.flush()
            finally:
                self.out.detach()
