"""DICOM WSI: whole bundles, typed recursive allow-list, and the independent residual audit.

Every hostile variant must end delivered clean (no planted text anywhere in the files, in any
encoding) or refused with a reason that names the field; the real fixtures must still reach the
outbox and open in OpenSlide with the same levels and pixels.
"""

import os
import shutil
import struct
from types import SimpleNamespace

import numpy as np
import openslide
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from checks import leaks_below, openslide_view
from conftest import real_dicom_folder, shared_fixture
from paw import bundle
from paw.errors import Unsupported, VerificationFailed
from paw.formats import dicom as dicom_format, prepare
from paw.verify import verify
from synth import ACCESSION, PATIENT, dicom

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=True)
PSEUDONYM = "PAW-7K2M9QX4TD"
LEVEL_0 = f"{PSEUDONYM}_level-0.dcm"
KEPT = [LEVEL_0, f"{PSEUDONYM}_level-1.dcm", f"{PSEUDONYM}_thumbnail.dcm"]


def anonymize(path, options=OPTIONS, pseudonym=PSEUDONYM):
    module, plan, found = prepare(str(path), options, pseudonym)
    plan.apply(str(path))
    verify(str(path), module, plan, options)
    return module, plan, found


def outcome(path, options=OPTIONS):
    """"delivered" when the slide passes verification, else the one-line reason."""
    try:
        anonymize(path, options)
    except (Unsupported, VerificationFailed) as exc:
        assert "\n" not in str(exc)
        return str(exc)
    return "delivered"


def leaks(path, values):
    return leaks_below(path, values)


def slide(tmp_path, names="plain", codec="native"):
    folder = tmp_path / "slide"
    planted = dicom.write(str(folder), names=names, codec=codec)
    return folder, planted


def rewrite(file, change):
    """Re-save one instance after `change(ds)` (pixel data included)."""
    ds = pydicom.dcmread(str(file))
    change(ds)
    ds.save_as(str(file), enforce_file_format=True)


def openslide_all(path):
    """Levels, OpenSlide's own properties (not quickhash: it hashes the Series UID), associated
    images and every pixel."""
    with openslide.OpenSlide(str(path)) as s:
        properties = {k: v for k, v in s.properties.items()
                      if k.startswith("openslide.") and "quickhash" not in k}
        pixels = [np.asarray(s.read_region((0, 0), i, s.level_dimensions[i])).tobytes()
                  for i in range(s.level_count)]
        associated = {k: np.asarray(v).tobytes() for k, v in s.associated_images.items()}
        return s.level_dimensions, properties, associated, pixels


# --- the synthetic slide ------------------------------------------------------------------------

def test_synthetic_folder_is_one_slide_renamed_from_the_pseudonym(tmp_path):
    folder, planted = slide(tmp_path, names="accession")
    volume = dicom.volume(str(folder))
    before = openslide_all(volume)
    assert sorted(before[2]) == ["label", "macro", "thumbnail"]
    original_series = pydicom.dcmread(volume).SeriesInstanceUID
    module, plan, found = anonymize(folder)
    assert module.name == "dicom" and found == {"volume": 2, "thumbnail": 1, "label": 1, "overview": 1}
    assert sorted(os.listdir(folder)) == KEPT
    assert leaks(folder, planted + [original_series]) == []
    after = openslide_all(folder / LEVEL_0)
    assert after[0] == before[0] and after[3] == before[3] and sorted(after[2]) == ["thumbnail"]
    assert after[1]["openslide.objective-power"] == "20" and after[1]["openslide.mpp-x"] == before[1]["openslide.mpp-x"]
    datasets = [pydicom.dcmread(folder / n) for n in KEPT]
    assert {d.SeriesInstanceUID for d in datasets} != {original_series} and \
        len({d.SeriesInstanceUID for d in datasets}) == 1 and len({d.StudyInstanceUID for d in datasets}) == 1
    ds = datasets[0]
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == PSEUDONYM
    assert ds.SpecimenDescriptionSequence[0].SpecimenIdentifier == PSEUDONYM
    assert ds.AcquisitionContextSequence == [] and "OpticalPathDescription" not in ds.OpticalPathSequence[0]
    assert ds.file_meta.ImplementationVersionName == "PAW" and "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.preamble == bytes(128)
    assert any("OpticalPathSequence/OpticalPathDescription removed" == a for a in plan.actions)
    assert not any(p in a for p in planted for a in plan.actions)  # names fields, never values


def test_keep_macro_keeps_the_overview_in_the_same_series(tmp_path):
    folder, _ = slide(tmp_path)
    rewrite(_by_role(folder)["OVERVIEW"], lambda ds: setattr(ds, "SpecimenLabelInImage", "NO"))
    anonymize(folder, SimpleNamespace(keep_macro=True, full_scan=True))
    assert sorted(os.listdir(folder)) == sorted(KEPT + [f"{PSEUDONYM}_overview.dcm"])
    datasets = [pydicom.dcmread(folder / n) for n in os.listdir(folder)]
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert openslide_view(str(folder / LEVEL_0))[1] == ["macro", "thumbnail"]


@pytest.mark.parametrize("codec", ["jpeg", "j2k"])
def test_encapsulated_frames_keep_every_pixel(tmp_path, codec):
    folder, planted = slide(tmp_path, codec=codec)
    before = openslide_all(dicom.volume(str(folder)))
    anonymize(folder)
    after = openslide_all(folder / LEVEL_0)
    assert after[0] == before[0] and after[3] == before[3] and leaks(folder, planted) == []


@pytest.mark.parametrize("cut, reason", [
    (lambda path: 400, "incomplete file: .* of a DICOM WSI slide; was it still being copied"),
    (lambda path: _pixel_at(path), "without pixel data"),
    (lambda path: os.path.getsize(path) - 10, "incomplete file: .* of a DICOM WSI slide"),
])
def test_damaged_instance_is_refused(tmp_path, cut, reason):
    folder, _ = slide(tmp_path)
    volume = dicom.volume(str(folder))
    with open(volume, "r+b") as fh:
        fh.truncate(cut(volume))
    with pytest.raises(Unsupported, match=reason):
        prepare(str(folder), OPTIONS)


def _pixel_at(path):
    with open(path, "rb") as fh:
        pydicom.dcmread(fh, stop_before_pixels=True)
        return fh.tell()


# --- real fixtures ------------------------------------------------------------------------------

def test_real_boxes_series_keeps_levels_pixels_and_properties(tmp_path):
    folder = real_dicom_folder(tmp_path)  # boxes_0 (VOLUME), boxes_1 (THUMBNAIL), EZ-WSI LABEL
    before = openslide_all(folder / "boxes_0.dcm")
    _, plan, found = anonymize(folder)
    assert found == {"volume": 1, "thumbnail": 1, "label": 1}
    assert sorted(os.listdir(folder)) == [LEVEL_0, f"{PSEUDONYM}_thumbnail.dcm"]
    assert openslide_all(folder / LEVEL_0) == before  # levels, mpp, objective, ICC size, pixels
    assert leaks(folder, ["OURAETITLE", "PIXELMEDJAVA001", "CPAPERIOCS", "CMU-1", "SLIDE_1",
                          "SPECIMEN_1", "CBF-1234", "Bangor", "20091229"]) == []
    assert "CBF-1234" in plan.removed and "OURAETITLE" in plan.removed


