"""`paw.py demo`: see paw work without scanner files.

Creates the configured folders, drops a generated Aperio slide with fake identifiers into the
inbox and runs the job like cron would, with min_age_seconds set to 0 so nobody waits two minutes.
"""

import dataclasses
import os

from . import sample
from .job import run
from .ledger import open_ledger
from .tools import init

SAMPLE = "S26-047119 A1 HE.svs"


def demo(config):
    init(config)
    path = os.path.join(config.inbox, SAMPLE)
    planted = sample.write(path)
    print(f"dropped {path} with fake identifiers: {', '.join(planted)}")
    quick = dataclasses.replace(config, min_age_seconds=0.0)
    for tick in range(1, config.unchanged_runs + 2):
        print(f"run {tick} (as cron would start it):")
        code = run(quick)
        if not os.path.exists(path):
            break
    rows = [r for r in open_ledger(config).rows() if r["original"] == SAMPLE]
    if not rows:
        print("the sample is still in the inbox; see the log above")
        return 1
    row = rows[-1]
    where = config.outbox if row["status"] == "anonymized" else config.quarantine
    output = os.path.join(where, row["output"])
    print(f"\n{row['status']}: {output}")
    print(f"removed: {row['removed'] or row['error']}")
    with open(output, "rb") as fh:
        data = fh.read()
    left = [v for v in planted if v.encode() in data]
    print("planted identifiers left in the output: " + (", ".join(left) if left else "none"))
    print(f"ledger row written to {config.ledger_csv}")
    return code
