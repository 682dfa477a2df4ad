"""`paw.py status`: what waits in the inbox, what needs a person, what recent runs did, what sits
in quarantine."""

import json
import os
import time

from . import attention, preflight
from .errors import LedgerUnavailable
from .fsops import REASON_SUFFIX, reason_name
from .inbox import Stability, find_units
from .job import last_runs
from .ledger import open_ledger


def collect(config):
    problems = preflight.problems(config)
    skipped = []
    units = find_units(config.inbox, config.ignore, skipped) if os.path.isdir(config.inbox) else []
    previous = Stability(config.state_dir)
    now = time.time()
    stable = 0
    for unit in units:
        seen = previous.previous(unit.main)
        if seen and seen[0] == unit.fingerprint:
            age = max(now - unit.newest_change, now - seen[2])
            stable += seen[1] >= config.unchanged_runs and age >= config.min_age_seconds
    noted = attention.load(config.state_dir) if os.path.isdir(config.state_dir) else \
        {kind: {} for kind in attention.KINDS}
    quarantine = []
    if os.path.isdir(config.quarantine):
        names = sorted(n for n in os.listdir(config.quarantine) if not n.startswith("."))
        reasons = {reason_name(n) for n in names}
        for name in names:
            if name.endswith(REASON_SUFFIX) and name in reasons:
                continue
            reason_file = os.path.join(config.quarantine, reason_name(name))
            reason = ""
            if os.path.isfile(reason_file):
                with open(reason_file, encoding="utf-8", errors="replace") as fh:
                    reason = fh.read(2000).strip()
            quarantine.append({"name": name, "reason": reason})
    staging = os.listdir(config.staging) if os.path.isdir(config.staging) else []
    runs = last_runs(config, 200)
    successes = [r for r in runs if not r["failed"]]
    outcomes = []
    try:
        ledger = open_ledger(config)
    except LedgerUnavailable as exc:
        problems.append(str(exc))
    else:
        try:
            outcomes = [{k: row.get(k, "") for k in ("time_utc", "status", "original", "output", "folder",
                                                     "error")}
                        for row in ledger.rows(last=10)]
        finally:
            ledger.close()
    held = noted["held"]
    return {
        "problems": problems,
        "inbox": {"slides": len(units), "stable": stable, "waiting": len(units) - stable},
        "attention": {
            "skipped": [{"path": p, "reason": r} for p, r in sorted(dict(skipped).items())],
            "left_alone": [{"path": m, "attempts": e["attempts"], "reason": e.get("reason", "")}
                           for m, e in sorted(held.items()) if e.get("held")],
            "failed_claims": [{"path": m, "attempts": e["attempts"], "reason": e.get("reason", "")}
                              for m, e in sorted(held.items()) if not e.get("held")],
            "clock_ahead": [{"path": m, "seconds": s} for m, s in sorted(noted["skewed"].items())],
            "open_for_writing": sorted(noted["busy"]),
        },
        "staging": len(staging),
        "quarantine": quarantine,
        "last_runs": runs[-10:],
        "last_outcomes": outcomes,
        "seconds_since_last_run": round(time.time() - runs[-1]["time"]) if runs else None,
        "seconds_since_last_success":
            round(time.time() - successes[-1]["time"]) if successes else None,
    }


def status(config, as_json):
    info = collect(config)
    code = 2 if info["problems"] else 0  # what `run` would stop with
    if as_json:
        print(json.dumps(info, indent=2))
        return code
    for problem in info["problems"]:
        print(f"not ready: {problem}")
    inbox = info["inbox"]
    print(f"inbox: {inbox['slides']} slides ({inbox['stable']} stable, {inbox['waiting']} waiting)")
    _print_attention(info["attention"])
    if info["staging"]:
        print(f"staging: {info['staging']} interrupted jobs (the next run finishes them)")
    ago, ok = info["seconds_since_last_run"], info["seconds_since_last_success"]
    print("last run: " + ("never" if ago is None else f"{ago} s ago") +
          ("" if ok == ago else ", last run without failures: " +
           ("never" if ok is None else f"{ok} s ago")))
    for run in info["last_runs"][-5:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["time"]))
        print(f"  {when}: {run['anonymized']} anonymized, {run['quarantined']} quarantined, "
              f"{run['failed']} failed, {run['waiting']} waiting")
    if info["last_outcomes"]:
        print("last slides:")
    for row in info["last_outcomes"]:
        output = os.path.join(row["folder"], row["output"]) if row.get("folder") else row["output"]
        print(f"  {row['time_utc']} {row['status']}: {row['original']} -> {output}"
              + (f" ({row['error']})" if row["error"] else ""))
    print(f"quarantine: {len(info['quarantine'])}")
    for item in info["quarantine"]:
        print(f"  {item['name']}: {item['reason'] or '(no reason recorded)'}")
    return code


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