@pytest.mark.parametrize("name", ["sm_image", "sm_image_jpegls", "sm_image_grayscale"])
@pytest.mark.parametrize("layout", ["single", "folder-without-extension"])
def test_real_highdicom_instances_are_delivered(tmp_path, name, layout):
    source = shared_fixture("dicom", "highdicom", f"{name}.dcm")
    if layout == "single":
        path = tmp_path / f"{name}.dcm"
    else:
        (tmp_path / "slide").mkdir()
        path = tmp_path / "slide"
    shutil.copyfile(source, path if layout == "single" else path / "IM000001")
    opens = name == "sm_image"  # OpenSlide reads neither JPEG-LS nor 16-bit grey
    before = openslide_all(path if layout == "single" else path / "IM000001") if opens else None
    anonymize(path)
    delivered = path if layout == "single" else path / LEVEL_0
    assert leaks(path, ["Test^Patient", "S19-1", "AA01", "abcd", "Test^Physician", "test.org", "DAPI",
                        "wsiget", "17890505"]) == []
    if opens:
        assert openslide_all(delivered) == before


def test_real_annotations_object_refuses_its_folder(tmp_path):
    folder = tmp_path / "slide"
    folder.mkdir()
    shutil.copyfile(shared_fixture("dicom", "highdicom", "sm_image.dcm"), folder / "a.dcm")
    shutil.copyfile(shared_fixture("dicom", "highdicom", "sm_annotations.dcm"), folder / "b.dcm")
    with pytest.raises(Unsupported, match="b.dcm: not a whole-slide image instance"):
        prepare(str(folder), OPTIONS)


def test_real_label_alone_leaves_nothing_to_deliver(tmp_path):
    path = tmp_path / "label.dcm"
    shutil.copyfile(shared_fixture("dicom", "label-instance", "test_wsi.dcm"), path)
    with pytest.raises(Unsupported, match="a single label instance is not a slide by itself: DICOM "
                                          "instances of one slide must be in a folder of their own"):
        prepare(str(path), OPTIONS)


def test_audit_refuses_each_real_fixture_as_the_scanner_wrote_it(tmp_path):
    """The audit, given the untouched files as if paw had delivered them, names what it cannot
    explain (nothing is taken from the scrubber)."""
    from paw.formats import dicomaudit
    folder = real_dicom_folder(tmp_path)
    plan = dicom_format.DicomPlan(instances=[{"action": "rewrite", "name": n, "source": n}
                                             for n in sorted(os.listdir(folder))])
    problems = dicomaudit.audit(str(folder), plan, OPTIONS)
    text = "\n".join(problems)
    for expected in ("boxes_0.dcm: file meta holds other elements than paw writes",
                     "boxes_0.dcm: file meta/MediaStorageSOPInstanceUID is not a UID paw issued",
                     "boxes_0.dcm: ImageComments is not in the allow-list",
                     "boxes_0.dcm: ContributingEquipmentSequence is not in the allow-list",
                     "boxes_0.dcm: DeviceSerialNumber holds a value the allow-list does not explain",
                     "boxes_0.dcm: SpecimenDescriptionSequence[0]/SpecimenIdentifier holds a value",
                     "label.dcm: BarcodeValue is not in the allow-list",
                     "label.dcm: (3021,1001) is not in the allow-list",
                     "label.dcm: an instance not known to show no label"):
        assert expected in text, expected


# --- bundles: which files make the slide ----------------------------------------------------------

def _fileset(folder, tmp_path):
    """A PACS-style export of the synthetic slide: DICOMDIR and PT*/ST*/SE*/IM* without extension."""
    from pydicom.fileset import FileSet
    source, _ = slide(tmp_path / "src")
    fileset = FileSet()
    for name in sorted(os.listdir(source)):
        fileset.add(pydicom.dcmread(source / name))
    fileset.write(str(folder))
    return dicom.planted()


def test_pacs_export_with_dicomdir_and_sub_folders_is_one_slide(tmp_path):
    folder = tmp_path / "export"
    planted = _fileset(folder, tmp_path)
    assert bundle.is_dicom_folder(str(folder))  # the DICOMDIR at the top says so
    _, plan, found = anonymize(folder)
    assert found["dicomdir"] == 1 and found["volume"] == 2
    assert sorted(os.listdir(folder)) == KEPT  # flattened: OpenSlide reads one directory
    assert leaks(folder, planted) == []
    assert openslide_view(str(folder / LEVEL_0))[1] == ["thumbnail"]
    assert any(a.startswith("DICOMDIR removed") for a in plan.actions)


def test_inbox_scan_finds_one_slide_per_instance_folder(tmp_path):
    from paw.inbox import find_units
    inbox = tmp_path / "inbox"
    _fileset(inbox / "project" / "S26-1 export", tmp_path)
    dicom.write(str(inbox / "project" / "S26-2"), names="bare")
    units = find_units(str(inbox), ["@eaDir", ".*"])
    assert sorted((u.kind, u.main) for u in units) == [("dicom", "project/S26-1 export"), ("dicom", "project/S26-2")]


CLUTTER = {
    "._IMG0001": b"\x00\x05\x16\x07\x00\x02\x00\x00" + f"com.apple.metadata {ACCESSION}".encode(),
    ".DS_Store": b"\x00\x00\x00\x01Bud1" + f"IMG0001 {PATIENT}".encode("utf-16-be"),
    "Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + ACCESSION.encode(),
    "desktop.ini": f"[.ShellClassInfo]\r\nInfoTip={PATIENT}\r\n".encode("utf-16"),
    "@eaDir/IMG0001@SynoEAStream": ACCESSION.encode(),
    "IMG0001@SynoResource": ACCESSION.encode(),
}


def test_clutter_is_removed_and_reported(tmp_path):
    folder, planted = slide(tmp_path, names="bare")
    for name, data in CLUTTER.items():
        os.makedirs(os.path.dirname(folder / name), exist_ok=True)
        (folder / name).write_bytes(data)
    _, plan, _ = anonymize(folder)
    assert sorted(os.listdir(folder)) == KEPT and leaks(folder, planted) == []
    for what in ("macOS AppleDouble metadata file (._*) removed", "macOS folder settings (.DS_Store) removed",
                 "Windows thumbnail cache (Thumbs.db) removed", "Synology thumbnail and attribute folder (@eaDir) removed"):
        assert what in plan.actions


@pytest.mark.parametrize("stray, data", [
    ("notes.txt", f"slide of {PATIENT}".encode()),
    ("._IMG0001", b"not an AppleDouble file " + ACCESSION.encode()),   # a clutter name, not its content
    ("sub/readme", b"text"),
    ("Thumbs.db", b"\x00" * 16),
    ("IMG0001.part", b"DICM"),
])
def test_a_stray_file_refuses_the_slide_naming_it(tmp_path, stray, data):
    folder, _ = slide(tmp_path, names="bare")
    os.makedirs(os.path.dirname(folder / stray), exist_ok=True)
    (folder / stray).write_bytes(data)
    with pytest.raises(Unsupported, match=f"'{stray}': a file that is not part of a DICOM slide"):
        prepare(str(folder), OPTIONS)


