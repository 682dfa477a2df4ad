"""File-system tricks and failures: odd names, races, read-only and full targets, permissions."""

import errno
import os
import stat
import subprocess
import sys

import pytest

from checks import leaked
from synth import aperio

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name", ["line\nbreak.svs", "bad-\udcff-utf8.svs", "x" * 251 + ".svs",
                                  "\u202etxt.svs"])
def test_awkward_names_are_processed_and_logged_on_one_line(lab, name):
    planted = aperio.write(os.path.join(lab.inbox, name))
    result = lab.run_subprocess()
    assert result.returncode == 0, result.stderr
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert len([line for line in result.stderr.splitlines() if line]) == 2  # slide + summary
    [row] = lab.rows()
    assert row["status"] == "anonymized" and "\n" not in row["original"]


def test_a_file_replaced_after_the_scan_is_not_claimed(lab, monkeypatch):
    from paw import inbox, slide
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    real = slide.start

    def start(config, unit, ledger):  # the technician overwrites the slide just now
        with open(path, "ab") as fh:
            fh.write(b"more")
        return real(config, unit, ledger)

    monkeypatch.setattr(slide, "start", start)
    assert lab.run() == 0
    assert os.listdir(lab.inbox) == ["x.svs"] and lab.rows() == [] and lab.staging() == []
    monkeypatch.setattr(slide, "start", real)
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_outbox_that_cannot_be_written_loses_nothing(lab, monkeypatch, code):
    from paw import fsops
    real = fsops.move

    def move(src, dst):
        if dst.startswith(lab.outbox):
            raise OSError(code, os.strerror(code), dst)
        return real(src, dst)

    planted = aperio.write(os.path.join(lab.inbox, "x.svs"))
    monkeypatch.setattr(fsops, "move", move)
    assert lab.run() == 1
    assert lab.outbox_files() == [] and len(lab.staging()) == 1 and lab.rows() == []
    monkeypatch.setattr(fsops, "move", real)
    assert lab.run() == 0
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert len(lab.rows()) == 1 and lab.staging() == []


def test_disk_full_during_a_cross_device_copy(lab):
    """RLIMIT_FSIZE makes the copy into staging fail part-way, as a full disk would."""
    import resource
    import signal
    from conftest import ROOT
    aperio.write(os.path.join(lab.inbox, "x.svs"), 2048, 2048)
    half = os.path.getsize(os.path.join(lab.inbox, "x.svs")) // 2

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (half, half))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG

    env = dict(os.environ, PAW_FAKE_EXDEV="1", PAW_CRASH_POINT="never")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "crashrun.py"),
                             "--config", lab.config], env=env, capture_output=True, text=True,
                            preexec_fn=small_disk)
    assert result.returncode == 1, result.stderr
    assert "File too large" in result.stderr
    assert lab.outbox_files() == [] and lab.rows() == []
    assert os.listdir(lab.inbox) == ["x.svs"]  # the partial copy went, the original stayed
    assert lab.run() == 0 and len(lab.outbox_files()) == 1 and len(lab.rows()) == 1


def test_outbox_files_take_the_group_of_a_setgid_outbox(lab):
    os.chown(lab.outbox, -1, 4242)
    os.chmod(lab.outbox, 0o2775)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    [output] = lab.outbox_files()
    assert os.stat(os.path.join(lab.outbox, output)).st_gid == 4242
    assert stat.S_IMODE(os.stat(lab.outbox).st_mode) == 0o2775  # paw never chmods the share
