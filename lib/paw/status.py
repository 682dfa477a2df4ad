"""`paw.py status`: what waits in the inbox, what recent runs did, what sits in quarantine."""

import json
import os
import time

from .inbox import Stability, find_units
from .job import last_runs
from .ledger import open_ledger


def collect(config):
    units = find_units(config.inbox, config.ignore) if os.path.isdir(config.inbox) else []
    previous = Stability(config.state_dir).seen
    stable = sum(1 for u in units
                 if previous.get(u.main, {}).get("runs", 0) >= config.unchanged_runs
                 and time.time() - u.newest_change >= config.min_age_seconds)
    quarantine = []
    if os.path.isdir(config.quarantine):
        for name in sorted(os.listdir(config.quarantine)):
            if name.endswith(".reason.txt") or name.startswith("."):
                continue
            reason_file = os.path.join(config.quarantine, name + ".reason.txt")
            reason = ""
            if os.path.exists(reason_file):
                with open(reason_file, encoding="utf-8") as fh:
                    reason = fh.read().strip()
            quarantine.append({"name": name, "reason": reason})
    staging = os.listdir(config.staging) if os.path.isdir(config.staging) else []
    runs = last_runs(config, 200)
    successes = [r for r in runs if not r["failed"]]
    ledger = open_ledger(config)
    try:
        outcomes = [{k: row.get(k, "") for k in ("time_utc", "status", "original", "output", "error")}
                    for row in ledger.rows(last=10)]
    finally:
        ledger.close()
    return {
        "inbox": {"slides": len(units), "stable": stable, "waiting": len(units) - stable},
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
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    inbox = info["inbox"]
    print(f"inbox: {inbox['slides']} slides ({inbox['stable']} stable, {inbox['waiting']} waiting)")
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
        print(f"  {row['time_utc']} {row['status']}: {row['original']} -> {row['output']}"
              + (f" ({row['error']})" if row["error"] else ""))
    print(f"quarantine: {len(info['quarantine'])}")
    for item in info["quarantine"]:
        print(f"  {item['name']}: {item['reason'] or '(no reason recorded)'}")
    return 0