def test_two_series_in_one_folder_are_refused(tmp_path):
    folder, _ = slide(tmp_path, names="plain")
    other = tmp_path / "other"
    dicom.write(str(other), names="plain")
    shutil.copyfile(dicom.volume(str(other)), folder / "other-volume.dcm")
    with pytest.raises(Unsupported, match="instances of 2 series"):
        prepare(str(folder), OPTIONS)


def test_hidden_instance_of_the_series_is_part_of_the_slide(tmp_path):
    """OpenSlide reads hidden files of the folder too: a hidden instance is an instance."""
    folder, planted = slide(tmp_path, names="plain")
    os.rename(dicom.volume(str(folder)), folder / f".{ACCESSION}.dcm")
    anonymize(folder)
    assert sorted(os.listdir(folder)) == KEPT and leaks(folder, planted) == []


# --- label, overview, thumbnail: only what is known to show no label stays --------------------------

def _by_role(folder):
    return {pydicom.dcmread(folder / n, stop_before_pixels=True).ImageType[2]: folder / n
            for n in os.listdir(folder) if pydicom.dcmread(folder / n, stop_before_pixels=True).ImageType[2] != "VOLUME"}


@pytest.mark.parametrize("change, kept", [
    (lambda ds: setattr(ds, "SpecimenLabelInImage", "YES"), False),
    (lambda ds: setattr(ds, "BurnedInAnnotation", "YES"), False),
    (lambda ds: delattr(ds, "SpecimenLabelInImage"), False),  # Type 1: absent says nothing, even RESAMPLED
    (lambda ds: (delattr(ds, "SpecimenLabelInImage"), setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "THUMBNAIL", "NONE"])), False),
    (lambda ds: (delattr(ds, "SpecimenLabelInImage"), setattr(ds, "FrameOfReferenceUID", "1.2.3.4")), False),
])
def test_thumbnail_stays_only_when_known_to_show_no_label(tmp_path, change, kept):
    folder, _ = slide(tmp_path)
    rewrite(_by_role(folder)["THUMBNAIL"], change)
    anonymize(folder)
    assert (f"{PSEUDONYM}_thumbnail.dcm" in os.listdir(folder)) == kept


@pytest.mark.parametrize("flavour", ["LOCALIZER", "SOMETHING"])
def test_overview_of_another_flavour_is_deleted_even_with_keep_macro(tmp_path, flavour):
    folder, _ = slide(tmp_path)
    rewrite(_by_role(folder)["OVERVIEW"], lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", flavour, "NONE"]))
    _, plan, found = anonymize(folder, SimpleNamespace(keep_macro=True, full_scan=True))
    assert sorted(os.listdir(folder)) == KEPT and found[flavour.lower()] == 1


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("flag", ["SpecimenLabelInImage", "BurnedInAnnotation"])
def test_a_pyramid_whose_levels_disagree_about_the_label_is_refused(tmp_path, level, flag):
    """A level resampled from one that shows the label shows it too: one of them is wrong."""
    folder, _ = slide(tmp_path)
    rewrite(folder / f"volume-{level}.dcm", lambda ds: setattr(ds, flag, "YES"))
    assert "the levels of the pyramid disagree whether they show the label" in outcome(folder)


def test_a_pyramid_that_shows_the_label_goes_whole_with_its_thumbnail(tmp_path):
    folder, _ = slide(tmp_path)
    for name in ("volume-0.dcm", "volume-1.dcm"):
        rewrite(folder / name, lambda ds: setattr(ds, "SpecimenLabelInImage", "YES"))
    assert outcome(folder) == "refused: nothing would be left of the slide (no VOLUME instance known to show no label)"


# --- hostile variants -------------------------------------------------------------------------------

MARK = "ZQX-S26-4711"


def _nested(ds, *keywords, value=MARK):
    """Set `value` at a nested path, creating one item per sequence level."""
    target = ds
    for keyword in keywords[:-1]:
        if keyword not in target or not target[keyword].value:
            setattr(target, keyword, Sequence([Dataset()]))
        target = target[keyword].value[0]
    setattr(target, keywords[-1], value)


def _add_instance(folder, name, role, size, change=None):
    """Another instance of the slide's series (same study, series, frame of reference)."""
    reference = pydicom.dcmread(dicom.volume(str(folder)), stop_before_pixels=True)
    ds = dicom.instance(role, reference.StudyInstanceUID, reference.SeriesInstanceUID,
                        reference.FrameOfReferenceUID, *size)
    if change:
        change(ds)
    ds.save_as(str(folder / name), enforce_file_format=True)
    return ds


@pytest.mark.parametrize("flag, kept", [("NO", True), ("YES", False), (None, False)])
def test_keep_macro_keeps_an_overview_only_when_it_says_no_label(tmp_path, flag, kept):
    """keep_macro is for scanners that keep the label out of the overview; the overview's own
    SpecimenLabelInImage says whether this one did (absent: it does not say)."""
    folder, _ = slide(tmp_path)
    overview = _by_role(folder)["OVERVIEW"]
    rewrite(overview, lambda ds: setattr(ds, "SpecimenLabelInImage", flag) if flag else delattr(ds, "SpecimenLabelInImage"))
    _, plan, _ = anonymize(folder, SimpleNamespace(keep_macro=True, full_scan=True))
    assert (f"{PSEUDONYM}_overview.dcm" in os.listdir(folder)) == kept
    if not kept:
        assert any(a.startswith("macro (overview) instance deleted") for a in plan.actions)


@pytest.mark.parametrize("image_type", [["ORIGINAL", "PRIMARY", "VOLUME", "NONE"], ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]])
def test_a_label_photo_typed_as_a_level_is_not_a_level(tmp_path, image_type):
    """A 32 x 32 single-frame VOLUME beside a 64 x 48 pyramid (a label photo saying NO): not the
    base halved, so not a level; it goes, the real levels stay."""
    folder, _ = slide(tmp_path)

    def label_photo(ds):
        ds.ImageType, ds.SpecimenLabelInImage = image_type, "NO"
        ds.Columns = ds.Rows = 32
        ds.NumberOfFrames = 1
        ds.PixelData = bytes(32 * 32 * 3)
    _add_instance(folder, "extra.dcm", "VOLUME", (32, 32), label_photo)
    _, plan, _ = anonymize(folder)
    assert sorted(os.listdir(folder)) == KEPT
    assert "volume instance deleted (not a level of the pyramid: its size is not the base level's halved)" in plan.actions


def test_an_instance_made_from_the_label_goes_with_it(tmp_path):
    """A level whose derivation says it was made from the LABEL instance shows the label."""
    folder, _ = slide(tmp_path)
    label_uid = pydicom.dcmread(_by_role(folder)["LABEL"], stop_before_pixels=True).SOPInstanceUID
    rewrite(folder / "volume-1.dcm", lambda ds: _nested(ds, "SharedFunctionalGroupsSequence", "DerivationImageSequence",
                                                        "SourceImageSequence", "ReferencedSOPInstanceUID", value=label_uid))
    _, plan, _ = anonymize(folder)
    assert sorted(os.listdir(folder)) == [LEVEL_0, f"{PSEUDONYM}_thumbnail.dcm"]
    assert "volume instance deleted (made from an image that shows the label)" in plan.actions


