"""kill -9 at every step of a slide's way: the next run ends with each slide exactly once in the
outbox or the quarantine, one ledger row each, nothing identifiable in the outbox, staging empty."""

import errno
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


# --- a slide quarantined after its edit was applied is the scanner's own, byte for byte -------

FULL = os.environ.get("PAW_SUITE") == "full"
SLIDES = {  # format: (generator, name in the inbox)
    "aperio": ("aperio", "S26-3 A1 HE.svs"), "mrxs": ("mrxs", "S26-4 A1 HE.mrxs"),
    "dicom": ("dicom", "S26-5 A1 HE"), "isyntax": ("isyntax", "S26-6 A1 HE.isyntax"),
    "ventana-label": ("ventana", "S26-7 A1 HE.bif"), "czi": ("czi", "S26-12 A1 HE.czi"),
    "vsi": ("vsi", "S26-13 A1 HE.vsi"), "dicom-export": ("dicom", "S26-14 A1 HE"),
    "ome": ("ome", "S26-15 A1 HE.ome.tiff"),
}


def _digests(path):
    """{relative path: sha256} of a file or of every file below a folder."""
    import hashlib
    if not os.path.isdir(path):
        with open(path, "rb") as fh:
            return {"": hashlib.sha256(fh.read()).hexdigest()}
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                found[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def _slide_in(lab, fmt):
    import importlib
    generator, name = SLIDES[fmt]
    if fmt == "dicom-export":  # a PACS export: DICOMDIR, PT*/ST*/SE*/IM*, and macOS clutter
        from pydicom import dcmread
        from pydicom.fileset import FileSet
        from synth import dicom
        source = os.path.join(lab.base, "export-source")
        dicom.write(source)
        fileset = FileSet()
        for each in sorted(os.listdir(source)):
            fileset.add(dcmread(os.path.join(source, each)))
        fileset.write(os.path.join(lab.inbox, name))
        with open(os.path.join(lab.inbox, name, ".DS_Store"), "wb") as fh:
            fh.write(b"\x00\x00\x00\x01Bud1" + bytes(64))
    elif fmt == "vsi":  # the real cellSens file with a label and an overview stack added
        from conftest import shared_fixture
        from synth import vsi
        vsi.scanner_slide(shared_fixture(*vsi.SOURCE), lab.inbox, name[:-4])
    else:
        importlib.import_module(f"synth.{generator}").write(os.path.join(lab.inbox, name))
    if fmt == "ventana-label":  # a drawn label is appended: rollback must cut it off again
        lab.write_config(extra="anonymize: {label: replace}\n")
    members = [name] + ([name[:-5]] if name.endswith(".mrxs") else []) + \
        ([f"_{name[:-4]}_"] if name.endswith(".vsi") else [])
    return {m: _digests(os.path.join(lab.inbox, m)) for m in members}


def _quarantine_run(lab, point, nth):
    env = dict(os.environ, PAW_CRASH_POINT=point, PAW_CRASH_NTH=str(nth), PAW_FAIL_VERIFY="1")
    return lab.run_subprocess(env=env, wrapper=CRASHRUN)


def _assert_scanner_bytes(lab, original):
    assert sorted(lab.quarantined()) == sorted(original), lab.quarantined()
    for member, digests in original.items():
        assert _digests(os.path.join(lab.quarantine, member)) == digests, member
    assert [(r["status"], r["error"]) for r in lab.rows()] == [("quarantined", "forced by the crash test")]
    assert os.listdir(lab.inbox) == [] and lab.staging() == []


@pytest.mark.parametrize("fmt", sorted(SLIDES))
def test_quarantined_after_the_edit_is_byte_identical_whatever_the_kill(tmp_path, fmt):
    """Verification fails after the plan was applied: the slide is rolled back from the undo
    log before it is quarantined. A kill -9 before any file or name changes (every pwrite,
    rename, truncate, unlink ... of the run), then a normal run: still byte for byte the
    scanner's slide. CI kills at 8 or 9 steps spread over the run; PAW_SUITE=full at every step."""
    from conftest import Lab
    counting = Lab(tmp_path / "count")
    original = _slide_in(counting, fmt)
    done = _quarantine_run(counting, "every-step", 0)
    assert done.returncode == 3, done.stderr
    _assert_scanner_bytes(counting, original)
    steps = int(done.stderr.strip().splitlines()[-1].split()[-1])
    assert steps > 5
    for nth in range(1, steps + 1, 1 if FULL else max(1, steps // 8)):
        lab = Lab(tmp_path / f"kill-{nth}")
        original = _slide_in(lab, fmt)
        crashed = _quarantine_run(lab, "every-step", nth)
        assert crashed.returncode == -signal.SIGKILL, (nth, crashed.stderr)
        recovered = _quarantine_run(lab, "never", 0)  # the slide still fails verification
        assert recovered.returncode in (0, 3), (nth, recovered.stderr)
        _assert_scanner_bytes(lab, original)


@pytest.mark.parametrize("point", ["undo-saved", "mid-rollback", "after-apply"])
def test_quarantined_after_a_kill_at_a_named_point(lab, point):
    original = _slide_in(lab, "mrxs")
    crashed = _quarantine_run(lab, point, 1)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _quarantine_run(lab, "never", 0).returncode == 3
    _assert_scanner_bytes(lab, original)


def test_a_real_verification_failure_quarantines_the_scanner_bytes(lab, tmp_path):
    """No injection: a removed value inside the pixels of an uncompressed tile (no stream there
    for the tile walk to refuse) passes the edit, then fails verify.full_scan; what reaches the
    quarantine is the input as it was."""
    import tifffile

    from synth import PATIENT, aperio
    path = os.path.join(lab.inbox, "S26-8 A1 HE.svs")
    aperio.write(path, sparse=True)
    with tifffile.TiffFile(path) as tf:
        offset = int(tf.pages[0].dataoffsets[3])
    with open(path, "r+b") as fh:
        fh.seek(offset + 4000)
        fh.write(PATIENT.encode())
    original = {"S26-8 A1 HE.svs": _digests(path)}
    lab.write_config(extra="verify: {full_scan: true}\n")
    assert lab.run() == 3
    [row] = lab.rows()
    assert "removed value" in row["error"]
    assert _digests(os.path.join(lab.quarantine, "S26-8 A1 HE.svs")) == original["S26-8 A1 HE.svs"]


@pytest.mark.parametrize("fmt", ["aperio", "mrxs"])
def test_an_edit_past_the_undo_limit_is_refused_before_any_write(lab, monkeypatch, fmt):
    """The undo log is bounded (formats/undo.LIMIT): a plan that would overwrite more is
    refused before its first write, so the quarantined slide is still the scanner's."""
    from paw.formats import undo
    monkeypatch.setattr(undo, "LIMIT", 4096)
    original = _slide_in(lab, fmt)
    assert lab.run() == 3
    [row] = lab.rows()
    assert "the most paw keeps to give a quarantined slide back unchanged" in row["error"]
    assert sorted(lab.quarantined()) == sorted(original)
    for member, digests in original.items():
        assert _digests(os.path.join(lab.quarantine, member)) == digests


# --- a source is removed only when it is provably the file that was copied -----------------

def _journal(lab):
    import json
    [job] = lab.staging()
    with open(os.path.join(lab.state, "staging", job, "job.json")) as fh:
        return json.load(fh)


@pytest.mark.parametrize("how", ["saved-again", "overwritten-in-place"])
def test_a_new_scan_under_the_claimed_name_is_not_deleted(lab, how):
    """Killed between a cross-file-system claim's copy and the removal of the inbox file; the
    technician then saves a new scan under the same name. The next run finishes the first
    slide and leaves the new scan to be processed as a slide of its own."""
    path = os.path.join(lab.inbox, "S26-9 A1 HE.svs")
    first = aperio.write(path)
    first_size = os.path.getsize(path)
    env = dict(os.environ, PAW_CRASH_POINT="claim-copied", PAW_CRASH_NTH="1", PAW_FAKE_EXDEV="1")
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert os.path.exists(path) and len(lab.staging()) == 1
    if how == "saved-again":
        aperio.write(path + ".new", 1024, 512)
        os.rename(path + ".new", path)
    else:
        aperio.write(path, 1024, 512)
    new_size = os.path.getsize(path)
    assert new_size != first_size
    recovered = lab.run_subprocess("-v")
    assert recovered.returncode == 0, recovered.stderr
    assert "was saved again while paw was claiming it" in recovered.stderr
    assert [r["status"] for r in lab.rows()] == ["anonymized", "anonymized"]
    assert len(lab.outbox_files()) == 2 and lab.staging() == [] and os.listdir(lab.inbox) == []
    # Both slides arrived (an Aperio edit keeps the file's size).
    assert sorted(os.path.getsize(os.path.join(lab.outbox, n)) for n in lab.outbox_files()) == \
        sorted([first_size, new_size])
    for name in lab.outbox_files():
        assert leaked(os.path.join(lab.outbox, name), first) == []


def test_a_foreign_file_at_the_delivery_name_is_never_taken_for_paws_copy(lab):
    """Killed before a cross-file-system delivery; a file appears under the chosen name in the
    outbox. It is not paw's copy (its inode was never journaled): the slide stays in staging
    until it is delivered under another name, and the other file is left as it was."""
    planted = aperio.write(os.path.join(lab.inbox, "S26-10 A1 HE.svs"))
    env = dict(os.environ, PAW_CRASH_POINT="mid-delivery", PAW_CRASH_NTH="1", PAW_FAKE_EXDEV="1")
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    [name] = _journal(lab)["names"]
    with open(os.path.join(lab.outbox, name), "wb") as fh:
        fh.write(b"someone else's file")
    env["PAW_CRASH_POINT"] = "never"
    recovered = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert recovered.returncode == 0, recovered.stderr
    with open(os.path.join(lab.outbox, name), "rb") as fh:
        assert fh.read() == b"someone else's file"
    [row] = lab.rows()
    assert row["output"] != name and row["output"] in lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, row["output"]), planted) == []
    assert lab.staging() == []


def test_power_cut_safe_order_of_directory_commits(lab, monkeypatch):
    """A power cut keeps only what was fsynced: every folder paw creates (state, staging, the
    job's folder and its slide folder) is fsynced into its parent before anything moves into
    it, and a cross-file-system claim makes the copy's name durable before the inbox file goes,
    then the inbox folder after it."""
    from paw import durable, fsops
    events = []
    real = {"mkdir": os.mkdir, "unlink": os.unlink, "fsync_dir": durable.fsync_dir,
            "rename": fsops.rename_noreplace}

    def mkdir(path, *args, **kwargs):
        real["mkdir"](path, *args, **kwargs)
        events.append(("mkdir", os.path.abspath(path)))

    def unlink(path, *args, **kwargs):
        real["unlink"](path, *args, **kwargs)
        events.append(("unlink", os.path.abspath(path)))

    def fsync_dir(path):
        real["fsync_dir"](path)
        events.append(("fsync", os.path.abspath(path)))

    def rename(src, dst):  # every move between folders is a copy, as between Synology shares
        if os.path.dirname(src) != os.path.dirname(dst) and \
                not os.path.basename(src).startswith(durable.PARTIAL_PREFIX):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real["rename"](src, dst)
        events.append(("rename", os.path.abspath(src), os.path.abspath(dst)))

    for owner in (os,):
        monkeypatch.setattr(owner, "mkdir", mkdir)
        monkeypatch.setattr(owner, "unlink", unlink)
    for owner in (durable, fsops):
        monkeypatch.setattr(owner, "fsync_dir", fsync_dir)
    monkeypatch.setattr(fsops, "rename_noreplace", rename)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0 and len(lab.outbox_files()) == 1

    def index(event):
        return events.index(event)

    created = [e[1] for e in events if e[0] == "mkdir" and e[1].startswith(lab.state)]
    staging = os.path.join(lab.state, "staging")
    [stage] = [c for c in created if os.path.dirname(c) == staging]
    assert {lab.state, staging, stage, os.path.join(stage, "slide")} <= set(created)
    for folder in created:
        made = index(("mkdir", folder))
        synced = [i for i, e in enumerate(events) if e == ("fsync", os.path.dirname(folder)) and i > made]
        used = [i for i, e in enumerate(events) if e[0] == "rename" and
                os.path.dirname(e[2]) == folder]
        assert synced and (not used or synced[0] < used[0]), folder
    target = os.path.join(stage, "slide", "x.svs")
    [copied] = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == target]
    source = os.path.join(lab.inbox, "x.svs")
    removed = index(("unlink", source))
    assert copied < index(("fsync", os.path.join(stage, "slide"))) < removed
    assert ("fsync", lab.inbox) in events[removed:]


