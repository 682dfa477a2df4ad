"""The job end to end: stability, outbox/quarantine, ledger, names, lock, exit codes."""

import errno
import os
import stat
import time

import pytest

from checks import leaked, openslide_view
from synth import aperio, generic


def test_stable_slide_reaches_outbox_with_ledger_row(lab):
    planted = aperio.write(os.path.join(lab.inbox, "S26-047119 A1 HE.svs"))
    assert lab.run() == 0
    [name] = lab.outbox_files()
    assert name.startswith("PAW-") and name.endswith(".svs") and "S26" not in name
    output = os.path.join(lab.outbox, name)
    assert leaked(output, planted) == []
    assert openslide_view(output)[:2] == ("aperio", ["thumbnail"])
    [row] = lab.rows()
    assert row["status"] == "anonymized" and row["original"] == "S26-047119 A1 HE.svs"
    assert row["output"] == name and row["format"] == "aperio"
    assert "label image destroyed" in row["removed"] and row["error"] == ""
    assert os.listdir(lab.inbox) == [] and lab.staging() == []
    assert stat.S_IMODE(os.stat(lab.ledger).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(lab.state).st_mode) == 0o700


def test_a_growing_file_waits_and_a_stable_one_is_taken(lab):
    lab.write_config(runs=2)
    growing = os.path.join(lab.inbox, "growing.svs")
    steady = os.path.join(lab.inbox, "steady.svs")
    aperio.write(steady)
    with open(growing, "wb") as fh:
        fh.write(b"II*\0")
    assert lab.run() == 0                      # first sighting of both: nothing is ready
    assert lab.outbox_files() == [] and lab.rows() == []
    with open(growing, "ab") as fh:
        fh.write(b"more")
    assert lab.run() == 0                      # steady is unchanged for 2 runs; growing is not
    assert len(lab.outbox_files()) == 1 and os.path.exists(growing)
    assert [r["original"] for r in lab.rows()] == ["steady.svs"]


def test_min_age_holds_back_a_fresh_file(lab):
    lab.write_config(min_age=3600)
    aperio.write(os.path.join(lab.inbox, "fresh.svs"))
    assert lab.run() == 0 and lab.run() == 0
    assert lab.outbox_files() == [] and os.listdir(lab.inbox) == ["fresh.svs"]


@pytest.mark.parametrize("content, why", [
    (b"", "empty file (0 bytes): was it saved or copied completely?"),
    (b"II*\0\x08\0\0\0garbage", "cannot parse: directory 0 claims 24935 entries"),
    ("half", "incomplete file: 65 kB of an Aperio SVS slide; was it still being copied?"),
    (b"\x80\x81" + os.urandom(5000), "cannot parse: not a TIFF file")],
    ids=["zero-bytes", "garbage", "truncated", "random-bytes"])
def test_broken_file_is_quarantined_and_others_still_processed(lab, content, why):
    if content == "half":  # a copy cut short: the first half of a slide
        aperio.write(os.path.join(lab.base, "whole.svs"))
        with open(os.path.join(lab.base, "whole.svs"), "rb") as fh:
            content = fh.read()[:65000]
    with open(os.path.join(lab.inbox, "bad.svs"), "wb") as fh:
        fh.write(content)
    aperio.write(os.path.join(lab.inbox, "good.svs"))
    assert lab.run() == 3
    assert lab.quarantined() == ["bad.svs"]
    with open(os.path.join(lab.quarantine, "bad.svs.reason.txt")) as fh:
        reason = fh.read()
    assert reason == why + "\n"
    rows = {r["original"]: r for r in lab.rows()}
    assert rows["bad.svs"]["status"] == "quarantined" and rows["bad.svs"]["error"] == reason.strip()
    assert rows["good.svs"]["status"] == "anonymized" and len(lab.outbox_files()) == 1


