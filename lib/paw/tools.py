"""The hands-on commands an admin runs over SSH: inspect, anonymize, init, ledger export."""

import os
import shutil
import sys

from . import bundle, fsops, label, naming
from .durable import partial_path
from .errors import ExitCode, NamingError, SlideRefused
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
    """Anonymize given files: into copies in `output`, or in place. Never leaves a half-done copy."""
    status = ExitCode.OK
    for path in files:
        try:
            if dry_run:
                _, plan, _ = prepare(path, config)
                print(f"{path}: would " + "; ".join(plan.actions))
                continue
            bundled = bundle.at(path)
            members = list(bundled.members)
            if output:  # copies under a hidden name, renamed only once verified
                targets = [os.path.join(output, n) for n in
                           fsops.free_names(output, [os.path.basename(m) for m in members])]
                works = [partial_path(t) for t in targets]
                if bundled.kind == bundle.VSI:  # `_X_` must stay the folder of X.vsi meanwhile
                    works[1] = os.path.join(output, f"_{os.path.basename(works[0])[:-4]}_")
                for member, work in zip(members, works):
                    _copy(member, work)
            else:
                targets = works = members
            target, work = targets[0], works[0]
            try:
                handler, plan, _ = prepare(work, config)
                plan.apply(work)
                stem = fsops.split_ext(os.path.basename(path))[0]
                verify(work, handler, plan, config, extra_values=name_values(stem))
            except BaseException:
                if works is not members:
                    for each in works:
                        fsops.remove(each)
                raise
            for each, final in zip(works, targets):
                if each != final:
                    os.rename(each, final)
            print(f"{path}: anonymized -> {target}: " + "; ".join(plan.actions))
        except (SlideRefused, OSError) as exc:
            print(f"{path}: not anonymized: {exc}", file=sys.stderr)
            status = ExitCode.QUARANTINED
    return status


def _copy(source, target):
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def init(config):
    """Create the configured folders; the shares themselves are the admin's to create on a NAS."""
    for folder in (config.inbox, config.outbox, config.quarantine):
        os.makedirs(folder, exist_ok=True)
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    print(f"folders ready under {config.base}: inbox, outbox, quarantine, state")
    return ExitCode.OK


def export_ledger(config, target):
    """The ledger, from whichever backend, as CSV: to a private file or to standard output."""
    from .ledger import export_csv, open_ledger
    ledger = open_ledger(config)
    try:
        if target == "-":
            export_csv(ledger, sys.stdout)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with open(fd, "w", encoding="utf-8-sig", newline="") as out:
                export_csv(ledger, out)
    finally:
        ledger.close()
    return ExitCode.OK