def test_a_series_without_its_base_level_is_refused(tmp_path):
    """Only a RESAMPLED level and the thumbnail (a series split over folders, or still
    arriving): delivering it would make level 1 the slide's level 0."""
    folder, _ = slide(tmp_path)
    os.remove(folder / "volume-0.dcm")
    assert "the pyramid's base level is missing" in outcome(folder)


def test_a_derived_secondary_level_is_a_level(tmp_path):
    folder, _ = slide(tmp_path)
    rewrite(folder / "volume-1.dcm", lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "VOLUME", "RESAMPLED"]))
    before = openslide_all(dicom.volume(str(folder)))
    anonymize(folder)
    assert sorted(os.listdir(folder)) == KEPT and openslide_all(folder / LEVEL_0)[0] == before[0]


@pytest.mark.parametrize("change", ["matrix-far-larger", "tiles-missing"])
def test_frames_that_do_not_fit_their_matrix_are_refused(tmp_path, change):
    """TILED_FULL holds every tile once: a matrix of 2**32 - 1 columns with 12 frames opens in no
    reader (OpenSlide: unsupported), so it is not delivered as verified."""
    folder, _ = slide(tmp_path)
    edit = {"matrix-far-larger": lambda ds: setattr(ds, "TotalPixelMatrixColumns", 2 ** 32 - 1),
            "tiles-missing": lambda ds: setattr(ds, "TotalPixelMatrixRows", 64)}[change]
    rewrite(folder / "volume-0.dcm", lambda ds: (setattr(ds, "DimensionOrganizationType", "TILED_FULL"), edit(ds)))
    assert "volume-0.dcm: NumberOfFrames does not fit the total pixel matrix and its tiles" in outcome(folder)


def test_implicit_vr_instances_are_rebuilt_explicit(tmp_path):
    """How a DICOM store often keeps uncompressed images: the header is rebuilt as Explicit VR
    Little Endian, the pixels are the same bytes, OpenSlide shows the same slide."""
    folder, planted = slide(tmp_path)
    before = openslide_all(dicom.volume(str(folder)))
    for name in os.listdir(folder):
        ds = pydicom.dcmread(folder / name)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(folder / name, enforce_file_format=True)
        assert not pydicom.dcmread(folder / name).is_implicit_VR is False
    _, plan, _ = anonymize(folder)
    assert "Implicit VR header rebuilt as Explicit VR Little Endian (pixel data unchanged)" in plan.actions
    assert sorted(os.listdir(folder)) == KEPT and leaks(folder, planted) == []
    assert pydicom.dcmread(folder / LEVEL_0).file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    after = openslide_all(folder / LEVEL_0)
    assert after[0] == before[0] and after[3] == before[3]