def test_directory_loop_is_quarantined(lab):
    import struct
    path = os.path.join(lab.inbox, "loop.svs")
    aperio.write(path)
    with open(path, "r+b") as fh:
        first = struct.unpack("<I", fh.read(8)[4:])[0]
        fh.seek(first)
        count = struct.unpack("<H", fh.read(2))[0]
        fh.seek(first + 2 + 12 * count)
        fh.write(struct.pack("<I", first))
    assert lab.run() == 3
    assert "loops" in lab.rows()[0]["error"]


def test_damaged_mrxs_bundle_is_quarantined_as_a_unit(lab):
    with open(os.path.join(lab.inbox, "slide.mrxs"), "w") as fh:
        fh.write("[GENERAL]\n")
    os.makedirs(os.path.join(lab.inbox, "slide"))
    with open(os.path.join(lab.inbox, "slide", "Slidedat.ini"), "w") as fh:
        fh.write("[GENERAL]\nSLIDE_ID=x\n")
    assert lab.run() == 3
    assert lab.quarantined() == ["slide", "slide.mrxs"]
    assert lab.rows()[0]["error"].startswith("cannot parse: Slidedat.ini")
    assert os.listdir(lab.inbox) == []


def test_mrxs_through_the_job_both_members_take_the_pseudonym(lab):
    from synth import mrxs
    planted = mrxs.write(os.path.join(lab.inbox, "S26-6 A1 HE.mrxs"))
    assert lab.run() == 0, lab.rows()
    names = lab.outbox_files()
    assert len(names) == 2 and names[1] == names[0] + ".mrxs"
    assert openslide_view(os.path.join(lab.outbox, names[1]))[:2] == ("mirax", [])
    for root, _, files in os.walk(lab.outbox):
        for name in files:
            assert leaked(os.path.join(root, name), planted) == [], name
    assert lab.rows()[0]["format"] == "mrxs" and os.listdir(lab.inbox) == []


def test_generic_tiff_in_subfolder(lab):
    """The default layout (mirror): the slide lands in the same sub-folder of the outbox."""
    os.makedirs(os.path.join(lab.inbox, "2026", "batch 7"))
    planted = generic.write(os.path.join(lab.inbox, "2026", "batch 7", "case.TIF"))
    assert lab.run() == 0
    [name] = os.listdir(os.path.join(lab.outbox, "2026", "batch 7"))
    assert name.endswith(".tif")
    assert leaked(os.path.join(lab.outbox, "2026", "batch 7", name), planted) == []
    [row] = lab.rows()
    assert row["original"] == os.path.join("2026", "batch 7", "case.TIF")
    assert row["folder"] == os.path.join("2026", "batch 7") and row["output"] == name


def test_flat_layout_delivers_every_sub_folder_into_the_outbox_itself(lab):
    lab.write_config(extra="outbox_layout: flat\n")
    os.makedirs(os.path.join(lab.inbox, "2026", "batch 7"))
    planted = generic.write(os.path.join(lab.inbox, "2026", "batch 7", "case.TIF"))
    aperio.write(os.path.join(lab.inbox, "top.svs"))
    assert lab.run() == 0
    names = lab.outbox_files()
    assert len(names) == 2 and all(os.path.isfile(os.path.join(lab.outbox, n)) for n in names)
    [tif] = [n for n in names if n.endswith(".tif")]
    assert leaked(os.path.join(lab.outbox, tif), planted) == []
    assert [r["folder"] for r in lab.rows()] == ["", ""]


@pytest.mark.parametrize("name", ['it\'s "$HOME" `id` ü né.svs', "=HYPERLINK(\"x\").svs",
                                  "-cmd.svs", "tab\there.SVS"])
def test_awkward_names(lab, name):
    aperio.write(os.path.join(lab.inbox, name))
    assert lab.run() == 0
    [row] = lab.rows()
    expected = ("'" + name) if name[0] in "=-" else name
    assert row["original"] == expected
    with open(lab.ledger, encoding="utf-8-sig") as fh:
        text = fh.read()
    assert "\n=" not in text and ",=" not in text and '"=' not in text


