"""The hands-on commands an admin runs over SSH: inspect, anonymize, init, ledger export."""

import os
import sys

from . import bundle, fsops, label, naming
from .durable import PARTIAL_PREFIX
from .errors import ExitCode, NamingError, SlideRefused, UsageError
from .formats import prepare
from .verify import name_values, verify


def inspect(config, files):
    """Print format, images, identifying values and planned changes; writes nothing."""
    status = ExitCode.OK
    for path in files:
        print(f"{path}:")
        try:
            handler, plan, found = prepare(path, config)
        except (SlideRefused, OSError) as exc:
            print(f"  paw would quarantine it: {exc}")
            status = ExitCode.QUARANTINED
            continue
        print(f"  format: {handler.title} ({handler.name})")
        print("  images: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(found.items())))
        name, lines = _name_and_label(config, path)
        print(f"  output name: {name}")
        if config.replace_label:
            print(f"  drawn label: {handler.label_place or f'none ({handler.title} has no label image)'}")
            if handler.label_place and lines:
                print("  label text: " + " / ".join(lines))
        values = sorted({v for v in plan.removed if v.strip()})
        print(f"  identifying values found: {len(values)}")
        for value in values:
            print(f"    {value!r}")
        print("  anonymizing would:")
        for action in plan.actions:
            print(f"    - {action}")
        print(f"    - {plan.summary()}")
    return status


def _name_and_label(config, path):
    """The output name and the drawn label's lines paw would give this slide, with example
    pseudonyms (the real ones are drawn when the slide is processed; a case pseudonym is the
    one the ledger holds for the case, or a new one)."""
    unit = bundle.at(path.rstrip(os.sep))
    name = os.path.basename(unit.main)
    stem, extension = (name, "") if unit.kind == bundle.DICOM else fsops.split_ext(name)
    try:
        groups = naming.identifiers(config.naming_pattern, stem)
    except NamingError as exc:
        return f"none: {exc} (paw would quarantine it)", []
    pseudonym = naming.new_pseudonym(config.naming_prefix)
    case = naming.new_pseudonym(config.naming_prefix) if config.naming_case else ""
    values = naming.fields(pseudonym, case, naming.safe(groups), config.naming_case)
    output = naming.render(config.naming_template, values, extension)
    note = f" (example pseudonym {pseudonym}" + (f", example case pseudonym {case})" if case else ")")
    return output + note, label.text_lines(config.label_text, config.naming_template, values)


def anonymize(config, files, output, dry_run):
    """Anonymize given files: into copies in `output`, or in place. A copy is built in a
    private work folder in `output` and takes its name only once verified; on any failure
    (a refusal, a link or FIFO in the slide, a full disk, a bug) the work folder is removed,
    so no copy of the original bytes is left behind and a later try starts clean. Every
    failure is one line and exit status 3."""
    status = ExitCode.OK
    for path in files:
        try:
            if dry_run:
                _, plan, _ = prepare(path, config)
                print(f"{path}: would " + "; ".join(plan.actions))
                continue
            target, plan = _anonymize_one(config, path, output)
            print(f"{path}: anonymized -> {target}: " + "; ".join(plan.actions))
        except (SlideRefused, OSError) as exc:
            print(f"{path}: not anonymized: {_one_line(exc)}", file=sys.stderr)
            status = ExitCode.QUARANTINED
        except Exception as exc:  # noqa: BLE001 - a hostile file must not end in a traceback
            print(f"{path}: not anonymized: paw failed on it (unexpected {type(exc).__name__}); "
                  "nothing was written", file=sys.stderr)
            status = ExitCode.QUARANTINED
    return status


def _anonymize_one(config, path, output):
    """(where the anonymized slide is, its plan)."""
    bundled = bundle.at(path)
    members = list(bundled.members)
    if not output:
        return _process(config, path, members[0], bundled)
    names = [os.path.basename(os.path.normpath(m)) for m in members]
    targets = [os.path.join(output, n) for n in fsops.free_names(output, names)]
    # One private folder holds the copies under their own names (X.mrxs beside X/, _X_ beside
    # X.vsi; a reason never names paw's partial files). A folder of this name is a copy an
    # interrupted run left: paw's own, removed before starting again.
    work = os.path.join(output, PARTIAL_PREFIX + os.path.basename(targets[0]))
    fsops.remove(work)
    try:
        os.mkdir(work, 0o700)
        for member in members:
            _copy(member, os.path.join(work, os.path.basename(os.path.normpath(member))))
        copies = [os.path.join(work, n) for n in names]
        _, plan = _process(config, path, copies[0], bundled)
        for copy, final in zip(copies, targets):
            os.rename(copy, final)
    finally:
        fsops.remove(work)
    return targets[0], plan


def _process(config, path, main, bundled):
    refused = bundle.refusal(bundled.kind, main)
    if refused:
        raise SlideRefused(refused)
    handler, plan, _ = prepare(main, config)
    plan.apply(main)
    stem = fsops.split_ext(os.path.basename(os.path.normpath(path)))[0]
    verify(main, handler, plan, config, extra_values=name_values(stem))
    return main, plan


def _copy(source, target):
    """Copy a member the way the job claims it: regular files and folders only. A symbolic link
    inside a slide folder or a FIFO, socket or device anywhere in it refuses the slide before
    anything is copied (a FIFO would block, a link lead outside); the path given may itself be
    a link to the slide."""
    source = os.path.realpath(source)
    facts = fsops.identity(source)
    if fsops.specials(facts):
        raise SlideRefused("a FIFO, socket or device is part of the slide; paw leaves it alone")
    if any(kind == "l" for kind, *_ in facts.values()):
        raise SlideRefused("symbolic link refused: paw only anonymizes the files of the slide itself")
    fsops.copy_tree(source, target)


def _one_line(exc):
    """A reason as one line: an OSError by its message and number, never a path (paw's work
    folder is no business of the reader's)."""
    if isinstance(exc, OSError):
        text = f"{exc.strerror or 'I/O error'} (errno {exc.errno})"
    else:
        text = str(exc)
    return " ".join(text.split())[:300]


def init(config):
    """Create the configured folders; the shares themselves are the admin's to create on a NAS."""
    for folder in (config.inbox, config.outbox, config.quarantine):
        os.makedirs(folder, exist_ok=True)
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    print(f"folders ready under {config.base}: inbox, outbox, quarantine, state")
    return ExitCode.OK


def export_ledger(config, target):
    """The ledger, from whichever backend, as CSV with a BOM (Excel then reads it as UTF-8): to a
    private file or to standard output."""
    from .ledger import export_csv, open_ledger
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