def _deep_sequence(depth):
    """A private sequence nesting `depth` sequences, written as raw bytes (pydicom's own writer
    recurses as deep as the data): the text sits in the innermost item."""
    body = b"\x08\x00\x04\x01LO" + struct.pack("<H", 12) + MARK.encode()  # CodeMeaning
    for _ in range(depth):
        body = (b"\x40\x00\x30\xa7SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body
                + b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0")
    return b"\x09\x00\x11\x10" + body[4:]  # the outermost one is (0009,1011), after the synthetic private text


def test_sequences_nested_too_deep_are_refused_in_one_line(tmp_path):
    folder, _ = slide(tmp_path)
    volume = folder / "volume-1.dcm"
    data = volume.read_bytes()
    private = data.index(b"\x09\x00\x10\x10LO")
    (length,) = struct.unpack_from("<H", data, private + 6)
    after = private + 8 + length
    volume.write_bytes(data[:after] + _deep_sequence(2000) + data[after:])
    result = outcome(folder)
    assert "sequences nested deeper than 32 levels" in result and MARK not in result


def _icc_v4(texts):
    """A version 4 profile like the ICC's own sRGB preference profile: `desc` and `cprt` as
    multi-localized Unicode (mluc) records, a white point."""
    def mluc(records):
        head = b"mluc" + bytes(4) + struct.pack(">II", len(records), 12)
        at, table, body = 16 + 12 * len(records), b"", b""
        for text in records:
            raw = text.encode("utf-16-be")
            table += b"enUS" + struct.pack(">II", len(raw), at + len(body))
            body += raw
        data = head + table + body
        return data + bytes(-len(data) % 4)
    tags = [(b"desc", mluc(texts[:-1])), (b"cprt", mluc(texts[-1:])),
            (b"wtpt", b"XYZ " + bytes(4) + struct.pack(">iii", 63190, 65536, 54061))]
    at, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", at + len(body), len(data))
        body += data
    profile = bytearray(128) + struct.pack(">I", len(tags)) + table + body
    struct.pack_into(">I", profile, 0, len(profile))
    profile[8:12], profile[12:16], profile[16:20], profile[20:24] = b"\x04\x20\0\0", b"spac", b"RGB ", b"Lab "
    profile[36:40] = b"acsp"
    profile[68:80] = bytes.fromhex("0000f6d6000100000000d32d")  # D50
    return bytes(profile)


SRGB_V4 = ["sRGB v4 ICC preference perceptual intent beta", "Copyright 2007 International Color Consortium"]


def _header(at, value):
    def change(profile):
        profile = bytearray(profile)
        profile[at:at + len(value)] = value
        return bytes(profile)
    return change


@pytest.mark.parametrize("texts, change, kept", [
    (SRGB_V4, None, True),
    (SRGB_V4[:1] + [MARK] + SRGB_V4[1:], None, False),          # a second desc record
    ([MARK] + SRGB_V4[1:], None, False),
    (SRGB_V4, _header(48, MARK.encode()[:4]), False),          # device manufacturer
    (SRGB_V4, _header(52, MARK.encode()[4:8]), False),         # device model
    (SRGB_V4, _header(80, MARK.encode()[8:12]), False),        # creator
    (SRGB_V4, _header(84, MARK.encode().ljust(16)), False),    # profile ID that is no MD5
    (SRGB_V4, _header(56, MARK.encode()[:8]), False),          # rendering attributes
    (SRGB_V4, _header(100, MARK.encode()), False),             # reserved bytes
])
def test_version_4_icc_profiles_stay_when_every_byte_is_explained(tmp_path, texts, change, kept):
    folder, planted = slide(tmp_path)
    profile = _icc_v4(texts)
    profile = change(profile) if change else profile
    for name in os.listdir(folder):
        rewrite(folder / name, lambda ds: _nested(ds, "OpticalPathSequence", "ICCProfile", value=profile))
    anonymize(folder)
    delivered = pydicom.dcmread(folder / LEVEL_0).OpticalPathSequence[0]
    assert ("ICCProfile" in delivered) == kept and leaks(folder, planted + [MARK]) == []
    if kept:
        assert delivered.ICCProfile == profile


def _private(ds, group, value, vr="LO"):
    block = ds.private_block(group, "ACME HOSTILE", create=True)
    block.add_new(0x01, vr, value)


def _charset(charset, text):
    def plant(ds):
        ds.SpecificCharacterSet = charset
        ds.PatientComments = text
        ds.OpticalPathSequence[0].OpticalPathDescription = text
    return plant


def _icc_with(text):
    """A minimal ICC profile: header, a `desc` tag carrying `text`, a white point."""
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text.encode() + b"\0" + bytes(4 + 4 + 3 + 67)
    desc += bytes(-len(desc) % 4)
    white = b"XYZ " + bytes(4) + struct.pack(">iii", 63190, 65536, 54061)
    table_end = 128 + 4 + 12 * 2
    body = desc + white
    profile = bytearray(table_end) + body
    struct.pack_into(">I", profile, 0, len(profile))
    profile[36:40] = b"acsp"
    struct.pack_into(">I", profile, 128, 2)
    struct.pack_into(">4sII", profile, 132, b"desc", table_end, len(desc))
    struct.pack_into(">4sII", profile, 144, b"wtpt", table_end + len(desc), len(white))
    return bytes(profile)


# id: (what is planted into the instance, what must happen: "delivered" or a piece of the reason)
DATASET_VARIANTS = {
    "optical-path-description": (lambda ds: _nested(ds, "OpticalPathSequence", "OpticalPathDescription"), "delivered"),
    "optical-path-description-start": (lambda ds: _nested(ds, "OpticalPathSequence", "OpticalPathDescription", value=MARK + " tail"), "delivered"),
    "optical-path-description-end": (lambda ds: _nested(ds, "OpticalPathSequence", "OpticalPathDescription", value="head " + MARK), "delivered"),
    "optical-path-private": (lambda ds: _private(ds.OpticalPathSequence[0], 0x0011, MARK), "delivered"),
    "optical-path-identifier": (lambda ds: _nested(ds, "OpticalPathSequence", "OpticalPathIdentifier", value=MARK[:16]), "delivered"),
    "icc-profile-description": (lambda ds: _nested(ds, "OpticalPathSequence", "ICCProfile", value=_icc_with(MARK)), "delivered"),
    "acquisition-context-depth-2": (lambda ds: _nested(ds, "AcquisitionContextSequence", "ContentSequence", "TextValue"), "delivered"),
    "specimen-preparation-depth-3": (lambda ds: _nested(ds, "SpecimenDescriptionSequence", "SpecimenPreparationSequence",
                                                        "SpecimenPreparationStepContentItemSequence", "TextValue"), "delivered"),
    "frame-comments-shared": (lambda ds: _nested(ds, "SharedFunctionalGroupsSequence", "FrameContentSequence", "FrameComments"), "delivered"),
    "frame-datetime-per-frame": (lambda ds: setattr(ds, "PerFrameFunctionalGroupsSequence", Sequence(
        [_frame_group(i) for i in range(int(ds.NumberOfFrames))])), "delivered"),
    "derivation-source-uid": (lambda ds: _nested(ds, "SharedFunctionalGroupsSequence", "DerivationImageSequence",
                                                 "SourceImageSequence", "ReferencedSOPInstanceUID", value="1.2.826.4711.8812"), "delivered"),
    "referenced-image-uid": (lambda ds: _nested(ds, "ReferencedImageSequence", "ReferencedSOPInstanceUID", value="1.2.826.4711.8813"), "delivered"),
    "dimension-label": (lambda ds: _nested(ds, "DimensionIndexSequence", "DimensionDescriptionLabel"), "delivered"),
    "code-meaning-forged": (lambda ds: setattr(ds, "ContainerTypeCodeSequence", Sequence([_code("SCT", "433466003", MARK)])), "delivered"),
    "code-unknown": (lambda ds: _nested(ds, "OpticalPathSequence", "IlluminationTypeCodeSequence",
                                        value=Sequence([_code("99ZQ", "4711", MARK)])), "delivered"),
    "manufacturer": (lambda ds: setattr(ds, "Manufacturer", MARK), "delivered"),
    "software-versions": (lambda ds: setattr(ds, "SoftwareVersions", ["1.2.3", MARK]), "delivered"),
    "position-reference": (lambda ds: setattr(ds, "PositionReferenceIndicator", MARK), "delivered"),
    "content-qualification": (lambda ds: setattr(ds, "ContentQualification", MARK[:16]), "delivered"),
    "compression-ratio": (lambda ds: setattr(ds, "LossyImageCompressionRatio", ["1.5", "4711.5"]), "delivered"),
    "private-top-utf16": (lambda ds: _private(ds, 0x0009, MARK.encode("utf-16-le"), "OB"), "delivered"),
    "private-after-pixels-group": (lambda ds: _private(ds, 0x7FE1, MARK), "delivered"),
    "icon-image": (lambda ds: _nested(ds, "IconImageSequence", "ImageComments"), "delivered"),
    "latin-1": (_charset("ISO_IR 100", f"Müller {MARK}"), "delivered"),
    "utf-8": (_charset("ISO_IR 192", f"Jürgen {MARK} ü"), "delivered"),
    "image-type-value-4": (lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "VOLUME", MARK[:16]]), "ImageType"),
    "photometric": (lambda ds: setattr(ds, "PhotometricInterpretation", MARK[:16]), "PhotometricInterpretation"),
    "rows-as-text": (lambda ds: ds.__setitem__(0x00280010, pydicom.DataElement(0x00280010, "OB", MARK.encode())), "Rows"),
}


def _code(scheme, value, meaning):
    code = Dataset()
    code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning = scheme, value, meaning
    return code


def _frame_group(i):
    group = Dataset()
    content = Dataset()
    content.FrameAcquisitionDateTime = "20261120143207"
    content.FrameComments = f"{MARK} {i}"
    group.FrameContentSequence = Sequence([content])
    return group


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # the hostile values are invalid on purpose
@pytest.mark.parametrize("instance", ["first", "later"])
@pytest.mark.parametrize("variant", sorted(DATASET_VARIANTS))
def test_hostile_dataset_variants(tmp_path, variant, instance):
    plant, expected = DATASET_VARIANTS[variant]
    folder, planted = slide(tmp_path)
    roles = _by_role(folder)
    region = openslide_view(dicom.volume(str(folder)))[2]
    target = dicom.volume(str(folder)) if instance == "first" else roles["THUMBNAIL"]
    rewrite(target, plant)
    result = outcome(folder)
    if expected == "delivered":
        assert result == "delivered"
        assert leaks(folder, planted + [MARK, "1.2.826.4711"]) == []
        assert openslide_view(str(folder / LEVEL_0))[2] == region
    else:
        assert expected in result and MARK not in result


def test_search_list_keeps_a_removed_value_found_inside_a_kept_one(tmp_path):
    """The accession also hides inside a kept value (Manufacturer) and after the pixel data: the
    kept value goes, the accession stays on the search list, nothing of it is delivered."""
    folder, planted = slide(tmp_path)
    for name in os.listdir(folder):
        rewrite(folder / name, lambda ds: (setattr(ds, "Manufacturer", "Leica Biosystems"),
                                           setattr(ds, "AccessionNumber", "Biosystems")))
    volume = dicom.volume(str(folder))
    with open(volume, "ab") as fh:
        fh.write(b"\xfc\xff\xfc\xffOB\0\0" + struct.pack("<I", 10) + b"Biosystems")
    _, plan, _ = anonymize(folder)
    assert "Biosystems" in plan.removed
    assert leaks(folder, planted + ["Biosystems"]) == []
    assert pydicom.dcmread(folder / LEVEL_0).Manufacturer == "UNKNOWN"


