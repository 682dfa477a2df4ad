"""One run of paw: lock → finish interrupted work → find stable slides → process each → summary.

Exit status: 0 nothing to do, all anonymized, or another run holds the lock; 3 at least one
slide was quarantined in this run; 1 something failed that paw could not finish (the slide stays
in staging and the next run resumes it). Configuration errors (2) are raised before this runs.
"""

import json
import logging
import os
import time

from . import durable, fsops
from .errors import ExitCode, LedgerUnavailable
from .inbox import Stability, find_units
from .journal import Status
from .ledger import open_ledger
from .naming import printable

log = logging.getLogger("paw")
RUNS_FILE = "runs.jsonl"
RUNS_KEPT = 200


def run(config, dry_run=False, monitor=None):
    config.require_folders()
    os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
    os.makedirs(config.staging, mode=0o700, exist_ok=True)
    from filelock import FileLock, Timeout

    lock = FileLock(os.path.join(config.state_dir, "paw.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        log.info("another paw run holds the lock; leaving the work to it")
        return ExitCode.OK
    try:
        if monitor is None:
            return _locked_run(config, dry_run)
        return monitor.checked(lambda: _locked_run(config, dry_run))
    finally:
        lock.release()


def _locked_run(config, dry_run):
    began = time.monotonic()
    try:
        ledger = open_ledger(config)
    except LedgerUnavailable as exc:  # nothing claimed, nothing moved
        log.error("%s", exc)
        return ExitCode.FAILED
    try:
        return _with_ledger(config, dry_run, ledger, began)
    finally:
        ledger.close()


def _with_ledger(config, dry_run, ledger, began):
    outcomes, failures = [], 0
    if not dry_run:
        _remove_partials(config)
        failures += _finish_interrupted(config, ledger, outcomes)
    stability = Stability(config.state_dir)
    units = find_units(config.inbox, config.ignore)
    stable, waiting = stability.observe(units, config.unchanged_runs, config.min_age_seconds)
    if dry_run:
        for unit in stable:
            log.info("would process %s", printable(unit.main))
        log.info("dry run: %d stable, %d waiting; nothing changed", len(stable), len(waiting))
        return ExitCode.OK
    stability.save()
    if stable:
        from . import slide  # parsing and verification code: only loaded when there is work
        for unit in stable:
            failures += _guarded(outcomes, slide.start, config, unit, ledger)
    quarantined = sum(o.status == Status.QUARANTINED for o in outcomes)
    summary = {
        "time": time.time(), "anonymized": len(outcomes) - quarantined, "quarantined": quarantined,
        "failed": failures, "waiting": len(waiting), "bytes": sum(o.size for o in outcomes),
        "seconds": round(time.monotonic() - began, 3),
    }
    _remember(config, summary)
    log.info("run: %(anonymized)d anonymized, %(quarantined)d quarantined, %(failed)d failed, "
             "%(waiting)d waiting, %(bytes)d bytes, %(seconds).2f s", summary)
    if failures:
        return ExitCode.FAILED
    return ExitCode.QUARANTINED if quarantined else ExitCode.OK


def _finish_interrupted(config, ledger, outcomes):
    """Resume this host's staged jobs, then take over those of hosts that stopped (PostgreSQL)."""
    failures = 0
    staged = sorted(os.listdir(config.staging))
    ledger.release_orphans(staged)
    taken = ledger.take_over_stale(lambda j: os.path.join(config.staging, j))
    if not staged and not taken:
        return 0  # the usual idle tick: no parsing code (and no numpy) to import
    from . import slide
    for job in staged:
        failures += _guarded(outcomes, slide.resume, config, os.path.join(config.staging, job), ledger)
    for job, old_stage, stage in taken:
        log.info("taking over job %s from a host that stopped", job)
        if not os.path.isdir(old_stage):
            ledger.release(job)  # it never left the inbox: the next scan claims it afresh
            continue
        try:
            fsops.move(old_stage, stage)
        except OSError as exc:
            log.error("cannot take over job %s: %s", job, exc.strerror)
            failures += 1
            continue
        failures += _guarded(outcomes, slide.resume, config, stage, ledger)
    return failures


def _guarded(outcomes, step, *args):
    """Run one slide's step; a failure there must not stop the other slides. Returns 1 on failure."""
    try:
        outcome = step(*args)
    except Exception as exc:
        log.error("could not finish a slide (it stays in staging for the next run): %s: %s",
                  type(exc).__name__, exc)
        log.debug("details", exc_info=True)
        return 1
    if outcome is not None:
        outcomes.append(outcome)
        if outcome.status == Status.ANONYMIZED:
            log.info("anonymized %s -> %s (%.2f s)", printable(outcome.original), outcome.output,
                     outcome.seconds)
        else:
            log.warning("quarantined %s: %s", printable(outcome.original), printable(outcome.reason))
    return 0


def _remove_partials(config):
    """Cross-device copies cut short by a crash: their source still exists, so they can go."""
    for folder in (config.outbox, config.quarantine):
        for name in os.listdir(folder):
            if name.startswith(durable.PARTIAL_PREFIX):
                fsops.remove(os.path.join(folder, name))


def _remember(config, summary):
    path = os.path.join(config.state_dir, RUNS_FILE)
    lines = last_runs(config, RUNS_KEPT - 1)
    lines.append(summary)
    durable.write_atomic(path, "".join(json.dumps(x) + "\n" for x in lines).encode("utf-8"))


def last_runs(config, n):
    try:
        with open(os.path.join(config.state_dir, RUNS_FILE), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh.readlines()[-n:] if line.strip()]
    except (OSError, ValueError):
        return []
