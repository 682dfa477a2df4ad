"""`paw.py anonymize` by hand (#18): a copy (`--output DIR`) is named as a run names it — a fresh
pseudonym through naming.template, the case pseudonym the ledger holds — never under the
original name (which carries the accession); the mapping is printed and recorded in the ledger
(job `by-hand-…`), the only key back. `--in-place` keeps the name the admin chose."""

import os
import subprocess
import sys

import pytest

from checks import leaked
from conftest import ROOT
from synth import aperio, ndpi
from test_copies import btrfs, shared_extents, subvolume  # noqa: F401 - the btrfs fixture
from test_lab import CASES, drawn_label, same_as


def outdir(tmp_path):
    out = tmp_path / "manual"
    out.mkdir()
    return str(out)


def test_a_copy_is_named_like_a_run_with_the_ledgers_case_pseudonym_and_recorded(lab, tmp_path, capsys):
    lab.write_config(extra=CASES + "anonymize: {label: replace}\n")
    aperio.write(os.path.join(lab.inbox, "S26-047120 A1 HE.svs"))
    assert lab.run() == 0
    case = lab.rows()[0]["case"]
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "S26-047120 B2 PAS.svs")  # a slide outside the inbox
    planted = ndpi.write(source[:-4] + ".ndpi")
    aperio.write(source)
    capsys.readouterr()
    assert lab.run("anonymize", "--output", out, source, source[:-4] + ".ndpi") == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(os.listdir(out)) == [f"{case}_B2_PAS.ndpi", f"{case}_B2_PAS.svs"]
    assert printed[0].startswith(f"{source} -> {os.path.join(out, case + '_B2_PAS.svs')} (case pseudonym {case}): ")
    assert printed[1].startswith(f"{source[:-4]}.ndpi -> {os.path.join(out, case + '_B2_PAS.ndpi')} ")
    assert leaked(os.path.join(out, f"{case}_B2_PAS.ndpi"), planted) == []
    _, svs, nd = lab.rows()
    assert svs["job"].startswith("by-hand-") and svs["status"] == "anonymized"
    assert (svs["original"], svs["output"], svs["folder"], svs["case"]) == (source, f"{case}_B2_PAS.svs", out, case)
    assert nd["pseudonym"] != svs["pseudonym"] and nd["pseudonym"].startswith("PAW-")
    # The drawn label carries the copy's own pseudonym, as a delivered slide's does.
    assert same_as(drawn_label(os.path.join(out, svs["output"])), [case, "block: B2", "stain: PAS"], svs["pseudonym"])
    # The ledger gives the way back; status says these were by hand.
    assert lab.run("ledger", "find", "S26-047120") == 0
    found = capsys.readouterr().out
    assert f"{source} -> {os.path.join(out, svs['output'])}" in found and len(found.splitlines()) == 3
    assert lab.run("status") == 0
    assert f"anonymized by hand: {source} -> {os.path.join(out, svs['output'])}" in capsys.readouterr().out
    from paw import report, status
    from paw.config import load
    page = report.render(status.collect(load(lab.config, lab.config)))
    assert page.count("copied by hand") == 2 and f"outbox/{os.path.join(out, svs['output'])}" not in page
    assert page.count(os.path.join(out, svs["output"])) == 1


def test_a_copy_never_keeps_the_original_name_and_each_copy_gets_its_own_pseudonym(lab, tmp_path, capsys):
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "H26-000123.svs")
    aperio.write(source)
    assert lab.run("anonymize", "--output", out, source) == 0
    assert lab.run("anonymize", "--output", out, source) == 0
    names = os.listdir(out)
    assert len(names) == 2 and all(n.startswith("PAW-") and "H26" not in n for n in names)
    assert sorted(r["output"] for r in lab.rows()) == sorted(names)
    for name in names:
        with open(os.path.join(out, name), "rb") as fh:
            assert b"H26-000123" not in fh.read()



