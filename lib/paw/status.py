"""What waits in the inbox and why, what needs a person, what recent runs did, what sits in
quarantine: for `paw.py status` (text and `--json`), the dry run and the status page (report.py).

Every slide in the inbox is judged the way the next run will judge it (`judge`): the stability
record the last run saved says how many runs saw it unchanged and since when; the run history
says when runs happen, so paw can say *when* a waiting slide will be taken, not only that it
waits. The same judgement serves all three, so the page, `status --json` and the dry run agree.

Everything here reads; nothing is written. The lists hold original file names and reasons:
they stay on the host (the page goes where technicians read it, never into the outbox).
"""

import json
import math
import os
import time

from . import attention, preflight
from .errors import LedgerUnavailable
from .fsops import OWNERSHIP_FIX, REASON_SUFFIX, reason_name
from .inbox import SKEW_SECONDS, Stability, find_units
from .ledger import BY_HAND

RECENT = 10          # runs and ledger rows shown
SHOWN = 200          # slides and quarantined files listed by the text output and the page
DAYS = 14            # slides per day, for the chart
RETRY = ("to try a slide again, fix what its reason says, then move it back into the inbox; its "
         ".reason.txt may come along (paw ignores it and removes it)")


class Schedule:
    """When runs happen, as far as the last runs tell: their usual interval (the median gap of
    the last ten) and when the next one is due (now when unknown or overdue)."""

    def __init__(self, runs, now):
        times = [r["time"] for r in runs[-11:] if isinstance(r.get("time"), (int, float))]
        gaps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
        self.interval = gaps[len(gaps) // 2] if gaps else None
        self.last = times[-1] if times else None
        due = self.last + self.interval if self.interval and self.last else now
        self.next = max(now, due)

    def first_run(self, k, when):
        """The time of the first run that is the k-th from now or later and starts at or after
        `when`; None when the interval is not known."""
        if self.interval is None:
            return None
        at = self.next + (k - 1) * self.interval
        if at < when:
            at += math.ceil((when - at) / self.interval) * self.interval
        return at

    def late(self, now):
        """Whether runs seem to have stopped: none for three usual intervals (at least 15 min)."""
        return self.last is not None and self.interval is not None and \
            now - self.last > max(3 * self.interval, 900)


def judge(config, main, fingerprint, newest, seen, noted, schedule, now):
    """What the next run will do with one slide of the inbox and why, as a dict:
    path, ready (the next run takes it), why (codes), text (for people), runs_seen,
    runs_needed, old_enough_at and expected_at (epoch seconds or None).

    `seen` is (fingerprint, runs, since) from the last run's stability record, or None;
    `noted` is attention.json's {kind: {path: details}}; `newest` the latest mtime/ctime."""
    needed, min_age = config.unchanged_runs, config.min_age_seconds
    held = noted["held"].get(main)
    if held and held.get("fingerprint") != fingerprint:
        held = None  # saved again since: tried afresh
    if seen and seen[0] == fingerprint:
        runs, first, change = seen[1], seen[2], None
    else:
        runs, first, change = 0, None, "changed" if seen else "new"
    at = schedule.next
    first = at if first is None else first
    old_at = min(newest, first) + min_age
    runs_left = max(needed - runs, 1)  # the next run counts as one
    busy = main in noted["busy"]
    why, parts = [], []
    if held and held.get("held"):
        why.append("held")
        parts.append(f"left alone after {held.get('attempts', 0)} failed attempts to take it from the "
                     f"inbox ({held.get('reason', '')}): fix that, then save, rename or touch the "
                     "file to try again")
    elif held:
        why.append("claim_failed")
        parts.append(f"could not be taken from the inbox ({held.get('attempts', 0)} of "
                     f"{attention.MAX_ATTEMPTS} attempts: {held.get('reason', '')}); the next run "
                     "tries again")
    if busy:
        why.append("busy")
        parts.append("still open for writing on this host (a copy in progress?): taken once it is "
                     "closed")
    refused = noted.get("unwritable", {}).get(main)
    if refused:
        why.append("unwritable")
        parts.append(f"left in the inbox: {refused}; {OWNERSHIP_FIX}")
    ready = runs + 1 >= needed and at >= old_at and not busy and not refused \
        and not (held and held.get("held"))
    if ready:
        parts.insert(0, "ready: the next run takes it")
    elif change == "new":
        why.append("new")
        parts.append(f"new since the last run: taken once it stays unchanged for {_runs(needed)}")
    elif change == "changed":
        why.append("changed")
        parts.append(f"changed since the last run (still being copied or saved?): taken once it "
                     f"stays unchanged for {_runs(needed)}" + (f" and {min_age:g} s" if min_age else ""))
    elif runs + 1 < needed:
        why.append("runs")
        parts.append(f"seen unchanged in {runs} of {needed} runs: taken after {runs_left} more "
                     f"run{'' if runs_left == 1 else 's'} if it stays so")
    if at < old_at and change != "changed" and not ready:
        why.append("young")
        parts.append(f"last changed at {_clock(min(newest, first), now)}: too young until "
                     f"{_clock(old_at, now)} (stability.min_age_seconds: {min_age:g})")
    if newest > now + SKEW_SECONDS:
        why.append("future")
        parts.append(f"its modification time is {newest - now:.0f} s ahead of this host's clock "
                     "(the clock of the computer that wrote it?): paw counts its age from when it "
                     "first saw it")
    expected = None
    if ready:
        expected = at
    elif not busy and not held and change != "changed":
        expected = schedule.first_run(runs_left, old_at)
    if expected is not None and expected > now + 30:
        parts.append(f"expected about {_clock(expected, now, seconds=False)}")
    return {"path": main, "ready": ready, "why": why or ["ready"], "text": "; ".join(parts),
            "runs_seen": runs, "runs_needed": needed,
            "old_enough_at": round(old_at), "expected_at": round(expected) if expected else None}


def _runs(n):
    return f"{n} run" + ("" if n == 1 else "s")


def _clock(when, now, seconds=True):
    """A local time for people: 14:03:20, with the date when it is not today."""
    fmt = "%H:%M:%S" if seconds else "%H:%M"
    if time.strftime("%Y-%m-%d", time.localtime(when)) != time.strftime("%Y-%m-%d", time.localtime(now)):
        fmt = "%Y-%m-%d " + fmt
    return time.strftime(fmt, time.localtime(when))


def noted_of(config):
    """attention.json's {kind: {path: details}} (empty before the first run)."""
    if os.path.isdir(config.state_dir):
        return attention.load(config.state_dir)
    return {kind: {} for kind in attention.KINDS}


class Survey:
    """A fresh scan of the inbox judged against the record the last run saved: `units` (the
    inbox's slides) and `slides` (judge()'s dict for each, in the same order)."""

    def __init__(self, config, now):
        from .job import RUNS_KEPT, last_runs
        self.problems = preflight.problems(config)
        self.skipped = []
        self.units = find_units(config.inbox, config.ignore, self.skipped) \
            if os.path.isdir(config.inbox) else []
        previous = Stability(config.state_dir)
        self.noted = noted_of(config)
        self.runs = last_runs(config, RUNS_KEPT)
        self.schedule = Schedule(self.runs, now)
        self.slides = [judge(config, u.main, u.fingerprint, u.newest_change, previous.previous(u.main),
                             self.noted, self.schedule, now) for u in self.units]


def collect(config, now=None):
    """Everything `status` shows, judged afresh (Survey)."""
    now = time.time() if now is None else now
    survey = Survey(config, now)
    problems, skipped, noted, runs, schedule, slides = (survey.problems, survey.skipped, survey.noted,
                                                        survey.runs, survey.schedule, survey.slides)
    ledger = None
    try:
        from .ledger import open_ledger
        ledger = open_ledger(config)
    except LedgerUnavailable as exc:
        problems.append(str(exc))
    try:
        return assemble(config, now, problems, slides, len(slides), skipped, noted, runs, schedule, ledger)
    finally:
        if ledger is not None:
            ledger.close()


def assemble(config, now, problems, slides, total, skipped, noted, runs, schedule, ledger):
    """The status as one JSON-ready dict. `slides` are judge()'s dicts (all of them, or the
    first of `total` when a run lists only some)."""
    ready = sum(s["ready"] for s in slides)
    successes = [r for r in runs if not r.get("failed")]
    outcomes = []
    if ledger is not None:
        try:
            outcomes = [{**{k: row.get(k, "") for k in ("time_utc", "status", "original", "output", "folder",
                                                        "error", "pseudonym", "case")},
                         "by_hand": (row.get("job") or "").startswith(BY_HAND)}
                        for row in ledger.rows(last=RECENT)]
        except LedgerUnavailable as exc:
            problems = problems + [str(exc)]
    held = noted["held"]
    staging = os.listdir(config.staging) if os.path.isdir(config.staging) else []
    return {
        "time": round(now),
        "problems": problems,
        "inbox": {"slides": total, "stable": ready, "waiting": total - ready, "listed": len(slides)},
        "slides": slides,
        "attention": {
            "skipped": [{"path": p, "reason": r} for p, r in sorted(dict(skipped).items())],
            "left_alone": [{"path": m, "attempts": e["attempts"], "reason": e.get("reason", "")}
                           for m, e in sorted(held.items()) if e.get("held")],
            "failed_claims": [{"path": m, "attempts": e["attempts"], "reason": e.get("reason", "")}
                              for m, e in sorted(held.items()) if not e.get("held")],
            "clock_ahead": [{"path": m, "seconds": s} for m, s in sorted(noted["skewed"].items())],
            "open_for_writing": sorted(noted["busy"]),
            "cannot_take": [{"path": m, "reason": w} for m, w in sorted(noted["unwritable"].items())],
            "writers_unseen": _blind(noted["blind"]),
            "modes_kept": noted["modes_kept"].get("warning", ""),
        },
        "staging": len(staging),
        "quarantine": quarantine(config),
        "retry": RETRY,
        "last_runs": runs[-RECENT:],
        "last_outcomes": outcomes,
        "per_day": per_day(config, now),
        "schedule": {"interval_seconds": round(schedule.interval) if schedule.interval else None,
                     "next_run_at": round(schedule.next) if schedule.interval else None,
                     "late": schedule.late(now)},
        "seconds_since_last_run": round(now - runs[-1]["time"]) if runs else None,
        "seconds_since_last_success": round(now - successes[-1]["time"]) if successes else None,
    }


def quarantine(config):
    """Every slide in the quarantine with its reason, newest first: [{name, reason, time}] (the
    status page, when it is kept there, is not one)."""
    if not os.path.isdir(config.quarantine):
        return []
    page = os.path.basename(config.report_html) \
        if config.report_html and os.path.dirname(config.report_html) == config.quarantine else None
    names = sorted(n for n in os.listdir(config.quarantine) if not n.startswith(".") and n != page)
    reasons = {reason_name(n) for n in names}
    found = []
    for name in names:
        if name.endswith(REASON_SUFFIX) and name in reasons:
            continue
        reason, when = "", None
        try:  # the reason file was written when the slide was quarantined (the slide keeps its times)
            with open(os.path.join(config.quarantine, reason_name(name)), encoding="utf-8",
                      errors="replace") as fh:
                reason = fh.read(2000).strip()
                when = os.fstat(fh.fileno()).st_mtime
        except OSError:
            pass
        try:
            when = when or os.lstat(os.path.join(config.quarantine, name)).st_mtime
        except OSError:
            continue
        found.append({"name": name, "reason": reason, "time": round(when)})
    found.sort(key=lambda item: -item["time"])
    return found


def per_day(config, now):
    """Slides this host anonymized and quarantined per local day, the last DAYS days, oldest
    first: [{date, anonymized, quarantined}] (from the run history's day counts)."""
    from .job import load_days
    counts = load_days(config)
    days = []
    for back in range(DAYS - 1, -1, -1):
        day = time.strftime("%Y-%m-%d", time.localtime(now - back * 86400))
        anonymized, quarantined = counts.get(day, (0, 0))
        days.append({"date": day, "anonymized": anonymized, "quarantined": quarantined})
    return days


def status(config, as_json):
    info = collect(config)
    code = 2 if info["problems"] else 0  # what `run` would stop with
    if as_json:
        print(json.dumps(info, indent=2))
        return code
    print_text(info)
    return code


def print_text(info):
    from .naming import printable
    for problem in info["problems"]:
        print(f"not ready: {problem}")
    inbox = info["inbox"]
    print(f"inbox: {inbox['slides']} slides ({inbox['stable']} ready for the next run, "
          f"{inbox['waiting']} waiting)")
    for item in info["slides"][:SHOWN]:
        print(f"  {printable(item['path'])}: {item['text']}")
    if len(info["slides"]) > SHOWN:
        print(f"  … and {len(info['slides']) - SHOWN} more ('status --json' lists every one)")
    _print_attention(info["attention"])
    if info["staging"]:
        print(f"staging: {info['staging']} unfinished jobs (each run resumes them; when the log says "
              "'could not finish a slide', that cause must be fixed first)")
    ago, ok = info["seconds_since_last_run"], info["seconds_since_last_success"]
    every = info["schedule"]["interval_seconds"]
    print("last run: " + ("never" if ago is None else f"{_ago(ago)} ago") +
          (f" (runs about every {_ago(every)})" if every else "") +
          ("" if ok == ago else ", last run without failures: " + ("never" if ok is None else f"{_ago(ok)} ago")))
    if info["schedule"]["late"]:
        print("  runs seem to have stopped: check cron, the systemd timer or the Task Scheduler")
    for run in info["last_runs"][-5:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["time"]))
        print(f"  {when}: {run['anonymized']} anonymized, {run['quarantined']} quarantined, "
              f"{run['failed']} failed, {run['waiting']} waiting")
    if info["last_outcomes"]:
        print("last slides:")
    for row in info["last_outcomes"]:
        output = os.path.join(row["folder"], row["output"]) if row.get("folder") else row["output"]
        how = f"{row['status']} by hand" if row.get("by_hand") else row["status"]
        print(f"  {row['time_utc']} {how}: {printable(row['original'])} -> {printable(output)}"
              + (f" ({row['error']})" if row["error"] else ""))
    print(f"quarantine: {len(info['quarantine'])}" + (f"; {info['retry']}" if info["quarantine"] else ""))
    for item in info["quarantine"][:SHOWN]:
        print(f"  {printable(item['name'])}: {item['reason'] or '(no reason recorded)'}")
    if len(info["quarantine"]) > SHOWN:
        print(f"  … and {len(info['quarantine']) - SHOWN} more")


