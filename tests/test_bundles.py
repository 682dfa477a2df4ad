"""Which files make one slide (bundle.py), through the job and by hand: one bad entry never takes
its neighbours down, a slide in pieces is refused as a unit with a reason a technician can act
on, and a failed anonymization by hand leaves nothing behind.

The layouts come from a hostile tester's reproducers (issue #15 red team): loose DICOM files
beside .svs slides, a CD export with one folder per series under a DICOMDIR, an annotation
object or a DICOM file named `.mrxs` in a project folder, a series split over folders, MRXS data
folders without their .mrxs, dangling links and FIFOs in a slide given by hand.
"""

import os
import shutil

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from checks import leaks_below, openslide_view
from paw import bundle
from synth import aperio, dicom, mrxs

LOOSE = ("DICOM instances must be in a folder of their own: one folder per slide "
         "(this file lies in a project folder beside other slides)")
DICOMDIR = ("a DICOMDIR (the index of a DICOM export; it names the patient) is never delivered: "
            "each series folder beside it is a slide of its own")


def _series(folder, names="plain", drop=()):
    """A synthetic DICOM series in `folder`; `drop`: roles left out (e.g. the LABEL)."""
    planted = dicom.write(str(folder), names=names)
    for name in os.listdir(folder):
        if pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True).ImageType[2] in drop:
            os.remove(os.path.join(folder, name))
    return planted


def _reasons(lab):
    found = {}
    for name in os.listdir(lab.quarantine):
        if name.endswith(".reason.txt"):
            with open(os.path.join(lab.quarantine, name), encoding="utf-8") as fh:
                found[name[:-len(".reason.txt")]] = fh.read().strip()
    return found


def _delivered_dicom(lab):
    """The DICOM slides in the outbox (project folders mirrored): {folder: roles of its files}."""
    return {os.path.relpath(root, lab.outbox): sorted(f.split("_", 1)[1] for f in files)
            for root, _, files in os.walk(lab.outbox) if files and all(f.endswith(".dcm") for f in files)}


def _delivered_files(lab, suffix):
    return [f for _, _, files in os.walk(lab.outbox) for f in files if f.endswith(suffix)]


def _annotation(path):
    """A Microscopy Bulk Simple Annotations object (not an image) as a DICOM Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.91.1"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.Modality = "Doe^Jane", "ANN"
    ds.save_as(str(path), enforce_file_format=True)


def _fileset(root, *series_folders):
    """A CD/PACS export: a DICOMDIR at `root` and every instance under PT*/ST*/SE*/ (pydicom's
    FileSet: one SE folder per series)."""
    from pydicom.fileset import FileSet
    fileset = FileSet()
    for folder in series_folders:
        for name in sorted(os.listdir(folder)):
            fileset.add(pydicom.dcmread(os.path.join(folder, name)))
    fileset.write(str(root))


# --- through the job ---------------------------------------------------------------------------

def test_loose_dicom_beside_other_slides_is_refused_file_by_file(lab, tmp_path):
    """A project folder with four loose instances, two .svs slides and a DICOM slide folder: the
    slides are delivered, each loose instance is quarantined with the reason to act on."""
    project = os.path.join(lab.inbox, "ProjectJones")
    _series(project, names="accession")
    aperio.write(os.path.join(project, "S26-3 A1.svs"), 256, 256)
    aperio.write(os.path.join(project, "S26-4 A1.svs"), 256, 256)
    _series(os.path.join(project, "slideC"))
    assert lab.run() == 3
    assert len(_delivered_files(lab, ".svs")) == 2
    assert list(_delivered_dicom(lab).values()) == [["level-0.dcm", "level-1.dcm", "thumbnail.dcm"]]
    reasons = _reasons(lab)
    assert len(reasons) == 5 and set(reasons.values()) == {LOOSE}
    assert os.listdir(lab.inbox) == ["ProjectJones"] and os.listdir(project) == []


def test_cd_export_with_one_folder_per_series_is_one_slide_per_series(lab, tmp_path):
    """DICOMDIR at the top, two series each in its own SE folder: two slides; the DICOMDIR (it
    names the patient) is quarantined, never delivered."""
    _series(tmp_path / "a")
    _series(tmp_path / "b")
    _fileset(os.path.join(lab.inbox, "CD_EXPORT"), tmp_path / "a", tmp_path / "b")
    assert lab.run() == 3
    assert list(_delivered_dicom(lab).values()) == [["level-0.dcm", "level-1.dcm", "thumbnail.dcm"]] * 2
    assert _reasons(lab) == {"DICOMDIR": DICOMDIR}
    assert leaks_below(lab.outbox, dicom.planted()) == []


def test_one_series_export_with_its_dicomdir_stays_one_slide(lab, tmp_path):
    _series(tmp_path / "a")
    _fileset(os.path.join(lab.inbox, "S26-11 A1 HE"), tmp_path / "a")
    assert lab.run() == 0
    assert list(_delivered_dicom(lab).values()) == [["level-0.dcm", "level-1.dcm", "thumbnail.dcm"]]


def test_dicomdir_beside_slide_folders_of_a_project(lab, tmp_path):
    project = os.path.join(lab.inbox, "ProjectK")
    _series(os.path.join(project, "s1"))
    _series(os.path.join(project, "s2"))
    shutil.copyfile(_dicomdir_of(tmp_path, project, "s1"), os.path.join(project, "DICOMDIR"))
    assert lab.run() == 3
    assert len(_delivered_dicom(lab)) == 2 and _reasons(lab) == {"DICOMDIR": DICOMDIR}


def _dicomdir_of(tmp_path, project, series):
    """A DICOMDIR naming the patient, written by pydicom's FileSet outside the inbox."""
    out = os.path.join(tmp_path, "export-of-" + series)
    _fileset(out, os.path.join(project, series))
    return os.path.join(out, "DICOMDIR")