@pytest.mark.parametrize("tail", ["signatures", "unterminated"])
def test_a_sequence_after_the_pixel_data_is_dropped_and_the_slide_delivered(tmp_path, tail):
    """A DigitalSignaturesSequence (FFFA,FFFA) or an unterminated sequence after the pixel data
    is dropped; its marker bytes (FF FF FF FF FE FF: Latin-1 'ÿÿÿÿþÿ') are no text to search for,
    but a name inside it is, and must be gone."""
    folder, planted = slide(tmp_path)
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x00\x04\x15\x01LO\x08\x00" + b"Rtq Smit"
    sequence = b"\xfa\xff\xfa\xffSQ\0\0\xff\xff\xff\xff" + item
    if tail == "signatures":
        sequence += b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    with open(dicom.volume(str(folder)), "ab") as fh:
        fh.write(sequence)
    _, plan, _ = anonymize(folder)
    assert any("Rtq Smit" in v for v in plan.removed) and not any(set(v) <= set("\xff\xfe") for v in plan.removed)
    assert leaks(folder, planted + ["Rtq Smit"]) == []


def test_scrubber_keeps_the_typed_manufacturer(tmp_path):
    folder, _ = slide(tmp_path)
    rewrite(dicom.volume(str(folder)), lambda ds: setattr(ds, "Manufacturer", "Leica Biosystems"))
    anonymize(folder)
    assert pydicom.dcmread(folder / LEVEL_0).Manufacturer == "Leica Biosystems"


META_VARIANTS = {
    "source-ae-title": lambda meta: setattr(meta, "SourceApplicationEntityTitle", MARK[:16]),
    "sending-ae-title": lambda meta: setattr(meta, "SendingApplicationEntityTitle", MARK[:16]),
    "implementation-version-name": lambda meta: setattr(meta, "ImplementationVersionName", MARK[:16]),
    "private-information": lambda meta: (setattr(meta, "PrivateInformationCreatorUID", "1.2.826.4711.1"),
                                         setattr(meta, "PrivateInformation", MARK.encode("utf-16-le"))),
}


@pytest.mark.parametrize("variant", sorted(META_VARIANTS))
def test_hostile_file_meta(tmp_path, variant):
    folder, planted = slide(tmp_path)
    rewrite(dicom.volume(str(folder)), lambda ds: META_VARIANTS[variant](ds.file_meta))
    assert outcome(folder) == "delivered"
    assert leaks(folder, planted + [MARK[:16], "1.2.826.4711"]) == []


def _tiff_preamble(text):
    return (b"II*\0" + struct.pack("<I", 8) + text.encode()).ljust(128, b"\0")


RAW_VARIANTS = {  # changes to the raw bytes of a saved instance
    "preamble-ascii": lambda data: MARK.encode().ljust(128, b" ") + data[128:],
    "preamble-utf16": lambda data: MARK.encode("utf-16-le").ljust(128, b"\0") + data[128:],
    "preamble-dual-personality-tiff": lambda data: _tiff_preamble(MARK) + data[128:],
    "trailing-padding": lambda data: data + b"\xfc\xff\xfc\xffOB\0\0" + struct.pack("<I", 16) + MARK.encode().ljust(16),
    "trailing-raw-bytes": lambda data: data + b"\0\0" + MARK.encode("utf-16-be"),
}


@pytest.mark.parametrize("variant", sorted(RAW_VARIANTS))
@pytest.mark.parametrize("codec", ["native", "jpeg"])
def test_hostile_bytes_outside_the_dataset(tmp_path, variant, codec):
    folder, planted = slide(tmp_path, codec=codec)
    volume = dicom.volume(str(folder))
    with open(volume, "rb") as fh:
        data = fh.read()
    with open(volume, "wb") as fh:
        fh.write(RAW_VARIANTS[variant](data))
    _, plan, _ = anonymize(folder)
    assert MARK in " ".join(plan.removed)  # what went is searched for
    assert leaks(folder, planted + [MARK]) == []


def _with_frames(tmp_path, change, options=OPTIONS, codec="jpeg"):
    """A slide whose level-0 frames are changed by change(frames) (re-encapsulated)."""
    from pydicom.encaps import encapsulate, generate_fragmented_frames
    folder, _ = slide(tmp_path, codec=codec)
    volume = dicom.volume(str(folder))
    ds = pydicom.dcmread(volume)
    frames = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    ds.PixelData = encapsulate(change(frames))
    ds.save_as(volume, enforce_file_format=True)
    return folder, outcome(folder, options)


def _insert(frame, segment):
    return frame[:2] + segment + frame[2:]


FRAME_VARIANTS = {
    "com-in-first-frame": (lambda f: [_insert(f[0], b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK.encode())] + f[1:],
                           "PixelData frame 1 header holds COM"),
    "exif-app1-in-last-frame": (lambda f: f[:-1] + [_insert(f[-1], b"\xff\xe1" + struct.pack(">H", len(MARK) + 8) + b"Exif\0\0" + MARK.encode())],
                                f"frame 12 header holds APP1"),
    "text-after-end-of-image": (lambda f: [f[0] + MARK.encode()] + f[1:], "PixelData frame 1 does not end with EOI"),
    "jfif-with-thumbnail": (lambda f: [_insert(f[0][:2] + f[0][20:], b"\xff\xe0" + struct.pack(">H", 16 + 12) + b"JFIF\0\1\1\0\0\1\0\1\2\2" + MARK.encode()[:12])] + f[1:],
                            "PixelData frame 1 header holds APP0"),
}


@pytest.mark.parametrize("variant", sorted(FRAME_VARIANTS))
def test_hostile_frame_headers_are_refused(tmp_path, variant):
    change, reason = FRAME_VARIANTS[variant]
    _, result = _with_frames(tmp_path, change)
    assert reason in result and MARK not in result


