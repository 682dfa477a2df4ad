"""Run paw.py, but kill this process with SIGKILL at a named point (for the crash tests).

PAW_CRASH_POINT names the point ("never": no kill), PAW_CRASH_NTH which time it is reached.
PAW_FAKE_EXDEV=1 makes every rename between folders fail with EXDEV, as between Synology shares.
"""

import errno
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from paw import durable, fsops, slide  # noqa: E402
from paw.ledger.csvfile import CsvLedger  # noqa: E402
from paw.cli import main  # noqa: E402

NTH = int(os.environ.get("PAW_CRASH_NTH", "1"))
reached = 0


def die_at(owner, name, after=False, only=lambda *a, **k: True):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        global reached
        hit = only(*args, **kwargs)
        if hit:
            reached += 1
        if hit and reached == NTH and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit and reached == NTH and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


POINTS = {
    "after-claim": lambda: die_at(slide, "_anonymize"),
    "mid-anonymization": lambda: die_at(os, "pwrite"),
    "after-apply": lambda: die_at(slide, "verify"),
    "after-verify": lambda: die_at(slide, "_output_names"),
    "mid-delivery": lambda: die_at(fsops, "move", only=lambda src, dst: "staging" in src),
    "mid-copy": lambda: die_at(fsops, "_copy_file", after=True),
    # a DICOM instance rewritten and renamed into place, the others not yet
    "mid-rewrite": lambda: die_at(os, "replace", after=True,
                                  only=lambda src, dst, **kw: durable.PARTIAL_PREFIX in str(src)),
    "before-ledger-row": lambda: die_at(CsvLedger, "append"),
    "after-ledger-row": lambda: die_at(CsvLedger, "append", after=True),
}

if os.environ.get("PAW_FAKE_EXDEV"):
    real_rename = os.rename

    def rename(src, dst):
        if os.path.dirname(os.path.abspath(src)) != os.path.dirname(os.path.abspath(dst)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst)

    os.rename = rename

POINTS.get(os.environ["PAW_CRASH_POINT"], lambda: None)()
sys.exit(main(sys.argv[1:]))