def test_an_annotation_object_does_not_take_its_neighbours_down(lab):
    project = os.path.join(lab.inbox, "ProjectM")
    _series(os.path.join(project, "s1"))
    aperio.write(os.path.join(project, "x.svs"), 256, 256)
    _annotation(os.path.join(project, "annotations.dcm"))
    assert lab.run() == 3
    assert len(_delivered_dicom(lab)) == 1 and _delivered_files(lab, ".svs")
    assert _reasons(lab) == {"annotations.dcm": LOOSE}


def test_a_dicom_file_named_mrxs_does_not_take_its_neighbours_down(lab):
    project = os.path.join(lab.inbox, "ProjectG")
    os.makedirs(os.path.join(project, "trick"))
    dicom.write_single(os.path.join(project, "trick.mrxs"))
    aperio.write(os.path.join(project, "y.svs"), 256, 256)
    assert lab.run() == 3
    assert _delivered_files(lab, ".svs") and _reasons(lab) == {
        "trick.mrxs": "cannot parse: MRXS folder has no Slidedat.ini"}


def test_instances_in_a_folder_and_its_sub_folder_are_refused(lab):
    """Level 0 directly in the folder, the other instances in a sub-folder: two folders of
    instances, so neither is taken for the whole slide: both are refused with a reason (the
    part without level 0 would otherwise be delivered as a slide whose level 0 is level 1)."""
    folder = os.path.join(lab.inbox, "slideZ")
    _series(folder)
    os.makedirs(os.path.join(folder, "more"))
    for name in os.listdir(folder):
        if name != "volume-0.dcm" and name != "more":
            os.rename(os.path.join(folder, name), os.path.join(folder, "more", name))
    assert lab.run() == 3
    assert lab.outbox_files() == []
    reasons = _reasons(lab)
    assert reasons["volume-0.dcm"] == LOOSE
    assert reasons["more"].startswith("refused: the pyramid's base level is missing")


def test_a_series_split_over_sibling_folders(lab):
    """What paw cannot see without reading other folders: a series split over PART0 (level 0,
    thumbnail) and PART1 (level 1). The part with the base level is a slide (without level 1);
    the part without it is refused, so no level is ever delivered as another's level 0."""
    series = os.path.join(lab.inbox, "export2", "SER1")
    _series(os.path.join(series, "PART0"))
    os.makedirs(os.path.join(series, "PART1"))
    os.rename(os.path.join(series, "PART0", "volume-1.dcm"), os.path.join(series, "PART1", "volume-1.dcm"))
    assert lab.run() == 3
    assert list(_delivered_dicom(lab).values()) == [["level-0.dcm", "thumbnail.dcm"]]
    assert _reasons(lab)["PART1"].startswith("refused: the pyramid's base level is missing")


