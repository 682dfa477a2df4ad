"""One run of paw: lock → finish interrupted work → find stable slides → process each → summary.

Exit status: 0 nothing to do, all anonymized, or another run holds the lock; 3 at least one
slide was quarantined in this run; 1 something failed that paw could not finish (the slide stays
in staging and the next run resumes it); 2 a configuration error, or a folder or the ledger
that cannot be used (preflight.py: found before anything is claimed).
"""

import errno
import json
import logging
import os
import time

from . import durable, fsops, preflight
from .attention import MAX_ATTEMPTS, Attention
from .errors import ClaimFailed, ExitCode, LedgerUnavailable, NotReady
from .fsops import OWNERSHIP_FIX, paws_user, user_name
from .inbox import Stability, open_for_writing, scan, tidy_reason_files, unwritable
from .journal import Status
from .ledger import open_ledger
from .naming import printable

log = logging.getLogger("paw")
RUNS_FILE = "runs.jsonl"
RUNS_KEPT = 200
DAYS_FILE = "days.json"
DAYS_KEPT = 60
SHOWN = 200  # waiting slides the status page lists (status.SHOWN)
# A claim failing with one of these says nothing about the slide (the disk, the share, the
# host): it is not counted towards leaving the slide alone; the run fails until it is fixed.
ENVIRONMENT = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.ENOMEM,
               errno.ENFILE, errno.EMFILE, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN}


def run(config, dry_run=False, monitor=None):
    if dry_run:  # reads only: no lock, no state folder made, nothing recorded
        from .forecast import forecast
        return forecast(config)
    preflight.check(config)
    preflight.check_runner(config.state_dir)
    durable.make_private_dir(config.staging)  # and state_dir: 0700, durable in their parents
    lock = lock_state(config.state_dir)
    if lock is None:
        log.info("another paw run holds the lock; leaving the work to it")
        return ExitCode.OK
    try:
        if monitor is None:
            return _locked_run(config)
        return monitor.checked(lambda: _locked_run(config))
    finally:
        os.close(lock)