def test_naming_pattern_keeps_configured_identifiers(lab):
    lab.write_config(extra="naming:\n  pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)'\n"
                           "  template: '{pseudonym}_{block}_{stain}'\n")
    aperio.write(os.path.join(lab.inbox, "S26-047119 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "unmatched.svs"))
    assert lab.run() == 3
    [name] = lab.outbox_files()
    assert name.endswith("_A1_HE.svs") and "S26" not in name
    rows = {r["original"]: r for r in lab.rows()}
    assert rows["S26-047119 A1 HE.svs"]["kept"] == "specimen=S26-047119; block=A1; stain=HE"
    assert rows["unmatched.svs"]["error"] == ("name 'unmatched' does not match naming.pattern "
                                              "'(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)'")


def test_outbox_name_collision_gets_a_suffix(lab, monkeypatch):
    from paw import naming
    monkeypatch.setattr(naming, "new_pseudonym", lambda prefix, length=10: "PAW-SAME")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    aperio.write(os.path.join(lab.inbox, "b.svs"))
    assert lab.run() == 0
    assert lab.outbox_files() == ["PAW-SAME-2.svs", "PAW-SAME.svs"]


def test_ignored_names_are_left_alone(lab):
    for name in ("copy.svs.part", "~lock.svs", ".hidden.svs", "Thumbs.db"):
        with open(os.path.join(lab.inbox, name), "wb") as fh:
            fh.write(b"x")
    os.makedirs(os.path.join(lab.inbox, "@eaDir"))
    aperio.write(os.path.join(lab.inbox, "@eaDir", "thumb.svs"))
    assert lab.run() == 0
    assert lab.rows() == [] and len(os.listdir(lab.inbox)) == 5


def test_symlink_and_hardlink_are_refused_without_touching_the_target(lab, tmp_path):
    outside = tmp_path / "outside.svs"
    aperio.write(str(outside))
    before = outside.read_bytes()
    os.symlink(outside, os.path.join(lab.inbox, "link.svs"))
    os.link(outside, os.path.join(lab.inbox, "hard.svs"))
    assert lab.run() == 3
    assert outside.read_bytes() == before
    reasons = sorted(r["error"].split(":")[0] for r in lab.rows())
    assert reasons == ["hard-linked file refused", "symbolic link refused"]
    assert lab.outbox_files() == []


def test_cross_device_moves_copy_then_remove(lab, monkeypatch):
    """Synology shares are separate subvolumes: rename() between them fails with EXDEV."""
    from paw import durable, fsops
    real_rename = fsops.rename_noreplace

    def rename(src, dst):
        if os.path.dirname(os.path.abspath(src)) != os.path.dirname(os.path.abspath(dst)) \
                and not os.path.basename(src).startswith(durable.PARTIAL_PREFIX):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst)

    monkeypatch.setattr(fsops, "rename_noreplace", rename)
    planted = aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    [name] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, name), planted) == []
    assert os.listdir(lab.inbox) == [] and lab.staging() == []


def test_lock_held_means_exit_0_and_no_work(lab):
    import fcntl
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    os.makedirs(lab.state, exist_ok=True)
    held = os.open(lab.state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = lab.run_subprocess()
    finally:
        os.close(held)
    assert result.returncode == 0 and "another paw run holds the lock" in result.stderr
    assert lab.rows() == [] and os.listdir(lab.inbox) == ["x.svs"]


def test_two_concurrent_runs_process_each_slide_once(lab):
    import subprocess
    import sys
    from conftest import ROOT
    for i in range(6):
        aperio.write(os.path.join(lab.inbox, f"s{i}.svs"))
    command = [sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(2)]
    codes = [p.wait(timeout=120) for p in runs]
    assert codes == [0, 0]
    assert len(lab.outbox_files()) == 6 and len(lab.rows()) == 6


def test_config_errors_exit_2_with_one_clear_line(lab):
    lab.write_config(extra="stabilty: {}\n")
    result = lab.run_subprocess()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "paw: configuration error: unknown key 'stabilty' (did you mean 'stability'?); "
        "remove it or fix its spelling"]
    lab.write_config(extra="inbox: /nonexistent/share\n")
    result = lab.run_subprocess()
    assert result.returncode == 2 and "inbox: folder /nonexistent/share does not exist" in result.stderr
    lab.write_config(extra="ledger: {csv: outbox/ledger.csv}\n")
    assert "must not be inside 'outbox'" in lab.run_subprocess().stderr


