"""Run paw.py, but kill this process with SIGKILL at a named point (for the crash tests).

PAW_CRASH_POINT names the point ("never": no kill), PAW_CRASH_NTH which time it is reached
(0: never; the number of times it was reached is printed last on stderr as `reached N`).
PAW_FAKE_EXDEV=1 makes every rename between folders fail with EXDEV, as between Synology shares.
PAW_FAIL_VERIFY=1 makes verification fail after the edit was applied (the slide is quarantined
and must come back byte for byte as the scanner wrote it).
"""

import atexit
import errno
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from paw import durable, fsops, slide  # noqa: E402
from paw.errors import VerificationFailed  # noqa: E402
from paw.formats import undo  # noqa: E402
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


def every_step():
    """Every call that changes a file or a name: a kill before any of them."""
    for name in ("pwrite", "rename", "replace", "ftruncate", "unlink", "link", "rmdir"):
        die_at(os, name)
    die_at(fsops, "copy_file")


def pause_at(owner, name):
    """Stop for PAW_PAUSE seconds (default 60) when `name` is first called: a run caught
    holding the lock in the middle of a slide."""
    import time
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        time.sleep(float(os.environ.get("PAW_PAUSE", "60")))
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


POINTS = {
    "pause-after-claim": lambda: pause_at(slide, "_anonymize"),
    "every-step": every_step,
    "undo-saved": lambda: die_at(undo.RangeLog, "save", after=True),
    "mid-rollback": lambda: die_at(undo.RangeLog, "restore"),
    "after-claim": lambda: die_at(slide, "_anonymize"),
    "mid-anonymization": lambda: die_at(os, "pwrite"),
    "after-apply": lambda: die_at(slide, "verify"),
    "after-verify": lambda: die_at(slide, "_output_names"),
    "mid-delivery": lambda: die_at(fsops, "move", only=lambda src, dst, **kw: "staging" in src),
    "mid-copy": lambda: die_at(fsops, "copy_file", after=True),
    # a DICOM instance rewritten (built in the undo folder) and renamed into place, the others not yet
    "mid-rewrite": lambda: die_at(os, "replace", after=True, only=lambda src, dst, **kw: (
        os.path.basename(os.path.dirname(str(src))) == "new"
        or os.path.basename(str(src)).startswith(durable.PARTIAL_PREFIX))),
    # a cross-file-system claim: the copy has its name in staging, the inbox file is still there
    "claim-copied": lambda: die_at(fsops, "remove_if_same"),
    "before-ledger-row": lambda: die_at(CsvLedger, "append"),
    "after-case": lambda: die_at(CsvLedger, "case_pseudonym", after=True),
    "before-modes": lambda: die_at(slide, "_readable"),
    "after-ledger-row": lambda: die_at(CsvLedger, "append", after=True),
}

if os.environ.get("PAW_FAKE_EXDEV"):
    real_rename = fsops.rename_noreplace

    def rename(src, dst):
        """EXDEV between folders, except a finished copy taking its name beside its target
        (or a claim's copy going from the job's folder into its slide folder)."""
        if os.path.dirname(os.path.abspath(src)) != os.path.dirname(os.path.abspath(dst)) \
                and not os.path.basename(src).startswith(durable.PARTIAL_PREFIX):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst)

    fsops.rename_noreplace = rename

if os.environ.get("PAW_FAIL_VERIFY"):
    def fail(*args, **kwargs):
        raise VerificationFailed("forced by the crash test")

    slide.verify = fail

POINTS.get(os.environ["PAW_CRASH_POINT"], lambda: None)()
atexit.register(lambda: print(f"reached {reached}", file=sys.stderr))
sys.exit(main(sys.argv[1:]))
