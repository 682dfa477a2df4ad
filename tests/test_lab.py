"""How labs use paw (#17): one pseudonym per case, per-project outbox folders, a label no more
telling than the name, readable outputs, preflight before anything moves."""

import csv
import grp
import json
import os
import re
import signal
import stat

import pytest

from checks import leaked
from conftest import Lab
from synth import aperio

PATTERN = r"'(?P<specimen>[A-Z]\d\d-\d+)\s+(?P<block>[A-Z]\d*)\s+(?P<stain>\w+)'"
CASES = f"naming:\n  pattern: {PATTERN}\n  case: specimen\n  template: '{{case}}_{{block}}_{{stain}}'\n"


def rows_by_original(lab):
    return {r["original"]: r for r in lab.rows()}


def case_rows(lab):
    with open(os.path.join(lab.base, "ledger.cases.csv"), encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def all_outbox_files(lab):
    return sorted(os.path.relpath(os.path.join(root, n), lab.outbox)
                  for root, _, files in os.walk(lab.outbox) for n in files)


# --- case pseudonyms --------------------------------------------------------------------------

def test_slides_of_one_case_share_a_case_pseudonym_in_this_run_and_later_ones(lab):
    lab.write_config(extra=CASES.replace("pattern: '", "pattern: '(?i)"))
    planted = aperio.write(os.path.join(lab.inbox, "S26-050002 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "S26-050002 B2 PAS.svs"))
    aperio.write(os.path.join(lab.inbox, "S26-050003 A1 HE.svs"))
    assert lab.run() == 0
    rows = rows_by_original(lab)
    case = rows["S26-050002 A1 HE.svs"]["case"]
    assert case.startswith("PAW-") and rows["S26-050002 B2 PAS.svs"]["case"] == case
    assert rows["S26-050003 A1 HE.svs"]["case"] not in ("", case)
    assert sorted(lab.outbox_files()) == sorted([f"{case}_A1_HE.svs", f"{case}_B2_PAS.svs",
                                                 f"{rows['S26-050003 A1 HE.svs']['case']}_A1_HE.svs"])
    # {pseudonym} stays unique per slide, and the ledger has it (the drawn label's QR code)
    assert len({r["pseudonym"] for r in rows.values()}) == 3
    for name in lab.outbox_files():
        assert leaked(os.path.join(lab.outbox, name), planted + ["S26-05000", "050002"]) == []
    # A later run, the same case written differently (case, spaces): the same case pseudonym.
    aperio.write(os.path.join(lab.inbox, "s26-050002   C1 HE.svs"))
    os.makedirs(os.path.join(lab.inbox, "ProjectSmith"))
    aperio.write(os.path.join(lab.inbox, "ProjectSmith", "S26-050002 D4 HE.svs"))
    assert lab.run() == 0
    rows = rows_by_original(lab)
    assert rows["s26-050002   C1 HE.svs"]["case"] == case
    assert rows[os.path.join("ProjectSmith", "S26-050002 D4 HE.svs")]["case"] == case
    assert [(r["case_key"], r["case"]) for r in case_rows(lab)] == [
        ("s26-050002", case), ("s26-050003", rows["S26-050003 A1 HE.svs"]["case"])]
    assert stat.S_IMODE(os.stat(os.path.join(lab.base, "ledger.cases.csv")).st_mode) == 0o600


@pytest.mark.parametrize("extra, message", [
    (CASES.replace("{case}_{block}", "{specimen}_{block}"), "use {case}"),
    (CASES.replace("{case}_{block}", "{pseudonym}_{specimen}_{block}"), "use {case}"),
    (CASES + "anonymize: {label: replace, label_text: '{case} {specimen}'}\n", "use {case}"),
    (CASES.replace("  case: specimen\n", ""), "naming.case is not set"),
    (CASES.replace("case: specimen", "case: patient"), "not a named group of naming.pattern"),
    (CASES.replace("(?P<block>", "(?P<case>"), "paw's own field"),
    (CASES.replace("{case}_{block}_{stain}", "{block}_{stain}"), "must contain {pseudonym} or {case}"),
    ("outbox_layout: nested\n", "must be mirror or flat"),
])
def test_case_and_layout_configuration_errors(lab, extra, message):
    lab.write_config(extra=extra)
    result = lab.run_subprocess()
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_csv_case_pseudonyms_persist_and_are_never_shared_by_two_cases(tmp_path):
    from paw.ledger.csvfile import CsvLedger
    first = CsvLedger(str(tmp_path / "ledger.csv"))
    assert first.case_pseudonym("s26-1", lambda: "PAW-ONE") == "PAW-ONE"
    fresh = iter(["PAW-ONE", "PAW-ONE", "PAW-TWO"])  # the first two are already s26-1's
    assert first.case_pseudonym("s26-2", lambda: next(fresh)) == "PAW-TWO"
    again = CsvLedger(str(tmp_path / "ledger.csv"))  # a later run
    assert again.case_pseudonym("s26-2", lambda: "PAW-NEW") == "PAW-TWO"
    fresh = iter(["PAW-TWO", "PAW-THREE"])
    assert again.case_pseudonym("s26-3", lambda: next(fresh)) == "PAW-THREE"
    assert not (tmp_path / "ledger.csv").exists()  # the mapping is a file of its own


def test_a_name_without_a_case_value_is_quarantined(lab):
    lab.write_config(extra=CASES.replace("[A-Z]\\d\\d-\\d+)", "[A-Z]\\d\\d-\\d+)?"))
    aperio.write(os.path.join(lab.inbox, " A1 HE.svs"))
    assert lab.run() == 3
    assert lab.rows()[0]["error"] == "the file name has no value for the case group 'specimen' (naming.case)"
    assert not os.path.exists(os.path.join(lab.base, "ledger.cases.csv"))


@pytest.mark.parametrize("name, label_text", [
    ("S26-050002 S26-050002 HE.svs", ""),          # the kept block group caught the case number
    ("S26-050002 A1 s26_050002.svs", ""),          # ... the stain group, written otherwise
    ("S26-050002 A1 HE-S26-050002.svs", ""),       # ... at the end of a kept value
    ("S26-050002 A1 HE.svs", "{case}\nnote {note}"),  # a group only the label shows
])
def test_a_kept_group_holding_the_case_number_refuses_the_slide(lab, name, label_text):
    lab.write_config(extra=CASES.replace("(?P<stain>\\w+)", "(?P<stain>\\S+)(?P<note>.*)")
                     .replace("(?P<block>[A-Z]\\d*)", "(?P<block>\\S+)")
                     + (f"anonymize: {{label: replace, label_text: \"{label_text}\"}}\n" if label_text else ""))
    path = os.path.join(lab.inbox, name)
    aperio.write(path)
    if label_text:  # the note group holds the case number only where the label shows it
        os.rename(path, os.path.join(lab.inbox, "S26-050002 A1 HE S26-050002.svs"))
    assert lab.run() == 3
    [row] = lab.rows()
    assert row["error"].startswith("the output name or label would hold the case group 'specimen'"), row["error"]
    assert all_outbox_files(lab) == [] and "050002" not in row["error"]


def test_a_group_only_the_label_shows_may_be_in_a_folder_name(lab):
    lab.write_config(extra=CASES.replace("{case}_{block}_{stain}", "{case}_{block}")
                     + "anonymize: {label: replace, label_text: \"{case}\\nstain {stain}\"}\n")
    os.makedirs(os.path.join(lab.inbox, "PASD stains"))
    aperio.write(os.path.join(lab.inbox, "PASD stains", "S26-050002 A1 PASD.svs"))
    assert lab.run() == 0, lab.rows()
    [name] = all_outbox_files(lab)
    assert name.startswith("PASD stains/")
    lab.write_config(extra=CASES.replace("{case}_{block}_{stain}", "{case}_{block}"))  # not shown now
    aperio.write(os.path.join(lab.inbox, "PASD stains", "S26-050002 B1 PASD.svs"))
    assert lab.run() == 3
    assert "holds the group 'stain' of naming.pattern" in lab.rows()[-1]["error"]


def test_the_case_value_is_searched_for_in_the_slide(lab):
    """The case group's value leaves the name, so it must not stay in the file either: planted
    where no allow-list reads (tile data, searched with verify.full_scan), a case value that is
    no identifier-like part of the name (no digit: only naming.case says it identifies) is found."""
    import tifffile
    lab.write_config(extra="naming:\n  pattern: '(?P<patient>[A-Za-z]+) (?P<block>[A-Z]\\d) (?P<stain>\\w+)'\n"
                           "  case: patient\n  template: '{case}_{block}_{stain}'\nverify: {full_scan: true}\n")
    path = os.path.join(lab.inbox, "Smithson A1 HE.svs")
    aperio.write(path, sparse=True)   # uncompressed tiles: the value is pixels, no stream to refuse
    with tifffile.TiffFile(path) as tf:
        offset = int(tf.pages[0].dataoffsets[0])
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        fh.write(b"Smithson")
    assert lab.run() == 3
    assert "removed value is still in the file" in lab.rows()[0]["error"]


@pytest.mark.parametrize("point, nth", [("after-case", 1), ("after-case", 2), ("after-claim", 2),
                                        ("after-verify", 1), ("mid-delivery", 3), ("before-ledger-row", 2)])
def test_kill_9_never_makes_a_second_case_pseudonym(lab, point, nth):
    from test_crash import CRASHRUN
    lab.write_config(extra=CASES)
    planted = []
    for block in ("A1", "B1", "C1"):
        planted = aperio.write(os.path.join(lab.inbox, f"S26-050002 {block} HE.svs"))
    env = dict(os.environ, PAW_CRASH_POINT=point, PAW_CRASH_NTH=str(nth))
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert lab.run_subprocess().returncode == 0
    [case] = {r["case"] for r in lab.rows()}
    assert len(lab.rows()) == 3 and [r["case"] for r in case_rows(lab)] == [case]
    assert sorted(lab.outbox_files()) == [f"{case}_{b}_HE.svs" for b in ("A1", "B1", "C1")]
    assert not any(leaked(os.path.join(lab.outbox, n), planted) for n in lab.outbox_files())
    assert lab.staging() == [] and os.listdir(lab.inbox) == []


def test_a_case_row_cut_short_by_a_crash_is_ignored(lab):
    lab.write_config(extra=CASES)
    cases = os.path.join(lab.base, "ledger.cases.csv")
    with open(cases, "wb") as fh:
        fh.write(b"\xef\xbb\xbfcase_key,case,time_utc\r\ns26-000001,PAW-AAAAAAAAAA,2026-01-01T00:00:00+00:00\r\n"
                 b"s26-050002,PAW-TORN000000,2026-01-0")  # torn: the pseudonym was never used
    os.chmod(cases, 0o600)
    aperio.write(os.path.join(lab.inbox, "S26-050002 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "S26-000001 A1 HE.svs"))
    assert lab.run() == 0
    rows = rows_by_original(lab)
    assert rows["S26-000001 A1 HE.svs"]["case"] == "PAW-AAAAAAAAAA"
    new = rows["S26-050002 A1 HE.svs"]["case"]
    assert new != "PAW-TORN000000" and len(new) == 14
    # the torn row is closed (so the new one starts on a line of its own) and never read as a case
    assert [(r["case_key"], r["case"]) for r in case_rows(lab)][1:] == [("s26-050002", "PAW-TORN000000"),
                                                                       ("s26-050002", new)]
    aperio.write(os.path.join(lab.inbox, "S26-050002 B1 HE.svs"))
    assert lab.run() == 0 and rows_by_original(lab)["S26-050002 B1 HE.svs"]["case"] == new


def test_case_keys_that_look_like_formulas_round_trip(lab):
    """The cases file is opened in spreadsheets too: a key starting with = + - @ is written
    behind a quote, and read back as it was (a key that itself starts with a quote too)."""
    lab.write_config(extra="naming:\n  pattern: '(?P<specimen>\\S+) (?P<block>[A-Z]\\d) (?P<stain>\\w+)'\n"
                           "  case: specimen\n  template: '{case}_{block}_{stain}'\n")
    specimens = ["=S26-1", "'=S26-1", "'S26-1", "@S26-1", "-S26-1"]
    for i, specimen in enumerate(specimens):
        aperio.write(os.path.join(lab.inbox, f"{specimen} A{i} HE.svs"))
    assert lab.run() == 0
    for i, specimen in enumerate(specimens):  # a later run, written in lower case
        aperio.write(os.path.join(lab.inbox, f"{specimen.lower()} B{i} HE.svs"))
    assert lab.run() == 0
    by_block = {r["kept"].split("block=")[1][:2]: r["case"] for r in lab.rows()}
    assert len({by_block[f"A{i}"] for i in range(5)}) == 5
    assert all(by_block[f"A{i}"] == by_block[f"B{i}"] for i in range(5)), by_block
    with open(os.path.join(lab.base, "ledger.cases.csv"), encoding="utf-8-sig") as fh:
        cells = [line.split(",")[0] for line in fh.read().splitlines()[1:]]
    assert sorted(cells) == sorted(["'=s26-1", "''=s26-1", "''s26-1", "'@s26-1", "'-s26-1"])


def test_a_ledger_of_an_older_paw_gets_the_new_columns(lab):
    old = ["time_utc", "job", "status", "original", "output", "format", "kept", "removed", "bytes",
           "seconds", "error", "sha256"]
    with open(lab.ledger, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(old)
        writer.writerow(["2026-01-01T00:00:00+00:00", "oldjob", "anonymized", "x.svs", "PAW-OLD.svs",
                         "aperio", "", "label image destroyed", "1", "0.1", "", ""])
    os.chmod(lab.ledger, 0o600)
    aperio.write(os.path.join(lab.inbox, "y.svs"))
    assert lab.run() == 0
    first, second = lab.rows()
    assert first["output"] == "PAW-OLD.svs" and (first["case"], first["folder"], first["pseudonym"]) == ("", "", "")
    assert second["original"] == "y.svs" and second["pseudonym"] == second["output"][:-4]
    assert None not in first and None not in second  # every value under its own column
    assert stat.S_IMODE(os.stat(lab.ledger).st_mode) == 0o600


def test_a_slide_in_work_from_an_older_paw_is_finished(lab):
    """A version-2 journal (no case, no folder), interrupted after the plan was applied: this paw
    finishes it as it was decided, flat, the slide's pseudonym standing in for the case."""
    from test_crash import CRASHRUN
    lab.write_config(extra=CASES)
    os.makedirs(os.path.join(lab.inbox, "ProjectSmith"))
    planted = aperio.write(os.path.join(lab.inbox, "ProjectSmith", "S26-050002 A1 HE.svs"))
    env = dict(os.environ, PAW_CRASH_POINT="after-apply")
    assert lab.run_subprocess(env=env, wrapper=CRASHRUN).returncode == -signal.SIGKILL
    [job] = lab.staging()
    path = os.path.join(lab.state, "staging", job, "job.json")
    with open(path) as fh:
        data = json.load(fh)
    assert data["version"] == 3 and data["folder"] == "ProjectSmith" and data["case"].startswith("PAW-")
    del data["case"], data["folder"]
    data["version"] = 2
    with open(path, "w") as fh:
        json.dump(data, fh)
    assert lab.run() == 0
    [row] = lab.rows()
    assert lab.outbox_files() == [f"{row['pseudonym']}_A1_HE.svs"]
    assert (row["case"], row["folder"]) == ("", "")
    assert leaked(os.path.join(lab.outbox, row["output"]), planted + ["S26-050002"]) == []


# --- per-project outbox folders ---------------------------------------------------------------

def test_mirror_layout_keeps_project_folders_for_files_mrxs_and_dicom(lab):
    from synth import dicom, mrxs
    lab.write_config(extra=CASES)
    smith = os.path.join(lab.inbox, "ProjectSmith", "2026 batch")
    os.makedirs(smith)
    os.makedirs(os.path.join(lab.inbox, "Jones"))
    aperio.write(os.path.join(smith, "S26-050002 A1 HE.svs"))
    mrxs.write(os.path.join(smith, "S26-050002 B1 HE.mrxs"))
    dicom.write(os.path.join(lab.inbox, "Jones", "S26-050002 C1 PAS"))
    with open(os.path.join(lab.inbox, "Jones", "bad.svs"), "wb") as fh:
        fh.write(b"junk")
    assert lab.run() == 3
    rows = rows_by_original(lab)
    case = rows[os.path.join("ProjectSmith", "2026 batch", "S26-050002 A1 HE.svs")]["case"]
    assert sorted(os.listdir(os.path.join(lab.outbox, "ProjectSmith", "2026 batch"))) == \
        [f"{case}_A1_HE.svs", f"{case}_B1_HE", f"{case}_B1_HE.mrxs"]
    assert os.listdir(os.path.join(lab.outbox, "Jones")) == [f"{case}_C1_PAS"]
    instances = os.listdir(os.path.join(lab.outbox, "Jones", f"{case}_C1_PAS"))
    assert instances and all(n.endswith(".dcm") and "050002" not in n for n in instances)
    assert {r["folder"] for r in rows.values() if r["status"] == "anonymized"} == \
        {os.path.join("ProjectSmith", "2026 batch"), "Jones"}
    assert lab.quarantined() == ["bad.svs"] and rows[os.path.join("Jones", "bad.svs")]["folder"] == ""
    assert sorted(os.listdir(lab.inbox)) == ["Jones", "ProjectSmith"]  # the technician's folders stay


# Folder names that hold the case number (or another value paw removes from the name): in the
# first or a later level, in other case and separators, full-width, with invisible characters,
# undecodable (Latin-1) bytes, at the start, middle and end.
HOSTILE_FOLDERS = [
    "S26-050002", "s26_050002", "Case S26 050002 Smith", "ProjectSmith/S26-050002",
    "ProjectSmith/2026/for S26-050002", "S26-050002 (Jones)", "\uff33\uff12\uff16\uff0d\uff10\uff15\uff10\uff10\uff10\uff12",
    "S26\u200b-050002", "S26/050002", "Müller S26.050002", "S26-050002\udce9",
]


@pytest.mark.parametrize("folder", HOSTILE_FOLDERS)
def test_a_folder_holding_the_case_number_refuses_the_slide(lab, folder):
    lab.write_config(extra=CASES)
    os.makedirs(os.path.join(lab.inbox, folder))
    path = os.path.join(lab.inbox, folder, "S26-050002 A1 HE.svs")
    aperio.write(path)
    with open(path, "rb") as fh:
        original = fh.read()
    assert lab.run() == 3
    assert all_outbox_files(lab) == []
    [row] = lab.rows()
    assert row["error"].startswith("the name of its folder in the inbox holds the case group 'specimen'")
    assert "050002" not in row["error"] and row["case"] == ""
    with open(os.path.join(lab.quarantine, "S26-050002 A1 HE.svs"), "rb") as fh:
        assert fh.read() == original  # refused before anything was changed


@pytest.mark.parametrize("folder, what", [
    ("Doe Jane", "the group 'patient' of naming.pattern"),         # a group the template leaves out
    ("ProjectSmith/DOE^JANE", "the group 'patient' of naming.pattern"),
    ("x/S26-050002 A1 HE old", "the case group 'specimen'"),
])
def test_a_folder_holding_another_removed_value_refuses_the_slide(lab, folder, what):
    lab.write_config(extra="naming:\n  pattern: '(?P<patient>[A-Za-z^ ]+?)_(?P<specimen>S\\d\\d-\\d+)\\s+"
                           "(?P<block>[A-Z]\\d)'\n  case: specimen\n  template: '{case}_{block}'\n")
    name = {"Doe Jane": "Doe Jane", "ProjectSmith/DOE^JANE": "DOE^JANE"}.get(folder, "Ann")
    os.makedirs(os.path.join(lab.inbox, folder))
    aperio.write(os.path.join(lab.inbox, folder, f"{name}_S26-050002 A1.svs"))
    assert lab.run() == 3
    assert what in lab.rows()[0]["error"] and all_outbox_files(lab) == []


@pytest.mark.parametrize("folder", ["ProjectSmith", "S26-050003", "A1 HE", "2026/HE"])
def test_folders_without_a_removed_value_are_kept(lab, folder):
    """Kept groups (block, stain) and other text may be in folder names: they are routing."""
    lab.write_config(extra=CASES)
    os.makedirs(os.path.join(lab.inbox, folder))
    aperio.write(os.path.join(lab.inbox, folder, "S26-050002 A1 HE.svs"))
    assert lab.run() == 0
    [name] = all_outbox_files(lab)
    assert os.path.dirname(name) == folder


def test_the_whole_file_name_in_a_folder_name_refuses_it_without_a_pattern(lab):
    os.makedirs(os.path.join(lab.inbox, "Old S26-050002 A1 HE"))
    aperio.write(os.path.join(lab.inbox, "Old S26-050002 A1 HE", "S26-050002 A1 HE.svs"))
    assert lab.run() == 3
    assert "holds the file's own name" in lab.rows()[0]["error"]


def test_a_name_the_output_keeps_whole_may_be_in_a_folder_name(lab):
    lab.write_config(extra="naming: {pattern: '(?P<block>[A-Z]\\d) (?P<stain>\\w+)', "
                           "template: '{pseudonym}_{block}_{stain}'}\n")
    os.makedirs(os.path.join(lab.inbox, "A1 HE recuts"))
    aperio.write(os.path.join(lab.inbox, "A1 HE recuts", "A1 HE.svs"))
    assert lab.run() == 0, lab.rows()
    assert os.path.dirname(all_outbox_files(lab)[0]) == "A1 HE recuts"


def test_the_same_folders_with_the_flat_layout_deliver(lab):
    lab.write_config(extra=CASES + "outbox_layout: flat\n")
    os.makedirs(os.path.join(lab.inbox, "S26-050002"))
    aperio.write(os.path.join(lab.inbox, "S26-050002", "S26-050002 A1 HE.svs"))
    assert lab.run() == 0
    [name] = all_outbox_files(lab)
    assert "/" not in name and "050002" not in name


def test_something_in_the_way_of_an_outbox_folder_keeps_the_slide_in_staging(lab, tmp_path):
    os.makedirs(os.path.join(lab.inbox, "ProjectSmith"))
    planted = aperio.write(os.path.join(lab.inbox, "ProjectSmith", "x.svs"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, os.path.join(lab.outbox, "ProjectSmith"))
    result = lab.run_subprocess()
    assert result.returncode == 1 and "is in the way of the outbox folder" in result.stderr
    assert os.listdir(elsewhere) == [] and len(lab.staging()) == 1 and lab.rows() == []
    os.remove(os.path.join(lab.outbox, "ProjectSmith"))
    assert lab.run() == 0
    [name] = os.listdir(os.path.join(lab.outbox, "ProjectSmith"))
    assert leaked(os.path.join(lab.outbox, "ProjectSmith", name), planted) == []


# --- the drawn label shows no more than the name ------------------------------------------------

def drawn_label(path):
    openslide = pytest.importorskip("openslide")
    return openslide.OpenSlide(path).associated_images["label"]


def same_as(image, lines, pseudonym):
    import numpy as np
    from paw import label
    art = label.render(pseudonym, lines)
    return np.array_equal(np.asarray(image.convert("L")),
                          np.frombuffer(art.pixels, np.uint8).reshape(art.height, art.width))


def test_default_label_shows_the_output_names_fields_not_the_specimen(lab):
    """The issue's leak: template without the specimen, default label_text printed it."""
    zxingcpp = pytest.importorskip("zxingcpp")
    lab.write_config(extra=f"naming:\n  pattern: {PATTERN}\n  template: '{{pseudonym}}_{{block}}_{{stain}}'\n"
                           "anonymize: {label: replace}\n")
    aperio.write(os.path.join(lab.inbox, "S26-047120 A1 HE.svs"))
    assert lab.run() == 0
    [name] = lab.outbox_files()
    image = drawn_label(os.path.join(lab.outbox, name))
    pseudonym = name.split("_")[0]
    assert same_as(image, [pseudonym, "block: A1", "stain: HE"], pseudonym)
    assert not same_as(image, [pseudonym, "specimen: S26-047120", "block: A1", "stain: HE"], pseudonym)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [pseudonym]


def test_default_label_of_a_case_name_shows_the_case_pseudonym(lab):
    zxingcpp = pytest.importorskip("zxingcpp")
    lab.write_config(extra=CASES + "anonymize: {label: replace}\n")
    aperio.write(os.path.join(lab.inbox, "S26-047120 A1 HE.svs"))
    assert lab.run() == 0
    [row] = lab.rows()
    image = drawn_label(os.path.join(lab.outbox, row["output"]))
    assert same_as(image, [row["case"], "block: A1", "stain: HE"], row["pseudonym"])
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [row["pseudonym"]]


def test_label_text_may_use_a_group_the_name_leaves_out_but_never_the_case(lab):
    lab.write_config(extra=CASES.replace("{case}_{block}_{stain}", "{case}_{block}")
                     + "anonymize: {label: replace, label_text: \"{case}\\nstain {stain}\"}\n")
    aperio.write(os.path.join(lab.inbox, "S26-047120 A1 HE.svs"))
    assert lab.run() == 0
    [row] = lab.rows()
    assert same_as(drawn_label(os.path.join(lab.outbox, row["output"])), [row["case"], "stain HE"],
                   row["pseudonym"])


def test_inspect_shows_the_output_name_and_the_exact_label_text(lab, capsys):
    lab.write_config(extra=CASES + "anonymize: {label: replace, label_text: \"{case}\\nblock {block}\"}\n")
    path = os.path.join(lab.base, "S26-047120 A1 HE.svs")
    aperio.write(path)
    assert lab.run("inspect", path) == 0
    out = capsys.readouterr().out
    [name] = [line for line in out.splitlines() if "output name:" in line]
    [label_line] = [line for line in out.splitlines() if "label text:" in line]
    case = re.search(r"case pseudonym (PAW-\w+), an example for a new case\)", name).group(1)
    assert name.strip().startswith(f"output name: outbox/{case}_A1_HE.svs (example pseudonym PAW-")
    assert label_line.strip() == f"label text: {case} / block A1"
    # A case the ledger knows: its pseudonym, said to be the ledger's.
    aperio.write(os.path.join(lab.inbox, "S26-047120 B2 PAS.svs"))
    assert lab.run() == 0
    known = lab.rows()[0]["case"]
    assert lab.run("inspect", path) == 0
    out = capsys.readouterr().out
    assert f"output name: outbox/{known}_A1_HE.svs" in out and f"case pseudonym {known} from the ledger" in out
    aperio.write(os.path.join(lab.base, "nomatch.svs"))
    assert lab.run("inspect", os.path.join(lab.base, "nomatch.svs")) == 3
    out = capsys.readouterr().out
    assert "output name: none: name 'nomatch' does not match naming.pattern" in out
    assert "(paw would quarantine it)" in out and "values it would remove:" in out


def test_inspect_names_the_field_of_each_value_counts_bare_numbers_and_knows_a_finished_slide(lab, capsys):
    path = os.path.join(lab.base, "slide.svs")
    aperio.write(path)
    assert lab.run("inspect", path) == 0
    out = capsys.readouterr().out
    assert "    Patient (ImageDescription): 'DOE^JANE-PAWTEST'" in out
    assert "    HostComputer: 'scanner-ws-paw-17'" in out
    assert "    ScanScope ID (ImageDescription): 'SN-PAW-99812'" in out
    listed = re.findall(r"^    (.+?): '(.*)'$", out, re.M)
    assert listed and all(len(v) >= 4 or any(c.isalpha() for c in v) for _, v in listed)
    assert int(re.search(r"values it would remove: (\d+)", out).group(1)) == len(listed)
    assert "would ScanScope" not in out and "    - description: ScanScope ID removed" in out
    assert lab.run("anonymize", "--in-place", path) == 0
    assert "anonymized in place, its name kept: description: ScanScope ID removed" in capsys.readouterr().out
    assert lab.run("inspect", path) == 0
    out = capsys.readouterr().out
    assert "already anonymized: nothing left to remove" in out and "values it would remove" not in out
    assert lab.run("anonymize", "--in-place", path) == 0  # a second time: says so, changes nothing
    assert capsys.readouterr().out.strip() == f"{path}: already anonymized: nothing left to remove (verified)"


def test_inspect_counts_short_number_only_values_without_listing_them(capsys):
    from paw.tools import _print_values

    class Found(str):
        field = ""
    values = [Found("0"), Found("1"), Found("-"), Found("12"), Found("AB"), Found("1234"), Found(" ")]
    values[4].field = "Operator"
    _print_values(values)
    out = capsys.readouterr().out.splitlines()
    assert out == ["  values it would remove: 2", "    Operator: 'AB'",
                   "    (field not named by the format): '1234'",
                   "    and 4 short value(s) without a letter (such as numbers)"]


# --- readable outputs --------------------------------------------------------------------------

def a_group():
    """A group that exists here and is not root's."""
    for name in ("staff", "users", "nogroup", "adm"):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    pytest.skip("no group to test with")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("scan_mode, outbox_mode, expected", [
    (0o600, 0o2750, 0o640), (0o664, 0o755, 0o644), (0o666, 0o700, 0o600), (0o600, 0o2775, 0o644),
    (0o640, 0o751, 0o640),
])
def test_delivered_files_are_readable_as_the_outbox_is_and_never_writable_by_others(
        lab, scan_mode, outbox_mode, expected):
    gid = a_group()
    os.chown(lab.outbox, -1, gid)
    os.chmod(lab.outbox, outbox_mode)
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    os.chmod(path, scan_mode)
    assert lab.run() == 0
    [name] = lab.outbox_files()
    assert mode(os.path.join(lab.outbox, name)) == expected
    if outbox_mode & stat.S_ISGID:
        assert os.stat(os.path.join(lab.outbox, name)).st_gid == gid
    assert mode(lab.outbox) == outbox_mode  # paw never chmods the share


def test_mirror_folders_and_slide_folders_get_the_outbox_modes(lab):
    from synth import mrxs
    gid = a_group()
    os.chown(lab.outbox, -1, gid)
    os.chmod(lab.outbox, 0o2750)
    os.makedirs(os.path.join(lab.inbox, "ProjectSmith", "sub"))
    os.chmod(os.path.join(lab.inbox, "ProjectSmith"), 0o777)
    mrxs.write(os.path.join(lab.inbox, "ProjectSmith", "sub", "s.mrxs"))
    for root, dirs, files in os.walk(lab.inbox):
        for n in files:
            os.chmod(os.path.join(root, n), 0o666)
    assert lab.run() == 0
    smith = os.path.join(lab.outbox, "ProjectSmith")
    assert mode(smith) == mode(os.path.join(smith, "sub")) == 0o2750
    assert os.stat(smith).st_gid == os.stat(os.path.join(smith, "sub")).st_gid == gid
    for root, dirs, files in os.walk(os.path.join(smith, "sub")):
        for n in dirs:
            assert mode(os.path.join(root, n)) == 0o2750
        for n in files:
            assert mode(os.path.join(root, n)) == 0o640 and os.stat(os.path.join(root, n)).st_gid == gid
    assert mode(os.path.join(lab.inbox, "ProjectSmith")) == 0o777  # the inbox's folder is not touched


def test_outbox_mode_overrides_and_is_validated(lab):
    lab.write_config(extra="outbox_mode: '0640'\n")
    os.chmod(lab.outbox, 0o755)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    assert mode(os.path.join(lab.outbox, lab.outbox_files()[0])) == 0o640
    for value, message in (("'0664'", "never writable"), ("0640", "quoted octal"), ("'0755'", "never writable"),
                           ("'0044'", "never writable"), ("rw-r--r--", "quoted octal")):
        lab.write_config(extra=f"outbox_mode: {value}\n")
        result = lab.run_subprocess()
        assert result.returncode == 2 and message in result.stderr, (value, result.stderr)


def test_modes_are_set_after_a_kill_between_the_move_and_the_chmod(lab):
    from test_crash import CRASHRUN
    os.chmod(lab.outbox, 0o750)
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    os.chmod(path, 0o666)
    env = dict(os.environ, PAW_CRASH_POINT="before-modes")
    assert lab.run_subprocess(env=env, wrapper=CRASHRUN).returncode == -signal.SIGKILL
    [name] = lab.outbox_files()
    assert mode(os.path.join(lab.outbox, name)) == 0o666  # moved, not yet settled
    assert lab.run() == 0
    assert mode(os.path.join(lab.outbox, name)) == 0o640 and len(lab.rows()) == 1


# --- preflight ---------------------------------------------------------------------------------

def test_a_missing_ledger_folder_is_found_before_anything_moves(lab, capsys):
    lab.write_config(extra="ledger: {csv: private/ledger.csv}\n")
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    result = lab.run_subprocess()
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "ledger.csv: the folder" in result.stderr and "does not exist" in result.stderr
    assert os.listdir(lab.inbox) == ["x.svs"] and lab.staging() == [] and lab.outbox_files() == []
    assert lab.run("status") == 2
    assert "not ready: ledger.csv: the folder" in capsys.readouterr().out
    os.makedirs(os.path.join(lab.base, "private"))
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


@pytest.mark.parametrize("key", ["inbox", "outbox", "quarantine", "state_dir", "ledger"])
def test_an_unusable_folder_is_named_with_its_fix(lab, monkeypatch, capsys, key):
    """os.access as paw's user would answer it (the tests run as root, who may do anything)."""
    folder = {"inbox": lab.inbox, "outbox": lab.outbox, "quarantine": lab.quarantine,
              "state_dir": lab.state, "ledger": lab.base}[key]
    os.makedirs(lab.state, exist_ok=True)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if p == folder and m & os.W_OK else real(p, m, **k))
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and folder in err and "permission" in err
    assert os.listdir(lab.inbox) == ["x.svs"] and lab.rows() == []


def test_a_ledger_file_that_is_a_link_is_refused_before_anything_moves(lab, tmp_path):
    os.symlink(tmp_path / "elsewhere.csv", lab.ledger)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    result = lab.run_subprocess()
    assert result.returncode == 2 and "is not a plain file" in result.stderr
    assert os.listdir(lab.inbox) == ["x.svs"]


# --- as a user who is not root: real permissions -------------------------------------------------

@pytest.fixture
def unprivileged(tmp_path_factory):
    """A lab owned by `nobody`, and a way to run paw as nobody."""
    import subprocess
    import sys
    import tempfile
    from conftest import ROOT
    if os.geteuid() != 0:
        pytest.skip("needs root to run paw as another user")
    base = tempfile.mkdtemp(prefix="paw-nobody-")
    os.chmod(base, 0o755)
    lab = Lab(base)
    nobody = 65534
    for path in (lab.inbox, lab.outbox, lab.quarantine, lab.config):
        os.chown(path, nobody, nobody)
    os.makedirs(lab.state)
    os.chown(lab.state, nobody, nobody)

    import shutil
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to run paw as another user")
    as_nobody = ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups"]

    def run(*args):
        return subprocess.run([*as_nobody, sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config,
                               *args], capture_output=True, text=True, timeout=120, cwd="/")

    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import filelock, yaml"], cwd="/",
                           capture_output=True)
    if probe.returncode:
        pytest.skip("the venv cannot be used by nobody here")
    lab.run_as_nobody = run
    yield lab
    shutil.rmtree(base)


def test_as_paws_user_an_unwritable_ledger_folder_and_an_unreadable_project(unprivileged):
    """Real permissions, as a user who is not root: the ledger folder is found unwritable before
    anything moves; an unreadable project folder waits, and is named."""
    lab = unprivileged
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    os.chown(os.path.join(lab.inbox, "x.svs"), 65534, 65534)
    # The ledger's folder (the lab's base) belongs to root, 0755: nobody cannot create ledger.csv.
    result = lab.run_as_nobody()
    assert result.returncode == 2, result.stderr
    assert "cannot write into" in result.stderr and "uid 65534" in result.stderr
    assert os.listdir(lab.inbox) == ["x.svs"]
    _ledger_nobody_may_write(lab)
    # A project folder paw's user cannot read: named in a warning every run and in status.
    secret = os.path.join(lab.inbox, "ProjectSecret")
    os.makedirs(secret)
    aperio.write(os.path.join(secret, "y.svs"))
    os.chmod(secret, 0o700)
    result = lab.run_as_nobody()  # named in a warning when first found (#16), in status always
    assert result.returncode == 0, result.stderr
    assert "skipped ProjectSecret in the inbox: Permission denied" in result.stderr
    assert os.listdir(lab.outbox) and os.path.exists(os.path.join(secret, "y.svs"))
    status = lab.run_as_nobody("status")
    assert status.returncode == 0 and "skipped in the inbox: ProjectSecret: Permission denied" in status.stdout


def _digest(path):
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_as_paws_user_a_scan_it_cannot_write_stays_in_the_inbox_and_is_named(unprivileged):
    """A scan another user saved 0644 (Samba's default umask): claimed, it could not be edited
    and would sit in staging for ever (#16 admin trial). It is never claimed: it stays in the
    inbox byte for byte, named once in the log and always in status with owner, mode and fix;
    the run goes on (exit 0) and delivers the slide beside it."""
    lab = unprivileged
    theirs = os.path.join(lab.inbox, "S26-1 A1 HE.svs")
    aperio.write(theirs)  # root's, 0644
    os.chmod(theirs, 0o644)
    before = _digest(theirs)
    ours = os.path.join(lab.inbox, "S26-2 A1 HE.svs")
    aperio.write(ours)
    os.chown(ours, 65534, 65534)
    project = os.path.join(lab.inbox, "ProjectNew")  # a folder paw's user cannot rename out of
    os.makedirs(project)
    aperio.write(os.path.join(project, "S26-3 A1 HE.svs"))
    os.chown(os.path.join(project, "S26-3 A1 HE.svs"), 65534, 65534)
    _ledger_nobody_may_write(lab)
    from synth import dicom
    dicom.write(os.path.join(lab.inbox, "S26-4 A1 HE"))  # a DICOM folder of root's, 0755
    sticky = os.path.join(lab.inbox, "Shared")  # like /tmp: only a file's owner may move it
    os.makedirs(sticky)
    os.chmod(sticky, 0o1777)
    aperio.write(os.path.join(sticky, "S26-5 A1 HE.svs"))
    os.chmod(os.path.join(sticky, "S26-5 A1 HE.svs"), 0o666)
    first = lab.run_as_nobody()
    assert first.returncode == 0, first.stderr
    assert "S26-4 A1 HE is left in the inbox: paw's user nobody (uid 65534) cannot write " \
           "S26-4 A1 HE (owner root, mode 0755)" in first.stderr
    assert "Shared/S26-5 A1 HE.svs is left in the inbox: paw's user nobody (uid 65534) cannot move " \
           "it out of the folder Shared (owner root, mode 1777)" in first.stderr
    assert "S26-1 A1 HE.svs is left in the inbox: paw's user nobody (uid 65534) cannot write " \
           "S26-1 A1 HE.svs (owner root, mode 0644); run paw as the shares' owner, or let Samba " \
           "create files group-writable: create mask = 0660 / force group" in first.stderr
    assert "ProjectNew/S26-3 A1 HE.svs is left in the inbox: paw's user nobody (uid 65534) cannot " \
           "move it out of the folder ProjectNew (owner root, mode 0755)" in first.stderr
    assert len(os.listdir(lab.outbox)) == 1 and not os.listdir(os.path.join(lab.state, "staging"))
    assert _digest(theirs) == before and os.path.exists(os.path.join(project, "S26-3 A1 HE.svs"))
    second = lab.run_as_nobody()  # named once, not at every run; never claimed, never failed
    assert second.returncode == 0 and "left in the inbox" not in second.stderr, second.stderr
    status = lab.run_as_nobody("status")
    assert "left in the inbox: S26-1 A1 HE.svs: paw's user nobody (uid 65534) cannot write " \
           "S26-1 A1 HE.svs (owner root, mode 0644); run paw as the shares' owner" in status.stdout
    assert "left in the inbox: ProjectNew/S26-3 A1 HE.svs" in status.stdout
    assert "staging" not in status.stdout
    os.chown(theirs, 65534, 65534)  # the admin's fix: the next runs take it (it changed)
    lab.run_as_nobody()
    assert lab.run_as_nobody().returncode == 0
    assert not os.path.exists(theirs) and len(os.listdir(lab.outbox)) == 2
    assert "left in the inbox: S26-1" not in lab.run_as_nobody("status").stdout


def test_as_paws_user_delivered_files_it_does_not_own_warn_once_per_run(unprivileged):
    """Group-writable scans of another user are edited and delivered, but only their owner may
    give them the outbox's modes: one warning per run naming cause and fix, and status says it."""
    lab = unprivileged
    for n in (1, 2):
        path = os.path.join(lab.inbox, f"S26-{n} A1 HE.svs")
        aperio.write(path)
        os.chmod(path, 0o666)
    _ledger_nobody_may_write(lab)
    result = lab.run_as_nobody()
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(lab.outbox)) == 2
    warnings = [line for line in result.stderr.splitlines() if "keep the technician's owner" in line]
    assert len(warnings) == 1, result.stderr
    assert "2 delivered slide(s) keep the technician's owner and modes (Operation not permitted): " \
           "their files belong to root, not to paw's user nobody (uid 65534)" in warnings[0]
    assert "run paw as the shares' owner (or root), or let Samba force user" in warnings[0]
    assert "last delivery: 2 delivered slide(s)" in lab.run_as_nobody("status").stdout
    ours = os.path.join(lab.inbox, "S26-3 A1 HE.svs")  # the fix: files of paw's user
    aperio.write(ours)
    os.chown(ours, 65534, 65534)
    result = lab.run_as_nobody()
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr
    assert "last delivery" not in lab.run_as_nobody("status").stdout


def _ledger_nobody_may_write(lab):
    """The ledger in a private folder of paw's user (here nobody), as a service user's would be."""
    private = os.path.join(lab.base, "private")
    os.makedirs(private)
    os.chown(private, 65534, 65534)
    with open(lab.config, "a") as fh:
        fh.write("ledger: {csv: private/ledger.csv}\n")

def test_as_paws_user_without_cap_lease_the_writer_check_says_it_is_blind(unprivileged):
    """The kernel grants a lease on another user's file only with CAP_LEASE (fcntl(2)): without
    it the open-for-writing check cannot be made, and the run says so once, status always. With
    CAP_LEASE as an ambient capability (what systemd/paw.service gives), the same user sees the
    writer."""
    import subprocess
    import sys
    from conftest import ROOT
    lab = unprivileged
    path = os.path.join(lab.inbox, "S26-1 A1 HE.svs")
    aperio.write(path)
    os.chmod(path, 0o666)
    _ledger_nobody_may_write(lab)
    with open(path, "r+b"):  # a writer holds it open: with a lease check it would wait
        with_lease = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+lease",
             "--ambient-caps=+lease", sys.executable, os.path.join(ROOT, "paw.py"), "--config",
             lab.config], capture_output=True, text=True, timeout=120, cwd="/")
        assert with_lease.returncode == 0, with_lease.stderr
        assert "still open for writing" in with_lease.stderr and os.path.exists(path)
        assert "cannot see writers" not in with_lease.stderr
        blind = lab.run_as_nobody()
    assert blind.returncode == 0, blind.stderr
    assert "cannot see writers on this host: no CAP_LEASE and the files belong to root; only the " \
           "stability rule applies (give paw's service AmbientCapabilities=CAP_LEASE" in blind.stderr
    status = lab.run_as_nobody("status")
    assert "cannot see writers on this host: no CAP_LEASE and the files belong to root" in status.stdout


def test_root_refuses_a_state_folder_of_paws_user(lab):
    """Run once by hand as root on the timer user's state folder, paw would leave root's files
    there (attention.json, the run history) that paw's user can no longer replace. It refuses
    with exit 2 and one line naming the owner and the command; a state folder of root's is used."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    os.makedirs(lab.state, 0o700)
    os.chown(lab.state, 65534, 65534)
    result = lab.run_subprocess()
    assert result.returncode == 2, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert f"the state folder {lab.state} belongs to nobody (uid 65534); run as that user: sudo -u " \
           "nobody " in line and "paw.py --config" in line and "systemctl start paw.service" in line
    assert os.listdir(lab.state) == [] and os.listdir(lab.inbox) == ["x.svs"]
    os.chown(lab.state, 0, 0)
    assert lab.run_subprocess().returncode == 0 and len(lab.outbox_files()) == 1


@pytest.mark.parametrize("where", ["outbox", "inbox", "quarantine", "outbox/ProjectSmith"])
def test_ledger_export_into_a_share_is_refused(lab, where):
    """The ledger is the re-identification key: exported into the researchers' outbox (or any
    share) it would hand it out. Exit 2, one line, no file; a private path or stdout works."""
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    folder = os.path.join(lab.base, where)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "for-requestor.csv")
    result = lab.run_subprocess("ledger", "export", "--csv", target)
    assert result.returncode == 2, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert f"ledger export: {target} is inside the {where.split('/')[0]}; the ledger is the " \
           "re-identification key" in line
    assert not os.path.exists(target)
    private = os.path.join(lab.base, "export.csv")
    assert lab.run_subprocess("ledger", "export", "--csv", private).returncode == 0
    assert os.path.getsize(private) > 0


def test_the_readmes_case_example_and_the_paw_yaml_comment_work_as_written(lab):
    """The README's naming block, copied as it stands: `S26-050002 A1 HE.svs` in ProjectSmith and
    `s26-050002 B2 PAS.svs` in ProjectJones share a case pseudonym (the admin trial found the
    example without (?i) quarantining the lower-case one); paw.yaml's comment gives the same pattern."""
    import re
    from conftest import ROOT
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "case: specimen" in b]
    with open(os.path.join(ROOT, "paw.yaml"), encoding="utf-8") as fh:
        [comment] = re.findall(r"#   pattern: (.*)", fh.read())
    assert f"pattern: {comment}" in block
    lab.write_config(extra=block)
    for project, name in (("ProjectSmith", "S26-050002 A1 HE.svs"), ("ProjectJones", "s26-050002 B2 PAS.svs")):
        os.makedirs(os.path.join(lab.inbox, project))
        aperio.write(os.path.join(lab.inbox, project, name))
    assert lab.run() == 0
    case = rows_by_original(lab)[os.path.join("ProjectSmith", "S26-050002 A1 HE.svs")]["case"]
    assert case.startswith("PAW-")
    assert all_outbox_files(lab) == [f"ProjectJones/{case}_B2_PAS.svs", f"ProjectSmith/{case}_A1_HE.svs"]