def _label_jpeg(size=(16, 16), text="DOE^J"):
    """A photo of a label: text drawn on white, a complete JPEG (no COM: only pixels say it)."""
    import io

    from PIL import Image, ImageDraw
    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).text((0, 2), text, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def _progressive_with_comment(frame):
    """The same tile as a progressive JPEG with a COM segment between two of its scans."""
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.open(io.BytesIO(frame)).save(out, "JPEG", progressive=True, quality=90)
    data = out.getvalue()
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    return data[:second_scan] + b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK.encode() + data[second_scan:]


def _before_eoi(frame, segment):
    return frame[:-2] + segment + frame[-2:]


def _app(n, payload):
    return bytes([0xFF, 0xE0 + n]) + struct.pack(">H", len(payload) + 2) + payload


# What an attacker can do to the layout of encapsulated pixel data (level 0: 12 frames, one
# JPEG each): (fragments, offset table) from the real frames f, and what the reason says.
# Every variant is refused: the label photo (C41: visible in OpenSlide), text fragments and
# zero tables (R18: OpenSlide crashes on it) must not be delivered as verified.
LAYOUT_VARIANTS = {
    "text-fragment-after-the-last-frame": (lambda f: (f + [MARK.encode()], None), "13 fragments for 12 frames"),
    "text-fragment-between-frames": (lambda f: (f[:6] + [MARK.encode()] + f[6:], dicom.offsets(f)), "13 fragments for 12 frames"),
    "label-continuing-the-last-frame": (lambda f: (f + [_label_jpeg()], dicom.offsets(f)), "13 fragments for 12 frames"),
    "table-maps-a-frame-to-a-label": (lambda f: (f + [_label_jpeg()], dicom.offsets(f + [_label_jpeg()])[:11] +
                                                 dicom.offsets(f + [_label_jpeg()])[12:]), "13 fragments for 12 frames"),
    "no-table-and-a-text-fragment": (lambda f: (f + [MARK.encode()], b""), "13 fragments for 12 frames"),
    "label-in-place-of-a-fragment-the-table-skips": (lambda f: (f[:11] + [_label_jpeg(), f[11]],
                                                                 dicom.offsets(f[:11] + [_label_jpeg(), f[11]])[:11] +
                                                                 dicom.offsets(f[:11] + [_label_jpeg(), f[11]])[12:]),
                                                     "13 fragments for 12 frames"),
    "all-zero-table": (lambda f: (f, [0] * 12), "the basic offset table does not point at the frames"),
    "table-in-another-order": (lambda f: (f, dicom.offsets(f)[1:2] + dicom.offsets(f)[:1] + dicom.offsets(f)[2:]),
                               "the basic offset table does not point at the frames"),
    "table-one-entry-short": (lambda f: (f, dicom.offsets(f)[:11]), "the basic offset table does not point at the frames"),
    "table-with-text-after-it": (lambda f: (f, struct.pack("<12I", *dicom.offsets(f)) + MARK.encode()),
                                 "the basic offset table does not point at the frames"),
    "text-before-soi-first-frame": (lambda f: ([MARK.encode() + f[0]] + f[1:], None), "frame 1 does not begin with SOI"),
    "text-before-soi-unsampled-frame": (lambda f: (f[:5] + [MARK.encode() + f[5]] + f[6:], None), "frame 6 does not begin with SOI"),
    "text-after-eoi-unsampled-frame": (lambda f: (f[:5] + [f[5] + MARK.encode("utf-16-le")] + f[6:], None), "frame 6 does not end with EOI"),
    "label-after-eoi-first-frame": (lambda f: ([f[0] + _label_jpeg()] + f[1:], None), "frame 1 is not one whole codestream"),
    "app15-just-before-eoi": (lambda f: ([_before_eoi(f[0], _app(15, MARK.encode()))] + f[1:], None), "frame 1 header holds APP15"),
    "com-between-progressive-scans": (lambda f: ([_progressive_with_comment(f[0])] + f[1:], None), "frame 1 header holds COM"),
    "com-before-eoi-last-frame": (lambda f: (f[:-1] + [_before_eoi(f[-1], b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK.encode())], None),
                                  "frame 12 header holds COM"),
}


@pytest.mark.parametrize("variant", sorted(LAYOUT_VARIANTS))
def test_hostile_pixel_data_layouts_are_refused(tmp_path, variant):
    build, reason = LAYOUT_VARIANTS[variant]
    folder, planted = slide(tmp_path, codec="jpeg")
    volume = dicom.volume(str(folder))
    fragments, table = build(dicom.frames(volume))
    dicom.rewrite_pixels(volume, dicom.encapsulated(fragments, table))
    result = outcome(folder, SimpleNamespace(keep_macro=False, full_scan=False))
    assert reason in result and MARK not in result, result
    assert "\n" not in result


@pytest.mark.parametrize("table", ["basic", "none", "extended"])
def test_exact_layouts_are_delivered(tmp_path, table):
    """One fragment per frame with an exact Basic Offset Table, none at all, or an Extended
    Offset Table (and an empty basic one): every frame reaches the outbox as OpenSlide read it."""
    folder, planted = slide(tmp_path, codec="jpeg")
    volume = dicom.volume(str(folder))
    before = openslide_all(volume)
    frames = dicom.frames(volume)

    def extended(ds):
        ds.ExtendedOffsetTable = struct.pack("<12Q", *dicom.offsets(frames))
        ds.ExtendedOffsetTableLengths = struct.pack("<12Q", *(len(f) for f in frames))
    dicom.rewrite_pixels(volume, dicom.encapsulated(frames, None if table == "basic" else b""),
                         extended if table == "extended" else None)
    assert outcome(folder, SimpleNamespace(keep_macro=False, full_scan=False)) == "delivered"
    after = openslide_all(folder / LEVEL_0)
    assert after[0] == before[0] and after[3] == before[3] and leaks(folder, planted) == []


def test_extended_offset_table_that_lies_is_refused(tmp_path):
    folder, _ = slide(tmp_path, codec="jpeg")
    volume = dicom.volume(str(folder))
    frames = dicom.frames(volume)

    def lying(ds):
        ds.ExtendedOffsetTable = struct.pack("<12Q", *([0] * 12))
    dicom.rewrite_pixels(volume, dicom.encapsulated(frames, b""), lying)
    assert "ExtendedOffsetTable does not point at the frames" in outcome(folder)


def test_a_single_frame_split_over_two_fragments_is_refused(tmp_path):
    """libdicom cannot decode it (verified: OpenSlide reports corrupt JPEG data), so it is not
    delivered as verified; the thumbnail is a single-frame image."""
    folder, _ = slide(tmp_path, codec="jpeg")
    thumbnail = _by_role(folder)["THUMBNAIL"]
    frame = dicom.frames(thumbnail)[0]
    dicom.rewrite_pixels(thumbnail, dicom.encapsulated([frame[:40], frame[40:]], [0]))
    assert "2 fragments for 1 frames" in outcome(folder)


def test_audit_proves_the_layout_of_what_was_delivered(tmp_path):
    """The audit re-reads the written pixel data: a delivered file whose table points at zero
    is refused even though the scrubber copied it (the scrubber's own check is bypassed)."""
    folder, module, plan = _delivered(tmp_path, "jpeg")
    with open(folder / LEVEL_0, "rb") as fh:
        data = bytearray(fh.read())
    table_at = data.rindex(b"\xe0\x7f\x10\x00OB") + 12
    (length,) = struct.unpack_from("<I", data, table_at + 4)
    data[table_at + 8:table_at + 8 + length] = bytes(length)
    with open(folder / LEVEL_0, "wb") as fh:
        fh.write(data)
    assert any("the basic offset table does not point at the frames" in p
               for p in module.check(str(folder), plan, OPTIONS))


def _j2k_comment(text, latin=True):
    return b"\xff\x64" + struct.pack(">H", len(text) + 4) + (b"\0\1" if latin else b"\0\0") + text


def _after_siz(frame, segment):
    (length,) = struct.unpack(">H", frame[4:6])
    return frame[:4 + length] + segment + frame[4 + length:]


def _in_tile_part(frame, segment):
    at = frame.index(b"\xff\x90")
    (psot,) = struct.unpack(">I", frame[at + 6:at + 10])
    frame = frame[:at + 6] + struct.pack(">I", psot + len(segment)) + frame[at + 10:]
    return frame[:at + 12] + segment + frame[at + 12:]


J2K_VARIANTS = {
    "com-main-header": (lambda f: [_after_siz(f[0], _j2k_comment(MARK.encode()))] + f[1:], "frame 1 header holds COM"),
    "com-binary": (lambda f: [_after_siz(f[0], _j2k_comment(MARK.encode("utf-16-be"), latin=False))] + f[1:],
                   "frame 1 header holds COM"),
    "com-tile-part": (lambda f: f[:-1] + [_in_tile_part(f[-1], _j2k_comment(MARK.encode()))], "frame 12 header holds COM"),
    "bytes-after-eoc-unsampled-frame": (lambda f: f[:5] + [f[5] + MARK.encode()] + f[6:], "frame 6 does not end with EOC"),
    "second-codestream-after-eoc": (lambda f: [f[0].rstrip(b"\0") + f[1]] + f[1:], "frame 1 is not one whole codestream"),
    "encoder-banner-spoofed": (lambda f: [_after_siz(f[0], _j2k_comment(b"Created by OpenJPEG version 2.5 " + MARK.encode()))] + f[1:],
                               "frame 1 header holds COM"),
}


@pytest.mark.parametrize("variant", sorted(J2K_VARIANTS))
def test_hostile_jpeg2000_codestreams_are_refused(tmp_path, variant):
    change, reason = J2K_VARIANTS[variant]
    _, result = _with_frames(tmp_path, change, codec="j2k")
    assert reason in result and MARK not in result


def test_frame_headers_are_sampled_by_default_and_all_read_with_full_scan(tmp_path):
    """The whole codestreams of the first, the last and SAMPLE spread frames are read; a comment
    in any other frame is found with verify.full_scan (documented in the README)."""
    from paw.formats import encapsulated
    frames = 12
    sampled = set(encapsulated.sample(frames, full=False))
    unsampled = min(set(range(frames)) - sampled)
    com = b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK.encode()

    def change(f):
        return f[:unsampled] + [_insert(f[unsampled], com)] + f[unsampled + 1:]
    _, result = _with_frames(tmp_path / "a", change, SimpleNamespace(keep_macro=False, full_scan=False))
    assert result == "delivered"
    _, result = _with_frames(tmp_path / "b", change, OPTIONS)
    assert f"frame {unsampled + 1} header holds COM" in result


# --- the audit is independent of the scrubber ----------------------------------------------------------

def _delivered(tmp_path, codec="native"):
    folder, planted = slide(tmp_path, codec=codec)
    module, plan, _ = prepare(str(folder), OPTIONS, PSEUDONYM)
    plan.apply(str(folder))
    assert module.check(str(folder), plan, OPTIONS) == []
    return folder, module, plan


TAMPERING = {
    "preamble": (lambda data: MARK.encode() + data[len(MARK):], "preamble is not all zero"),
    "after-pixel-data": (lambda data: data + MARK.encode(), "holds bytes after the pixel data"),
    "meta-element": (lambda data: data.replace(b"PAW ", b"PAX "), "file meta values are not paw's"),
    "pixel-length": (lambda data: data[:-1], "does not parse"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_audit_refuses_tampered_output(tmp_path, tamper):
    change, reason = TAMPERING[tamper]
    folder, module, plan = _delivered(tmp_path)
    with open(folder / LEVEL_0, "rb") as fh:
        data = fh.read()
    with open(folder / LEVEL_0, "wb") as fh:
        fh.write(change(data))
    assert any(reason in p for p in module.check(str(folder), plan, OPTIONS))


def test_audit_refuses_a_stray_file_in_the_delivered_folder(tmp_path):
    folder, module, plan = _delivered(tmp_path)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert module.check(str(folder), plan, OPTIONS) == [
        "'.DS_Store': a file the plan does not account for is in the slide folder"]


@pytest.mark.parametrize("forget, reason", [
    ("private", "(0009,0010) is not in the allow-list"),
    ("nested", "OpticalPathSequence[0]/OpticalPathDescription is not in the allow-list"),
    ("code", "ContainerTypeCodeSequence[0] is not a known code"),
])
def test_audit_catches_what_a_broken_scrubber_forgets(tmp_path, monkeypatch, forget, reason):
    """Break the scrubber on purpose: the audit, reading only the table and the bytes, refuses."""
    folder, _ = slide(tmp_path)
    rewrite(dicom.volume(str(folder)), lambda ds: setattr(
        ds, "ContainerTypeCodeSequence", Sequence([_code("SCT", "433466003", MARK)])))
    real_value, real_code = dicom_format.Scrub.value, dicom_format.Scrub.code

    def value(self, tag, vr, raw, rule, where, quiet):
        private = "(0009," in where and forget == "private"
        nested = where.count("/") > 1 and forget == "nested"  # a top-level-only scrubber
        if rule is None and (private or nested):
            return dicom_format._encode(tag, vr, bytes(raw))
        return real_value(self, tag, vr, raw, rule, where, quiet)

    def code(self, data, at, end, where):  # keeps the code but forgets to rewrite its meaning
        built, after = real_code(self, data, at, end, where)
        if built is not None and forget == "code":
            meaning = dicom_format._encode(0x00080104, "LO", b"Microscope slide")
            built = built[:-len(meaning)] + dicom_format._encode(0x00080104, "LO", MARK.encode())
        return built, after
    monkeypatch.setattr(dicom_format.Scrub, "value", value)
    monkeypatch.setattr(dicom_format.Scrub, "code", code)
    result = outcome(folder)
    assert reason in result, result


# --- through the job --------------------------------------------------------------------------------

def _tree(folder):
    """Relative path -> bytes of every file below a folder."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as fh:
                found[os.path.relpath(os.path.join(root, name), folder)] = fh.read()
    return found


def test_extension_less_export_is_delivered_as_one_slide_by_the_job(lab, tmp_path):
    folder = os.path.join(lab.inbox, "S26-11 A1 HE")
    planted = _fileset(folder, tmp_path)
    for name, data in CLUTTER.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
    assert lab.run() == 0, lab.rows()
    [output] = lab.outbox_files()
    names = sorted(os.listdir(os.path.join(lab.outbox, output)))
    assert names == [f"{output}_{n}.dcm" for n in ("level-0", "level-1", "thumbnail")]
    datasets = [pydicom.dcmread(os.path.join(lab.outbox, output, n)) for n in names]
    assert len({d.StudyInstanceUID for d in datasets}) == 1 and len({d.SeriesInstanceUID for d in datasets}) == 1
    assert leaks(os.path.join(lab.outbox, output), planted + [ACCESSION, PATIENT]) == []
    assert openslide_view(os.path.join(lab.outbox, output, names[0]))[:2] == ("dicom", ["thumbnail"])
    [row] = lab.rows()
    assert "DICOMDIR removed" in row["removed"] and "macOS folder settings (.DS_Store) removed" in row["removed"]
    assert os.listdir(lab.inbox) == [] and lab.staging() == []


def test_a_stray_file_quarantines_the_folder_as_the_scanner_wrote_it(lab):
    folder = os.path.join(lab.inbox, "S26-12 A1 HE")
    dicom.write(folder, names="bare")
    with open(os.path.join(folder, "notes.txt"), "w") as fh:
        fh.write(f"slide of {PATIENT}")
    original = _tree(folder)
    assert lab.run() == 3
    assert lab.outbox_files() == [] and lab.quarantined() == ["S26-12 A1 HE"]
    assert _tree(os.path.join(lab.quarantine, "S26-12 A1 HE")) == original
    [row] = lab.rows()
    assert "'notes.txt': a file that is not part of a DICOM slide" in row["error"] and PATIENT not in row["error"]