def test_dry_run_changes_nothing(lab):
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    before = os.stat(os.path.join(lab.inbox, "x.svs"))
    assert lab.run("--dry-run") == 0
    after = os.stat(os.path.join(lab.inbox, "x.svs"))
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    assert lab.rows() == [] and lab.outbox_files() == []


def test_inspect_writes_nothing_and_lists_findings(lab, capsys):
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    with open(path, "rb") as fh:
        before = fh.read()
    assert lab.run("inspect", path) == 0
    out = capsys.readouterr().out
    assert "format: Aperio SVS (aperio)" in out and "label x1" in out
    assert "'BC-S26-047119-A1'" in out and "label image destroyed" in out
    with open(path, "rb") as fh:
        assert fh.read() == before


def test_anonymize_command_copies_and_never_leaves_a_half_done_copy(lab, tmp_path):
    out = tmp_path / "manual"
    out.mkdir()
    good = os.path.join(lab.inbox, "good.svs")
    bad = os.path.join(lab.inbox, "bad.svs")
    planted = aperio.write(good)
    with open(bad, "wb") as fh:
        fh.write(b"not a slide")
    assert lab.run("anonymize", good, bad, "--output", str(out)) == 3
    [copy] = os.listdir(out)
    assert copy.startswith("PAW-") and copy.endswith(".svs")  # named as a run names it
    assert leaked(str(out / copy), planted) == []
    assert leaked(good, planted) != []          # the original is untouched


def test_status_reports_waiting_and_quarantine(lab, capsys):
    import json
    lab.write_config(runs=3)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    capsys.readouterr()
    assert lab.run("status", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inbox"] == {"slides": 1, "stable": 0, "waiting": 1, "listed": 1}
    assert info["last_runs"][-1]["waiting"] == 1 and info["quarantine"] == []


def _checkout_copy(tmp_path):
    import shutil
    from conftest import ROOT
    checkout = tmp_path / "paw"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", "inbox", "outbox", "quarantine", "state", "ledger.csv", "demo", "__pycache__"))
    return checkout


def _demo(checkout, *args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, str(checkout / "paw.py"), *args, "demo"],
                          capture_output=True, text=True, timeout=120)


def test_demo_from_the_embedded_default(tmp_path):
    """What the README's first command ends with, in a copy of the checkout."""
    checkout = _checkout_copy(tmp_path)
    os.remove(checkout / "paw.yaml")  # the embedded default, not the file
    result = _demo(checkout)
    assert result.returncode == 0, result.stderr
    assert "planted identifiers left in the output: none" in result.stdout
    assert len(os.listdir(checkout / "demo" / "outbox")) == 1 and (checkout / "demo" / "ledger.csv").exists()
    assert _demo(checkout).returncode == 0  # and again: a second sample beside the first
    assert len(os.listdir(checkout / "demo" / "outbox")) == 2