@pytest.mark.parametrize("count", [1, 2])
def test_an_mrxs_data_folder_without_its_file_is_one_unit(lab, count):
    """Refused as a whole, folder and pairing kept, not quarantined file by file as TIFFs."""
    project = os.path.join(lab.inbox, "ProjO")
    os.makedirs(project)
    for n in range(count):
        mrxs.write(os.path.join(project, f"case{n}_S26-1.mrxs"))
        os.remove(os.path.join(project, f"case{n}_S26-1.mrxs"))
    aperio.write(os.path.join(project, "x.svs"), 256, 256)
    assert lab.run() == 3
    assert _reasons(lab) == {f"case{n}_S26-1": "MRXS data folder without its .mrxs file: put NAME.mrxs "
                             "beside the folder NAME" for n in range(count)}
    for n in range(count):
        assert sorted(os.listdir(os.path.join(lab.quarantine, f"case{n}_S26-1"))) == \
            ["Data0000.dat", "Index.dat", "Slidedat.ini"]
    assert _delivered_files(lab, ".svs")


def test_a_data_folder_whose_name_is_ignored_stays_with_its_file(lab):
    """`A.tmp.mrxs` names `A.tmp/`, which the default `*.tmp` pattern ignores: an ignore pattern
    applies to names being walked, never to the data folder of a slide file (the folder would
    otherwise wait in the inbox forever and the .mrxs be refused without it)."""
    lab.write_config(extra='ignore: ["*.tmp", ".*"]\n')
    path = os.path.join(lab.inbox, "A.tmp.mrxs")
    mrxs.write(path)
    assert lab.run() == 0
    assert os.listdir(lab.inbox) == [] and len(_delivered_files(lab, ".mrxs")) == 1


# --- the rule itself ------------------------------------------------------------------------------

def test_units_of_a_project_folder(tmp_path):
    """bundle.in_folder over one folder: what each entry becomes."""
    root = tmp_path / "project"
    _series(root / "slide")                                   # a DICOM slide
    _series(root / "mixed")                                   # DICOM beside a .svs: a project
    aperio.write(str(root / "mixed" / "x.svs"), 256, 256)
    mrxs.write(str(root / "orphan.mrxs"))                     # a data folder without its file
    os.remove(root / "orphan.mrxs")
    (root / "plain").mkdir()                                  # a folder of no slide: walked
    found, walk = bundle.in_folder(str(root), [], sorted(os.listdir(root)))
    assert sorted((b.kind, b.members) for b in found) == [("dicom", ("slide",)), ("folder", ("orphan",))]
    assert walk == [bundle.Walk("mixed", True), bundle.Walk("plain", False)]
    found, walk = bundle.in_folder(str(root / "mixed"), sorted(os.listdir(root / "mixed")), [], loose=True)
    assert sorted(b.kind for b in found) == ["file"] + ["loose-dicom"] * 5


def test_by_hand_a_folder_is_a_slide_when_it_holds_one_series(tmp_path):
    """A folder given by hand (or as the staged slide): one folder of instances anywhere below
    it, nothing of another format; the same folder in the inbox also needs a DICOM file or a
    DICOMDIR directly in it (else its only series folder is the slide)."""
    nested = tmp_path / "nested"
    _series(nested / "DICOM" / "PAT1" / "STU1" / "SER1")
    assert bundle.is_dicom_folder(str(nested)) and bundle.unit_kind(bundle.layout(str(nested))) is None
    two = tmp_path / "two"
    _series(two / "a")
    _series(two / "b")
    assert not bundle.is_dicom_folder(str(two))
    assert bundle.folder_refusal(str(two)) == \
        "the folder holds several folders of DICOM instances: each series is a slide, give one"


# --- by hand ----------------------------------------------------------------------------------------

def _hand_slide(tmp_path, kind):
    if kind == "dicom":
        folder = tmp_path / "in" / "S26-12 slide"
        _series(folder)
        return str(folder), str(folder)
    path = str(tmp_path / "in" / "S26-12 slide.mrxs")
    os.makedirs(os.path.dirname(path))
    mrxs.write(path)
    return path, path[:-5]


def _stray(folder, what):
    if what == "dangling-link":
        os.symlink("/nonexistent/S26-12", os.path.join(folder, "dangling"))
    elif what == "fifo":
        os.mkfifo(os.path.join(folder, "pipe"))
    else:
        os.makedirs(os.path.join(folder, "sub"))
        os.mkfifo(os.path.join(folder, "sub", "pipe"))


