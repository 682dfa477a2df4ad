"""kill -9 at every step of a slide's way: the next run ends with each slide exactly once in the
outbox or the quarantine, one ledger row each, nothing identifiable in the outbox, staging empty."""

import os
import signal

import pytest

from checks import leaked
from conftest import ROOT
from synth import aperio

CRASHRUN = os.path.join(ROOT, "tests", "crashrun.py")
# How often each point is reached in one run over a broken and a good slide.
REACHED = {"after-claim": 2, "mid-anonymization": 5, "after-apply": 1, "after-verify": 1,
           "mid-delivery": 2, "before-ledger-row": 2, "after-ledger-row": 2}
REACHED_EXDEV = {"mid-copy": 4, "mid-delivery": 2, "after-claim": 2}


def crash_then_recover(lab, point, nth, exdev=False):
    with open(os.path.join(lab.inbox, "a-broken.svs"), "wb") as fh:
        fh.write(b"II*\0" + os.urandom(200))
    planted = aperio.write(os.path.join(lab.inbox, "b-good.svs"))
    env = dict(os.environ, PAW_CRASH_POINT=point, PAW_CRASH_NTH=str(nth))
    if exdev:
        env["PAW_FAKE_EXDEV"] = "1"
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    recovered = lab.run_subprocess()
    return planted, crashed, recovered


def assert_recovered(lab, planted):
    outbox = lab.outbox_files()
    assert len(outbox) == 1, outbox
    assert not any(n.startswith(".paw-partial") for n in os.listdir(lab.outbox))
    assert leaked(os.path.join(lab.outbox, outbox[0]), planted) == []
    assert lab.quarantined() == ["a-broken.svs"]
    rows = lab.rows()
    assert sorted(r["original"] for r in rows) == ["a-broken.svs", "b-good.svs"]
    assert {r["original"]: r["status"] for r in rows} == {"a-broken.svs": "quarantined",
                                                         "b-good.svs": "anonymized"}
    assert os.listdir(lab.inbox) == [] and lab.staging() == []


@pytest.mark.parametrize("point, nth", [(p, n) for p, times in REACHED.items()
                                         for n in range(1, times + 1)])
def test_kill_9_then_next_run_recovers(lab, point, nth):
    planted, crashed, recovered = crash_then_recover(lab, point, nth)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert recovered.returncode in (0, 3), recovered.stderr
    assert_recovered(lab, planted)


@pytest.mark.parametrize("point, nth", [(p, n) for p, times in REACHED_EXDEV.items()
                                         for n in range(1, times + 1)])
def test_kill_9_across_file_systems(lab, point, nth):
    planted, crashed, recovered = crash_then_recover(lab, point, nth, exdev=True)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert recovered.returncode in (0, 3), recovered.stderr
    assert_recovered(lab, planted)


def test_killed_before_the_first_journal_write(lab):
    """Found by the random-kill suite: a staging folder holding only job.json.tmp."""
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    stage = os.path.join(lab.state, "staging", "0123456789abcdef")
    os.makedirs(stage)
    with open(os.path.join(stage, "job.json.tmp"), "w") as fh:
        fh.write('{"job": "0123')
    assert lab.run() == 0
    assert len(lab.outbox_files()) == 1 and lab.staging() == [] and len(lab.rows()) == 1


@pytest.mark.parametrize("fmt, point, nth", [("mrxs", "mid-anonymization", n) for n in (1, 2, 3)]
                         + [("dicom", "mid-rewrite", n) for n in (1, 2, 3)] + [("dicom", "after-apply", 1)])
def test_kill_9_inside_multi_file_slides(lab, fmt, point, nth):
    """MRXS edits several files, DICOM rewrites instances one by one: a kill between two of
    them must still end with one anonymized slide and no planted value anywhere in the outbox."""
    from synth import dicom, mrxs
    planted = (mrxs.write(os.path.join(lab.inbox, "S26-1 A1 HE.mrxs")) if fmt == "mrxs"
               else dicom.write(os.path.join(lab.inbox, "S26-1 A1 HE")))
    env = dict(os.environ, PAW_CRASH_POINT=point, PAW_CRASH_NTH=str(nth))
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovered = lab.run_subprocess()
    assert recovered.returncode == 0, recovered.stderr
    assert [r["status"] for r in lab.rows()] == ["anonymized"]
    for root, _, files in os.walk(lab.outbox):
        for name in files:
            assert leaked(os.path.join(root, name), planted) == [], name
    if fmt == "dicom":  # every level once, under its new name, nothing left of the old files
        [output] = os.listdir(lab.outbox)
        assert sorted(os.listdir(os.path.join(lab.outbox, output))) == [
            f"{output}_{n}.dcm" for n in ("level-0", "level-1", "thumbnail")]
    assert os.listdir(lab.inbox) == [] and lab.staging() == []
