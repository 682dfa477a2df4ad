"""`paw.py demo`: see paw work without scanner files, and without touching a real site.

The demo never reads paw.yaml: it runs the embedded default configuration in a folder of its
own, `demo/` in the checkout (a temporary folder if that cannot be made), so a site whose
paw.yaml sits in the same checkout keeps its inbox, outbox and ledger to itself. It drops a
generated Aperio slide with fake identifiers into the demo's inbox and runs the job like cron
would. Only the minimum age is relaxed (nobody waits two minutes), and only while the demo's
inbox holds nothing but its own sample: stability is never relaxed for anyone else's file.
"""

import dataclasses
import os
import tempfile

from . import sample
from .config import embedded
from .errors import ConfigError
from .job import run
from .ledger import open_ledger
from .tools import init

SAMPLE = "S26-047119 A1 HE.svs"
FOLDER = "demo"


def demo(checkout, config_path=None):
    if config_path:
        raise ConfigError("demo never uses a site's configuration (it runs in a demo folder of its "
                          "own): leave out --config")
    config = embedded(_folder(checkout))
    init(config)
    path = os.path.join(config.inbox, SAMPLE)
    _only_the_sample(config.inbox)
    planted = sample.write(path)
    print(f"dropped {path} with fake identifiers: {', '.join(planted)}")
    quick = dataclasses.replace(config, min_age_seconds=0.0)
    for tick in range(1, config.unchanged_runs + 2):
        _only_the_sample(config.inbox)
        print(f"run {tick} (as cron would start it):")
        code = run(quick)
        if not os.path.exists(path):
            break
    ledger = open_ledger(config)
    rows = [r for r in ledger.rows() if r["original"] == SAMPLE]
    if not rows:
        print("the sample is still in the inbox; see the log above")
        return 1
    row = rows[-1]
    where = config.outbox if row["status"] == "anonymized" else config.quarantine
    output = os.path.join(where, row["folder"], row["output"])
    print(f"\n{row['status']}: {output}")
    print(f"removed: {row['removed'] or row['error']}")
    with open(output, "rb") as fh:
        data = fh.read()
    left = [v for v in planted if v.encode() in data]
    print("planted identifiers left in the output: " + (", ".join(left) if left else "none"))
    print(f"ledger row written to {config.ledger_csv}")
    return code


def _folder(checkout):
    """`demo/` in the checkout, or a new temporary folder when the checkout is read-only."""
    folder = os.path.join(checkout, FOLDER)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return tempfile.mkdtemp(prefix="paw-demo-")
    if not os.access(folder, os.W_OK | os.X_OK):
        return tempfile.mkdtemp(prefix="paw-demo-")
    return folder


def _only_the_sample(inbox):
    """The demo relaxes stability: refuse if anything but its sample is in its inbox."""
    for root, dirs, files in os.walk(inbox):
        if dirs or any(os.path.join(root, f) != os.path.join(inbox, SAMPLE) for f in files):
            raise ConfigError(f"the demo's inbox {inbox} holds files that are not its sample; the demo "
                              "only processes its own slide: empty that folder and try again")
