"""Shared fixtures: a lab (inbox, outbox, quarantine, state, ledger) in a temporary folder."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
# The real sample slides: PAW_FIXTURES, else ../shared/fixtures beside the checkout.
SHARED_FIXTURES = os.environ.get("PAW_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
MISSING_FIXTURE = "real sample slide"

from paw.cli import main  # noqa: E402


class Lab:
    def __init__(self, base, **overrides):
        self.base = str(base)
        self.inbox, self.outbox, self.quarantine = (os.path.join(self.base, n)
                                                    for n in ("inbox", "outbox", "quarantine"))
        self.state = os.path.join(self.base, "state")
        self.ledger = os.path.join(self.base, "ledger.csv")
        for folder in (self.inbox, self.outbox, self.quarantine):
            os.makedirs(folder, exist_ok=True)
        self.config = os.path.join(self.base, "paw.yaml")
        self.write_config(**overrides)

    def write_config(self, min_age=0, runs=1, extra=""):
        with open(self.config, "w", encoding="utf-8") as fh:
            fh.write(f"stability: {{min_age_seconds: {min_age}, unchanged_runs: {runs}}}\n{extra}")

    def run(self, *args):
        """paw.py in this process, as the CLI would run it; returns the exit status."""
        return main(["--config", self.config, *args])

    def run_subprocess(self, *args, env=None, wrapper=None):
        command = [sys.executable, wrapper or os.path.join(ROOT, "paw.py"), "--config", self.config, *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    def rows(self):
        if not os.path.exists(self.ledger):
            return []
        with open(self.ledger, encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh))

    def outbox_files(self):
        return sorted(os.listdir(self.outbox))

    def quarantined(self):
        return sorted(n for n in os.listdir(self.quarantine) if not n.endswith(".reason.txt"))

    def staging(self):
        folder = os.path.join(self.state, "staging")
        return os.listdir(folder) if os.path.isdir(folder) else []


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)


def real_dicom_folder(tmp_path):
    """OpenSlide's `boxes` DICOM series plus a LABEL instance (of another series) in one folder."""
    import shutil
    folder = tmp_path / "boxes"
    folder.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        shutil.copyfile(shared_fixture("dicom", "openslide-boxes", name), folder / name)
    shutil.copyfile(shared_fixture("dicom", "label-instance", "test_wsi.dcm"), folder / "label.dcm")
    return folder


def shared_fixture(*parts):
    path = os.path.join(SHARED_FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{MISSING_FIXTURE} {os.path.join(*parts)} not available ({SHARED_FIXTURES})")
    return path


def pytest_terminal_summary(terminalreporter):
    """One line when real-slide tests were skipped for want of the fixtures (without -rs the
    skips say nothing, and a clone elsewhere would silently skip them all)."""
    missing = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and MISSING_FIXTURE in str(r.longrepr[2])]
    if missing:
        terminalreporter.write_line(
            f"{len(missing)} tests skipped: the real sample slides are not in {SHARED_FIXTURES} "
            "(set PAW_FIXTURES=/path/to/fixtures or put them at ../shared/fixtures)")