def test_demo_never_touches_the_configured_site(tmp_path):
    """A site's paw.yaml in the checkout (as the Synology guide has it): its inbox holds a slide
    still being copied. The demo runs in demo/ and leaves the site's folders and ledger alone."""
    from conftest import Lab
    checkout = _checkout_copy(tmp_path)
    site = Lab(tmp_path / "site", min_age=120, runs=2)
    os.replace(site.config, checkout / "paw.yaml")
    site.config = str(checkout / "paw.yaml")
    with open(site.config, "a") as fh:
        fh.write(f"inbox: {site.inbox}\noutbox: {site.outbox}\nquarantine: {site.quarantine}\n"
                 f"state_dir: {site.state}\nledger: {{csv: {site.ledger}}}\n")
    arriving = os.path.join(site.inbox, "arriving.svs")
    aperio.write(arriving)
    before = os.stat(arriving)
    result = _demo(checkout)
    assert result.returncode == 0, result.stderr
    assert os.listdir(site.inbox) == ["arriving.svs"] and os.stat(arriving).st_mtime_ns == before.st_mtime_ns
    assert site.outbox_files() == [] and site.rows() == [] and not os.path.exists(site.state)
    assert len(os.listdir(checkout / "demo" / "outbox")) == 1
    # With --config the demo refuses: it never runs on a site.
    refused = _demo(checkout, "--config", site.config)
    assert refused.returncode == 2 and "leave out --config" in refused.stderr
    # A file that is not its sample in the demo's own inbox: refused too, the file left alone.
    stranger = checkout / "demo" / "inbox" / "someone else.svs"
    aperio.write(str(stranger))
    refused = _demo(checkout)
    assert refused.returncode == 2 and "holds files that are not its sample" in refused.stderr
    assert stranger.exists() and len(os.listdir(checkout / "demo" / "outbox")) == 1


@pytest.mark.parametrize("vendor, name, expected", [
    ("ndpi", "S26-1 A1 HE.ndpi", "hamamatsu"), ("philips", "S26-2 A1 HE.tiff", "philips"),
    ("ventana", "S26-3 A1 HE.bif", "ventana"), ("leica", "S26-4 A1 HE.scn", "leica"),
])
def test_every_tiff_vendor_through_the_job(lab, vendor, name, expected):
    import importlib
    generator = importlib.import_module(f"synth.{vendor}")
    planted = generator.write(os.path.join(lab.inbox, name))
    assert lab.run() == 0, lab.rows()
    [output] = lab.outbox_files()
    assert output.endswith(os.path.splitext(name)[1].lower())
    path = os.path.join(lab.outbox, output)
    assert leaked(path, planted + ["S26-"]) == []
    assert openslide_view(path)[:2] == (expected, [])
    assert lab.rows()[0]["format"] == vendor


def test_a_plain_word_file_name_is_not_a_false_alarm(lab):
    """NDPI metadata says "roi.slide.macro": a slide named "slide.ndpi" must still pass."""
    from synth import ndpi
    ndpi.write(os.path.join(lab.inbox, "slide.ndpi"))
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


def test_the_original_name_is_searched_for(lab):
    """A part of the name that looks like an identifier, left where no allow-list reads (inside
    tile data, searched with verify.full_scan: metadata text is audited before), is caught."""
    import tifffile
    lab.write_config(extra="verify: {full_scan: true}\n")
    path = os.path.join(lab.inbox, "S26-047119 A1 HE.svs")
    aperio.write(path, sparse=True)   # uncompressed tiles: the value is pixels, no stream to refuse
    with tifffile.TiffFile(path) as tf:
        offset = int(tf.pages[0].dataoffsets[0])
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        fh.write(b"S26-047119")
    assert lab.run() == 3
    assert "removed value is still in the file" in lab.rows()[0]["error"]


def test_a_slide_that_takes_too_long_is_quarantined(lab, monkeypatch):
    import time as clock
    from paw import slide
    lab.write_config(extra="anonymize: {time_limit_seconds: 0.2}\n")
    real = slide._anonymize

    def slow(config, stage, record, *rest):
        if "slow" in record.original:
            clock.sleep(5)
        return real(config, stage, record, *rest)

    monkeypatch.setattr(slide, "_anonymize", slow)
    aperio.write(os.path.join(lab.inbox, "slow.svs"))
    aperio.write(os.path.join(lab.inbox, "quick.svs"))
    started = clock.monotonic()
    assert lab.run() == 3
    assert clock.monotonic() - started < 4
    rows = {r["original"]: r for r in lab.rows()}
    assert rows["slow.svs"]["error"] == "took longer than anonymize.time_limit_seconds (0.2 s)"
    assert rows["quick.svs"]["status"] == "anonymized"