def _ago(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _print_attention(noted):
    from .naming import printable
    for item in noted["skipped"]:
        print(f"skipped in the inbox: {printable(item['path'])}: {item['reason']}")
    for item in noted["left_alone"]:
        print(f"left alone until it changes: {printable(item['path'])}: could not be claimed "
              f"{item['attempts']} time(s): {item['reason']} (fix the cause, then save, rename or "
              "touch the file to try again)")
    for item in noted["failed_claims"]:
        print(f"could not be claimed yet: {printable(item['path'])} ({item['attempts']} attempt(s)): "
              f"{item['reason']}")
    for item in noted["clock_ahead"]:
        print(f"clock ahead: {printable(item['path'])} has a modification time {item['seconds']} s "
              "in the future; paw judges its age by its own clock")
    for path in noted["open_for_writing"]:
        print(f"waiting: {printable(path)} is still open for writing on this host")
    for item in noted["cannot_take"]:
        print(f"left in the inbox: {printable(item['path'])}: {item['reason']}; {OWNERSHIP_FIX}")
    if noted["writers_unseen"]:
        print(noted["writers_unseen"])
    if noted["modes_kept"]:
        print(f"last delivery: {noted['modes_kept']}")


def _blind(owners):
    """The run's line about a lease check it could not make ('' when it could)."""
    if not owners:
        return ""
    from .job import blind_warning
    return blind_warning(owners)
