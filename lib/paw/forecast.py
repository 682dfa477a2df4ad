"""`paw.py --dry-run`: what a run started now would do with every slide, changing nothing.

A dry run goes as far as a run goes without writing. Every slide in the inbox is judged against
the last run's stability record the way the next run will judge it (status.judge: waiting, and
why, or ready); for each slide a run would take, it checks the slide's files, identifies the
format, decides the names (the outbox folder, the case pseudonym the ledger already holds, the
kept groups), plans the edits and says where the slide would end up: its path in the outbox, or
the quarantine with the reason (slide.predict). Only verification is left out: it needs the
edited file.

No lock, no state folder, no stability record, no case pseudonym, no journal: nothing is written,
so a dry run may run beside a real one. Pseudonyms shown are examples (a known case's is the
ledger's).
"""

import os
import time

from .errors import ExitCode
from .journal import Status
from .naming import printable


def forecast(config, out=print):
    from . import slide
    from .ledger import open_ledger
    from .status import Survey
    now = time.time()
    survey = Survey(config, now)
    if survey.problems:
        for problem in survey.problems:
            out(f"not ready: {problem}")
        out("dry run: a run would stop here (exit status 2) before taking any slide; nothing was changed")
        return ExitCode.USAGE
    staged = os.listdir(config.staging) if os.path.isdir(config.staging) else []
    if staged:
        out(f"staging: {len(staged)} interrupted job(s): a run finishes them first")
    for path, reason in sorted(dict(survey.skipped).items()):
        out(f"skipped: {printable(path)}: {reason}")
    counts = {"delivered": 0, "quarantined": 0, "waiting": 0}
    examples = {}
    ledger = open_ledger(config)
    try:
        for unit, item in zip(survey.units, survey.slides):
            name = printable(unit.main)
            if not item["ready"]:
                counts["waiting"] += 1
                out(f"waiting: {name}: {item['text']}")
                continue
            members = [os.path.join(config.inbox, m) for m in unit.members]
            guess = slide.predict(config, unit.main, unit.kind, members, ledger, examples)
            if guess.status == Status.ANONYMIZED:
                counts["delivered"] += 1
                out(f"would deliver {name} -> outbox/{printable(guess.output)} ({describe(guess)})")
            else:
                counts["quarantined"] += 1
                out(f"would quarantine {name} -> quarantine/{printable(guess.output)}: {guess.reason}")
    finally:
        ledger.close()
    out(f"dry run: {counts['delivered']} would be delivered, {counts['quarantined']} quarantined, "
        f"{counts['waiting']} waiting; nothing was changed")
    return ExitCode.OK


def describe(guess):
    """'Aperio SVS; example pseudonym PAW-…; case pseudonym PAW-… from the ledger': the parts of
    a prediction a person checks."""
    names = guess.names
    parts = [guess.handler.title, f"example pseudonym {names['pseudonym']}"]
    if names["case"]:
        parts.append(f"case pseudonym {names['case']}" + (" from the ledger" if guess.case_known
                                                         else ", an example for a new case"))
    return "; ".join(parts)