def test_isyntax_through_the_job(lab):
    from synth import isyntax
    planted = isyntax.write(os.path.join(lab.inbox, "S26-5 A1 HE.isyntax"))
    assert lab.run() == 0
    [output] = lab.outbox_files()
    assert output.endswith(".isyntax") and leaked(os.path.join(lab.outbox, output), planted) == []
    assert lab.rows()[0]["format"] == "isyntax"


def test_inspect_and_manual_anonymize_of_an_mrxs(lab, tmp_path, capsys):
    from synth import mrxs
    path = os.path.join(lab.inbox, "S26-7 A1 HE.mrxs")
    planted = mrxs.write(path)
    assert lab.run("inspect", path) == 0
    assert "format: 3DHistech MRXS (mrxs)" in capsys.readouterr().out
    out = tmp_path / "manual"
    out.mkdir()
    assert lab.run("anonymize", path, "--output", str(out)) == 0
    [row] = lab.rows()
    pseudonym = row["output"][:-len(".mrxs")]
    assert sorted(os.listdir(out)) == [pseudonym, f"{pseudonym}.mrxs"] and pseudonym.startswith("PAW-")
    assert openslide_view(str(out / f"{pseudonym}.mrxs"))[:2] == ("mirax", [])
    for name in os.listdir(out / pseudonym):
        assert leaked(str(out / pseudonym / name), planted) == []
    assert leaked(os.path.join(path[:-5], "Slidedat.ini"), planted) != []  # original untouched


def test_dicom_folder_through_the_job(lab):
    import pydicom
    from synth import dicom
    planted = dicom.write(os.path.join(lab.inbox, "S26-8 A1 HE"))
    assert lab.run() == 0, lab.rows()
    [output] = lab.outbox_files()
    names = sorted(os.listdir(os.path.join(lab.outbox, output)))
    assert output.startswith("PAW-") and names == [f"{output}_{n}.dcm" for n in ("level-0", "level-1", "thumbnail")]
    volume = os.path.join(lab.outbox, output, names[0])
    assert all(leaked(os.path.join(lab.outbox, output, n), planted) == [] for n in names)
    assert str(pydicom.dcmread(volume).PatientID) == output  # the pseudonym, inside and out
    assert openslide_view(volume)[:2] == ("dicom", ["thumbnail"])
    assert lab.rows()[0]["format"] == "dicom" and lab.rows()[0]["original"] == "S26-8 A1 HE"


def test_ledger_sha256_of_files_and_of_slide_folders(lab):
    import hashlib
    from synth import dicom
    lab.write_config(extra="ledger: {sha256: true}\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    dicom.write(os.path.join(lab.inbox, "S26-9 A1 HE"))
    assert lab.run() == 0, lab.rows()
    rows = {r["original"]: r for r in lab.rows()}
    with open(os.path.join(lab.outbox, rows["a.svs"]["output"]), "rb") as fh:
        assert rows["a.svs"]["sha256"] == hashlib.sha256(fh.read()).hexdigest()  # = sha256sum
    assert len(rows["S26-9 A1 HE"]["sha256"]) == 64 and lab.staging() == []


def test_manual_anonymize_of_a_dicom_folder(lab, tmp_path):
    from synth import dicom
    folder = os.path.join(lab.inbox, "S26-10 A1 HE")
    planted = dicom.write(folder)
    out = tmp_path / "manual"
    out.mkdir()
    before = sorted(os.listdir(folder))
    assert lab.run("anonymize", folder, "--output", str(out)) == 0
    [row] = lab.rows()
    [pseudonym] = os.listdir(out)
    assert pseudonym == row["output"] == row["pseudonym"]  # the default template: {pseudonym}
    names = sorted(os.listdir(out / pseudonym))
    assert names == [f"{pseudonym}_{n}.dcm" for n in ("level-0", "level-1", "thumbnail")]
    assert all(leaked(str(out / pseudonym / n), planted) == [] for n in names)
    assert sorted(os.listdir(folder)) == before  # untouched