@pytest.mark.parametrize("folder", [False, True])
def test_a_read_only_original_gives_a_copy_paw_may_edit(tmp_path, folder):
    """A 0444 scan (from a CD or an archive share) is copied into the private work folder as
    paw's to edit (its mode would refuse the edit to anyone but root); the original is untouched."""
    from paw import tools
    source = tmp_path / "in" / "slide"
    source.mkdir(parents=True)
    member = source / "Slidedat.ini" if folder else tmp_path / "in" / "S26-1.svs"
    member.write_bytes(b"scanner bytes")
    os.chmod(member, 0o444)
    if folder:
        os.chmod(source, 0o555)
    target = tmp_path / "work" / "copy"
    target.parent.mkdir()
    tools._copy(str(source if folder else member), str(target))
    copied = target / "Slidedat.ini" if folder else target
    assert os.stat(copied).st_mode & 0o600 == 0o600 and copied.read_bytes() == b"scanner bytes"
    assert os.stat(member).st_mode & 0o777 == 0o444
    if folder:
        assert os.stat(target).st_mode & 0o700 == 0o700
        os.chmod(source, 0o755)

def test_a_name_a_run_would_refuse_is_refused_by_hand_and_nothing_is_left(lab, tmp_path, capsys):
    lab.write_config(extra=CASES)
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "nomatch.svs")
    aperio.write(source)
    assert lab.run("anonymize", "--output", out, source) == 3
    assert "nomatch.svs: not anonymized: name 'nomatch' does not match naming.pattern" in capsys.readouterr().err
    assert os.listdir(out) == [] and lab.rows() == []


def test_a_failure_after_the_copy_leaves_no_work_folder_and_no_row(lab, tmp_path, monkeypatch, capsys):
    from paw import slide
    from paw.errors import VerificationFailed

    def refuse(*args, **kwargs):
        raise VerificationFailed("a removed value is still in the copy")
    monkeypatch.setattr(slide, "verify", refuse)
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "a.svs")
    aperio.write(source)
    assert lab.run("anonymize", "--output", out, source) == 3
    assert os.listdir(out) == [] and lab.rows() == []
    assert "a.svs: not anonymized: a removed value is still in the copy" in capsys.readouterr().err