@pytest.mark.parametrize("what", ["dangling-link", "fifo", "fifo-in-sub-folder"])
@pytest.mark.parametrize("kind", ["dicom", "mrxs"])
def test_by_hand_a_failure_leaves_nothing_and_a_retry_works(lab, tmp_path, capsys, kind, what):
    """No copy of the original bytes is left in the output folder, the reason is one line
    naming neither paw's work files nor a Python list, and once the cause is gone the same
    command works."""
    path, folder = _hand_slide(tmp_path, kind)
    out = tmp_path / "out"
    out.mkdir()
    _stray(folder, what)
    assert lab.run("anonymize", path, "--output", str(out)) == 3
    assert os.listdir(out) == []
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not any(x in err for x in ("paw-partial", "[", "Errno", "Traceback"))
    for name in ("dangling", "pipe", "sub"):
        if os.path.lexists(os.path.join(folder, name)):
            (shutil.rmtree if name == "sub" else os.remove)(os.path.join(folder, name))
    assert lab.run("anonymize", path, "--output", str(out)) == 0
    [row] = lab.rows()  # named as a run names it (README), from the row the copy got
    pseudonym = row["output"][:-len(".mrxs")] if kind == "mrxs" else row["output"]
    assert sorted(os.listdir(out)) == sorted({pseudonym, row["output"]}) and pseudonym == row["pseudonym"]
    assert leaks_below(str(out), mrxs.planted() if kind == "mrxs" else dicom.planted()) == []


def test_by_hand_an_unexpected_error_is_one_line_and_exit_3(lab, tmp_path, capsys, monkeypatch):
    from paw import formats

    def deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(formats, "identify", deep)
    path, _ = _hand_slide(tmp_path, "dicom")
    out = tmp_path / "out"
    out.mkdir()
    assert lab.run("anonymize", path, "--output", str(out)) == 3
    err = capsys.readouterr().err.strip()
    assert err.endswith("not anonymized: paw failed on it (unexpected RecursionError); nothing was written")
    assert os.listdir(out) == []


def test_by_hand_an_interrupted_copy_is_cleared_before_the_next(lab, tmp_path):
    """A copy a killed run left (paw's own work folder) is removed, not a reason to fail."""
    from paw.tools import work_folder
    path, _ = _hand_slide(tmp_path, "dicom")
    out = tmp_path / "out"
    work = work_folder(str(out), os.path.realpath(path))
    os.makedirs(work)
    with open(os.path.join(work, "leftover.dcm"), "wb") as fh:
        fh.write(b"original bytes")
    assert lab.run("anonymize", path, "--output", str(out)) == 0
    assert os.listdir(out) == [lab.rows()[0]["output"]]


def test_by_hand_a_pacs_export_nested_in_sub_folders(lab, tmp_path):
    folder = tmp_path / "in" / "export"
    _series(folder / "DICOM" / "PT0" / "ST0" / "SE0")
    out = tmp_path / "out"
    out.mkdir()
    assert lab.run("anonymize", str(folder), "--output", str(out)) == 0
    pseudonym = lab.rows()[0]["pseudonym"]
    assert openslide_view(str(out / pseudonym / f"{pseudonym}_level-0.dcm"))[:2] == ("dicom", ["thumbnail"])


@pytest.mark.parametrize("layout, reason", [
    ("no-preamble", "not a slide: the folder holds no DICOM Part 10 file (a 128-byte preamble, then DICM) "
                    "and no other slide"),
    ("two-series", "the folder holds several folders of DICOM instances: each series is a slide, give one"),
])
def test_by_hand_a_folder_that_is_no_slide_gets_one_clear_line(lab, tmp_path, capsys, layout, reason):
    folder = tmp_path / "in" / "slide"
    if layout == "no-preamble":
        _series(folder)
        for name in os.listdir(folder):
            data = (folder / name).read_bytes()
            (folder / name).write_bytes(data[132:])  # the meta group first, as some writers do
    else:
        _series(folder / "a")
        _series(folder / "b")
    out = tmp_path / "out"
    out.mkdir()
    assert lab.run("anonymize", str(folder), "--output", str(out)) == 3
    assert capsys.readouterr().err.strip() == f"{folder}: not anonymized: {reason}"
    assert os.listdir(out) == []