@pytest.mark.parametrize("state", ["claimed", "delivering"])
def test_a_job_left_by_the_previous_journal_layout_is_finished(lab, state):
    """Version 1 journals kept the members beside job.json; a job an older paw left in staging
    is finished the way it was started."""
    import json
    stage = os.path.join(lab.state, "staging", "00112233445566778")
    os.makedirs(stage)
    planted = aperio.write(os.path.join(stage, "S26-11 A1 HE.svs"))
    record = {"job": "00112233445566778", "original": "S26-11 A1 HE.svs",
              "members": ["S26-11 A1 HE.svs"], "started": 1.0, "kind": "file", "state": state,
              "version": 1}
    if state == "delivering":
        record.update(status="quarantined", reason="from the old paw", destination=lab.quarantine,
                      names=["S26-11 A1 HE.svs"])
    with open(os.path.join(stage, "job.json"), "w") as fh:
        json.dump(record, fh)
    assert lab.run() in (0, 3)
    assert lab.staging() == []
    [row] = lab.rows()
    if state == "claimed":
        assert row["status"] == "anonymized"
        assert leaked(os.path.join(lab.outbox, row["output"]), planted) == []
    else:
        assert (row["status"], row["error"]) == ("quarantined", "from the old paw")
        assert lab.quarantined() == ["S26-11 A1 HE.svs"]