def test_a_dry_run_predicts_the_name_and_writes_nothing(lab, tmp_path, capsys):
    lab.write_config(extra=CASES)
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "S26-5 A1 HE.svs")
    aperio.write(source)
    with open(os.path.join(lab.base, "consent.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.7\n")
    before = open(source, "rb").read()
    assert lab.run("anonymize", "--dry-run", "--output", out, source, os.path.join(lab.base, "consent.pdf")) == 3
    printed = capsys.readouterr().out
    assert f"{source}: would anonymize -> {out}/PAW-" in printed and "_A1_HE.svs (Aperio SVS; " in printed
    assert "consent.pdf: would not anonymize: not a slide (PDF document)" in printed
    assert os.listdir(out) == [] and lab.rows() == [] and open(source, "rb").read() == before
    assert not os.path.exists(lab.ledger[:-4] + ".cases.csv") or open(lab.ledger[:-4] + ".cases.csv").read().count("\n") <= 1
    assert lab.run("anonymize", "--dry-run", "--in-place", source) == 0
    assert "would anonymize in place, keeping its name: description: ScanScope ID removed" in capsys.readouterr().out
    assert open(source, "rb").read() == before


@pytest.mark.parametrize("problem, message", [
    ("missing", "output folder {out} does not exist"),
    ("file", "output {out} is not a folder"),
    ("no-slide", "{slide} does not exist"),
])
def test_usage_errors_exit_2_with_one_line(lab, tmp_path, problem, message):
    out = str(tmp_path / "nowhere")
    slide = os.path.join(lab.base, "a.svs")
    aperio.write(slide)
    if problem == "file":
        open(out, "w").close()
    if problem == "no-slide":
        out, slide = outdir(tmp_path), slide + ".gone"
    result = lab.run_subprocess("anonymize", "--output", out, slide)
    assert result.returncode == 2
    assert result.stderr.strip() == "paw: usage error: " + message.format(out=out, slide=slide)
    assert not any(n.startswith(".paw") for n in os.listdir(tmp_path))


def test_in_place_keeps_the_name_and_writes_no_row(lab, capsys):
    path = os.path.join(lab.base, "S26-9 A1 HE.svs")
    planted = aperio.write(path)
    assert lab.run("anonymize", "--in-place", path) == 0
    assert os.path.exists(path) and leaked(path, planted) == [] and lab.rows() == []


def test_a_copy_on_btrfs_shares_the_slides_extents(btrfs, lab):  # noqa: F811
    """On Synology's btrfs the copy is a reflink: only the bytes paw edits get their own blocks."""
    source_folder, out = subvolume(btrfs, "scans"), subvolume(btrfs, "manual")
    source = os.path.join(source_folder, "a.svs")
    planted = aperio.write(source)
    assert lab.run("anonymize", "--output", out, source) == 0
    [name] = os.listdir(out)
    assert shared_extents(os.path.join(out, name)) and leaked(os.path.join(out, name), planted) == []


def test_a_missing_output_folder_is_said_before_anything_is_read(tmp_path):
    """The CLI (not only the library): exit 2 and the folder named, no Errno, no partial name."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "paw.py"), "--config", str(tmp_path / "none.yaml"),
                             "anonymize", "--output", str(tmp_path / "x"), str(tmp_path / "y.svs")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Errno" not in result.stderr and ".paw-partial" not in result.stderr


def test_a_copy_waits_for_a_run_in_progress_and_gives_up_after_a_while(lab, tmp_path, monkeypatch, capsys):
    """The case pseudonym and the row are written under the run's lock: a run and a copy by
    hand never give one case two pseudonyms."""
    from paw import tools
    from paw.job import lock_state
    lab.write_config(extra=CASES)
    out = outdir(tmp_path)
    source = os.path.join(lab.base, "S26-3 A1 HE.svs")
    aperio.write(source)
    os.makedirs(lab.state, exist_ok=True)
    held = lock_state(lab.state)
    monkeypatch.setattr(tools, "LOCK_WAIT_SECONDS", 1)
    try:
        assert lab.run("anonymize", "--output", out, source) == 1
    finally:
        os.close(held)
    err = capsys.readouterr().err
    assert "waiting for the paw run in progress to finish" in err and "waited 1 s for the paw run" in err
    assert os.listdir(out) == [] and lab.rows() == []
    assert lab.run("anonymize", "--output", out, source) == 0 and len(lab.rows()) == 1


@pytest.mark.parametrize("name", ["S26-000123.svs", "Müller^Jane S26-000124.svs", "x_H26-77_y.ndpi",
                                  "Ärztin 田中 P-123456.ndpi", "S26-000125 A1 HE.SVS"])
def test_no_part_of_the_original_name_reaches_the_copys_name(lab, tmp_path, name):
    """Hostile names (accession at the start, middle, end; Latin-1 and CJK letters; an upper-case
    extension): the copy is called by its pseudonym alone (the default naming.template)."""
    out = outdir(tmp_path)
    source = os.path.join(lab.base, name)
    (ndpi if name.lower().endswith(".ndpi") else aperio).write(source)
    assert lab.run("anonymize", "--output", out, source) == 0
    [copy] = os.listdir(out)
    [row] = lab.rows()
    assert copy == row["pseudonym"] + os.path.splitext(name)[1].lower() and row["original"] == source
    stem = os.path.splitext(name)[0]
    assert not any(part in copy for part in stem.replace("^", " ").replace("_", " ").split() if len(part) > 2)


@pytest.mark.parametrize("args", [["anonymize", "x.svs"], ["anonymize", "--output", ".", "--in-place", "x.svs"],
                                  ["anonymize", "--in-place"], ["inspect", "missing.svs"],
                                  ["anonymize", "--in-place", "missing.svs"]])
def test_usage_errors_of_the_hand_commands_exit_2(lab, args):
    result = lab.run_subprocess(*args)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert last.startswith((f"paw.py {args[0]}: error: ", "paw: usage error: ")), last


def test_copies_into_the_inbox_are_refused(lab, capsys):
    """The next run would take them for new slides (and give them another pseudonym)."""
    source = os.path.join(lab.base, "a.svs")
    aperio.write(source)
    os.makedirs(os.path.join(lab.inbox, "manual"))
    assert lab.run("anonymize", "--output", os.path.join(lab.inbox, "manual"), source) == 2
    assert "is inside the inbox" in capsys.readouterr().err and lab.rows() == []