def lock_state(state_dir):
    """Lock the state folder itself (flock on its descriptor; the kernel drops it when the
    process dies), or None if another run holds it. A lock *file* can be deleted while held,
    letting a second run in; the folder holds the staging jobs, so whoever removes it removes
    the work too. The descriptor must still be the folder the path names (it may have been
    replaced between open and lock)."""
    import fcntl
    for _ in range(10):
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        held, named = os.fstat(fd), _stat_or_none(state_dir)
        if named is not None and (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            return fd
        os.close(fd)
        durable.make_private_dir(state_dir)
    raise OSError(errno.EBUSY, "the state folder keeps being replaced", state_dir)


def _stat_or_none(path):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _locked_run(config):
    began = time.monotonic()
    try:
        ledger = open_ledger(config)
    except LedgerUnavailable as exc:  # nothing claimed, nothing moved
        raise NotReady(f"{exc}; check ledger.postgres.dsn and that the server is running") from None
    try:
        return _with_ledger(config, ledger, began)
    finally:
        ledger.close()


def _with_ledger(config, ledger, began):
    outcomes, failures = [], 0
    failures += _finish_interrupted(config, ledger, outcomes)
    stability = Stability(config.state_dir)
    skipped, reasons = [], []
    stable, waiting, skewed = stability.observe(scan(config.inbox, config.ignore, skipped, reasons),
                                                config.unchanged_runs, config.min_age_seconds,
                                                keep=SHOWN if config.report_html else 0)
    stability.save()
    attention = Attention(config.state_dir)
    _report_scan(attention, skipped, skewed)
    held = [u for u in stable if attention.is_held(u)]
    stable = [u for u in stable if not attention.is_held(u)]
    busy, refused, blind, looked = set(), set(), [], False
    if stable:
        for unit in stable:
            if _cannot_take(attention, config, unit):
                refused.add(unit.main)
                continue
            looked = True
            if open_for_writing(config.inbox, unit, blind):
                busy.add(unit.main)
                if attention.busy(unit):
                    log.info("%s is still open for writing on this host; left for the next run",
                             printable(unit.main))
                continue
            failures += _claim_and_process(outcomes, attention, config, unit, ledger)
        if looked and attention.blind(blind):
            log.warning(BLIND, _names(attention.data["blind"]))
    for rel in tidy_reason_files(config.inbox, reasons):
        log.info("removed %s from the inbox (a quarantine reason file; its slide is gone)", printable(rel))
    _report_modes(attention, outcomes)
    attention.settle(stability.present, busy, refused)
    attention.save()
    quarantined = sum(o.status == Status.QUARANTINED for o in outcomes)
    summary = {
        "time": time.time(), "anonymized": len(outcomes) - quarantined, "quarantined": quarantined,
        "failed": failures, "waiting": waiting + len(busy), "held": len(held) + len(refused),
        "bytes": sum(o.size for o in outcomes), "seconds": round(time.monotonic() - began, 3),
    }
    _remember(config, summary)
    if config.report_html:
        left = [u for u in stable + held if os.path.lexists(os.path.join(config.inbox, u.main))]
        _write_report(config, ledger, stability, left, waiting, skipped, attention.data)
    log.info("run: %(anonymized)d anonymized, %(quarantined)d quarantined, %(failed)d failed, "
             "%(waiting)d waiting, %(bytes)d bytes, %(seconds).2f s", summary)
    if failures:
        return ExitCode.FAILED
    return ExitCode.QUARANTINED if quarantined else ExitCode.OK


def _report_scan(attention, skipped, skewed):
    """One warning per new problem (not one per run): Sentry makes an event of each."""
    for path, reason in attention.scanned(skipped):
        log.warning("skipped %s in the inbox: %s", printable(path), reason)
    for unit, ahead in attention.skewed(skewed):
        log.warning("%s has a modification time %.0f s in the future (the clock of the computer "
                    "that wrote it?); paw judges its age by its own clock", printable(unit.main), ahead)


def _cannot_take(attention, config, unit):
    """A slide paw's user could not edit or move out of its folder stays in the inbox, never
    claimed (it would be stuck in staging): named with the fix once, in `status` always."""
    try:
        why = unwritable(config.inbox, unit)
    except OSError:
        return False  # vanished or changed: the claim sees to it
    if why is None:
        return False
    if attention.unwritable(unit, why):
        log.warning("%s is left in the inbox: %s; %s", printable(unit.main), why, OWNERSHIP_FIX)
    return True


# Templates: Sentry gets the template of a log message, never its arguments.
BLIND = ("cannot see writers on this host: no CAP_LEASE and the files belong to %s; only the "
         "stability rule applies (give paw's service AmbientCapabilities=CAP_LEASE, or run paw "
         "as the shares' owner)")
MODES_KEPT = ("%d delivered slide(s) keep the technician's owner and modes (%s): their files "
              "belong to %s, not to %s, and only a file's owner may give it the outbox's group "
              "and read-only modes; run paw as the shares' owner (or root), or let Samba force "
              "user = that user")


def blind_warning(owners):
    """The line for a run (and `status`) that could not look for writers: owners {uid: True}."""
    return BLIND % _names(owners)


def _names(uids):
    return ", ".join(user_name(int(uid)) for uid in uids)


def _report_modes(attention, outcomes):
    """One warning per run (cron mails it) for delivered slides whose files keep the scanner's
    owner and modes (only their owner may change them); `status` shows it until a run delivers
    slides that all got the outbox's modes."""
    kept = [o for o in outcomes if o.modes_kept]
    if not kept:
        if any(o.status == Status.ANONYMIZED for o in outcomes):
            attention.modes_kept(None)
        return
    args = (len(kept), kept[0].modes_kept[1], ", ".join(sorted({user_name(o.modes_kept[0]) for o in kept})),
            paws_user())
    log.warning(MODES_KEPT, *args)
    attention.modes_kept(MODES_KEPT % args)


def _claim_and_process(outcomes, attention, config, unit, ledger):
    """Start one stable slide; 1 if that failed in a way the run must report as a failure."""
    # Parsing and verification code: loaded only for a slide to claim, never on a tick where
    # the only stable slides wait (open for writing, or paw's user cannot write them).
    from . import slide
    try:
        outcome = slide.start(config, unit, ledger)
    except ClaimFailed as exc:  # nothing was claimed: the slide is where it was
        if exc.errno in ENVIRONMENT:
            log.error("could not claim %s: %s", printable(unit.main), exc)
            return 1
        attempts, held = attention.claim_failed(unit, str(exc), exc.final)
        if held:
            log.warning("%s is left alone until it changes: it could not be claimed (%s)",
                        printable(unit.main), exc)
            return 0
        log.error("could not claim %s (attempt %d of %d): %s", printable(unit.main), attempts,
                  MAX_ATTEMPTS, exc)
        return 1
    except ModuleNotFoundError:
        raise  # paw's installation, not the slide: the run stops with the command that fixes it
    except Exception as exc:
        return _failed(exc)
    attention.claimed(unit.main)
    return _record(outcomes, outcome)


def _finish_interrupted(config, ledger, outcomes):
    """Resume this host's staged jobs, then take over those of hosts that stopped (PostgreSQL)."""
    failures = 0
    staged = []
    for name in sorted(os.listdir(config.staging)):
        if name.startswith(durable.PARTIAL_PREFIX):  # a takeover's copy cut short
            fsops.remove(os.path.join(config.staging, name))
        else:
            staged.append(name)
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
    except ModuleNotFoundError:
        raise  # paw's installation, not the slide: the run stops with the command that fixes it
    except Exception as exc:
        return _failed(exc)
    return _record(outcomes, outcome)


def _failed(exc):
    log.error("could not finish a slide (it stays in staging for the next run): %s: %s",
              type(exc).__name__, exc)
    log.debug("details", exc_info=True)
    return 1


def _record(outcomes, outcome):
    if outcome is not None:
        outcomes.append(outcome)
        if outcome.status == Status.ANONYMIZED:
            log.info("anonymized %s -> %s (%.2f s)", printable(outcome.original), printable(outcome.output),
                     outcome.seconds)
        else:
            log.warning("quarantined %s: %s", printable(outcome.original), printable(outcome.reason))
    return 0


def _remember(config, summary):
    path = os.path.join(config.state_dir, RUNS_FILE)
    lines = last_runs(config, RUNS_KEPT - 1)
    lines.append(summary)
    durable.write_atomic(path, "".join(json.dumps(x) + "\n" for x in lines).encode("utf-8"))
    if summary["anonymized"] or summary["quarantined"]:
        days = load_days(config)
        day = time.strftime("%Y-%m-%d", time.localtime(summary["time"]))
        anonymized, quarantined = days.get(day, (0, 0))
        days[day] = [anonymized + summary["anonymized"], quarantined + summary["quarantined"]]
        kept = sorted(days)[-DAYS_KEPT:]
        durable.write_atomic(os.path.join(config.state_dir, DAYS_FILE),
                             json.dumps({d: days[d] for d in kept}).encode("utf-8"))


def load_days(config):
    """{local date: [anonymized, quarantined]} of the slides this host finished, the last
    DAYS_KEPT days with any (for the status page's chart)."""
    try:
        with open(os.path.join(config.state_dir, DAYS_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
        return {d: list(v) for d, v in data.items() if isinstance(v, list) and len(v) == 2}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _write_report(config, ledger, stability, left, waiting, skipped, noted):
    """The status page (report.html), from what this run saw: never a reason to fail the run."""
    try:
        from . import report
        report.after_run(config, ledger, stability, left, waiting, skipped, noted, last_runs(config, RUNS_KEPT))
    except Exception as exc:  # noqa: BLE001 - the page is for people; slides come first
        log.warning("could not write the status page (report.html): %s", _short(exc))
        log.debug("details", exc_info=True)


def _short(exc):
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__} (errno {exc.errno})"
    return type(exc).__name__


def last_runs(config, n):
    try:
        with open(os.path.join(config.state_dir, RUNS_FILE), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh.readlines()[-n:] if line.strip()]
    except (OSError, ValueError):
        return []
