"""3DHistech MRXS: the whole bundle (the .mrxs, Slidedat.ini, Index.dat, the data files), fail closed.

Every hostile variant must end delivered clean (no planted text in any file or file name, in any
encoding) or refused with a reason that names the field; the synthetic slide must still open in
OpenSlide with the same level, pixels, mpp and objective power, without label and macro.
"""

import os
from types import SimpleNamespace

import openslide
import pytest

from checks import leaks_below, mrxs_tiles, openslide_view
from paw.errors import Unsupported, VerificationFailed
from paw.formats import mrxs as mrxs_format, prepare
from paw.verify import verify
from synth import ACCESSION, PATIENT, mrxs

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=True)
MARK = "ZQX-S26-4711"


def anonymize(path, options=OPTIONS):
    module, plan, found = prepare(path, options)
    plan.apply(path)
    verify(path, module, plan, options)
    return module, plan, found


def outcome(path, options=OPTIONS):
    try:
        anonymize(path, options)
    except (Unsupported, VerificationFailed) as exc:
        assert "\n" not in str(exc)
        return str(exc)
    return "delivered"


def _mrxs(tmp_path, **kwargs):
    path = str(tmp_path / "S26 slide.mrxs")
    return path, mrxs.write(path, **kwargs)


def leaks(path, values):
    return leaks_below(path, values) + leaks_below(path[:-5], values)


def properties(path):
    with openslide.OpenSlide(path) as slide:
        return {k: v for k, v in slide.properties.items() if k in (
            "openslide.objective-power", "openslide.mpp-x", "openslide.mpp-y", "openslide.background-color")}


def test_synthetic_slide_keeps_level_pixels_mpp_and_objective_power(tmp_path):
    path, planted = _mrxs(tmp_path)
    vendor, images, region = openslide_view(path)
    assert (vendor, images) == ("mirax", ["label", "macro", "thumbnail"])
    before, tiles = properties(path), mrxs_tiles(path)
    assert before["openslide.objective-power"] == "20"
    module, plan, found = anonymize(path)
    assert module.name == "mrxs" and found == {"macro": 1, "label": 1, "thumbnail": 1, "level": 4}
    assert mrxs_tiles(path) == tiles
    assert leaks(path, planted) == []
    assert openslide_view(path) == ("mirax", [], region) and properties(path) == before
    with open(os.path.join(path[:-5], "Slidedat.ini"), "rb") as fh:
        text = fh.read()
    assert text.startswith(b"\xef\xbb\xbf[GENERAL]\r\n") and b"\n" not in text.replace(b"\r\n", b"")
    assert b"SLIDE_NAME = \r\n" in text and b"SCANNER_HARDWARE_ID = \r\n" in text
    assert b"OPTOVAR_SIZE" not in text  # a key the allow-list does not know is left out
    assert sorted(os.listdir(path[:-5])) == ["Data0000.dat", "Index.dat", "Slidedat.ini"]
    with open(path, "rb") as fh:
        assert not fh.read().strip(b"\0")
    assert "SCANNER_HARDWARE_ID emptied" in plan.actions and not any(p in a for p in planted for a in plan.actions)


def test_utf16_slidedat_is_rewritten_as_utf8(tmp_path):
    path, planted = _mrxs(tmp_path, encoding="utf-16")
    anonymize(path)
    assert leaks(path, planted) == []
    with open(os.path.join(path[:-5], "Slidedat.ini"), "rb") as fh:
        text = fh.read().decode("utf-8-sig")
    assert "IMAGENUMBER_X = 2\r\n" in text and "SLIDE_NAME = \r\n" in text
    assert openslide_view(path)[:2] == ("mirax", [])  # OpenSlide could not read the UTF-16 original


def test_keep_macro(tmp_path):
    path, _ = _mrxs(tmp_path)
    anonymize(path, SimpleNamespace(keep_macro=True, full_scan=True))
    assert openslide_view(path)[1] == ["macro"]


@pytest.mark.parametrize("damage, reason", [
    (lambda folder: os.remove(os.path.join(folder, "Data0000.dat")), "missing"),
    (lambda folder: open(os.path.join(folder, "Slidedat.ini"), "wb").write(os.urandom(300)), "Slidedat.ini"),
    (lambda folder: open(os.path.join(folder, "Index.dat"), "r+b").truncate(50),
     "incomplete file: .* of a 3DHistech MRXS slide"),
])
def test_damaged_mrxs_is_refused(tmp_path, damage, reason):
    path, _ = _mrxs(tmp_path)
    damage(path[:-5])
    with pytest.raises(Unsupported, match=reason):
        prepare(path, OPTIONS)


# --- hostile variants, every section ---------------------------------------------------------------

def _insert(after, *new):
    """An edit adding lines after the first line that starts with `after`."""
    def edit(lines):
        at = next(i for i, line in enumerate(lines) if line.startswith(after)) + 1
        return lines[:at] + list(new) + lines[at:]
    return edit


def _replace(old, new):
    return lambda lines: [line.replace(old, new) for line in lines]


INI_VARIANTS = {  # (edit of the Slidedat.ini lines, what must happen)
    "general-unknown-key": (_insert("SLIDE_ID", f"PATIENT = {MARK}"), "delivered"),
    "general-case-id": (_insert("[GENERAL]", f"CASE_ID = {MARK}"), "delivered"),
    "general-duplicate-key": (_insert("SLIDE_NAME", f"SLIDE_NAME = {MARK}"), "delivered"),
    "general-duplicate-key-first": (_insert("[GENERAL]", f"SLIDE_NAME = {MARK}"), "delivered"),
    "general-localized-key": (_insert("SLIDE_NAME", f"SLIDE_NAME[de] = {MARK}"), "delivered"),
    "general-comment": (_insert("[GENERAL]", f"# scanned for {MARK}"), "delivered"),
    "general-empty-key": (_insert("[GENERAL]", f"= {MARK}"), "delivered"),
    "general-duplicate-section": (lambda lines: lines + ["[GENERAL]", f"LIS_CASE = {MARK}"], "delivered"),
    "objective-as-text": (_replace("OBJECTIVE_MAGNIFICATION = 20", f"OBJECTIVE_MAGNIFICATION = {MARK}"), "delivered"),
    "value-start": (_replace(f"SLIDE_NAME = {ACCESSION} {PATIENT}", f"SLIDE_NAME = {MARK} x"), "delivered"),
    "value-end": (_replace(f"SLIDE_NAME = {ACCESSION} {PATIENT}", f"SLIDE_NAME = x {MARK}"), "delivered"),
    "hierarchical-unknown-key": (_insert("[HIERARCHICAL]", f"HIER_OPERATOR = {MARK}"), "delivered"),
    "hierarchical-layer-name": (_replace("HIER_1_NAME = Slide filter level", f"HIER_1_NAME = {MARK}"), "delivered"),
    "hierarchical-level-value": (_replace("HIER_1_VAL_0 = FilterLevel_0", f"HIER_1_VAL_0 = {MARK}"), "delivered"),
    "nonhier-layer-name": (_replace("NONHIER_1_NAME = VIMSLIDE_POSITION_BUFFER", f"NONHIER_1_NAME = {MARK}"), "delivered"),
    "nonhier-value": (_replace("NONHIER_0_VAL_3 = ScanDataLayer_XMLInfoHeader", f"NONHIER_0_VAL_3 = {MARK}"), "delivered"),
    "section-name-in-use": (_replace("NONHIERLAYER_0_LEVEL_1_SECTION", MARK), "delivered"),
    "unknown-section": (lambda lines: lines + [f"[{MARK}]", "NOTE = x"], "delivered"),
    "unknown-section-keys": (lambda lines: lines + ["[PATIENT_DATA]", f"NAME = {MARK}"], "delivered"),
    "datafile-unknown-key": (_insert("[DATAFILE]", f"FILE_OWNER = {MARK}"), "delivered"),
    "zoom-level-unknown-key": (_insert("[LAYER_0_LEVEL_0_SECTION]", f"USER = {MARK}"), "delivered"),
    "filter-level-name": (_replace("FILTER_NAME = Default", f"FILTER_NAME = {MARK}"), "delivered"),
    "nonhier-layer-unknown-key": (_insert("[NONHIERLAYER_1_SECTION]", f"LIS_ACCESSION = {MARK}"), "delivered"),
    "scanner-software-version": (_replace("SCANNER_SOFTWARE_VERSION = 1,12,25,1", f"SCANNER_SOFTWARE_VERSION = {MARK}"), "delivered"),
    "barcode-section-key": (_insert("[NONHIERLAYER_0_LEVEL_1_SECTION]", f"BARCODE_TEXT = {MARK}"), "delivered"),
    "zoom-format-as-text": (_replace("IMAGE_FORMAT = JPEG", f"IMAGE_FORMAT = {MARK}"), "IMAGE_FORMAT is not in the allow-list"),
    "kept-key-twice-differently": (_insert("IMAGENUMBER_X", "IMAGENUMBER_X = 3"), "IMAGENUMBER_X is there twice"),
    "semicolon-line": (_insert("[GENERAL]", f"; {MARK}"), "line 2 is not a key, a section or a comment"),
    "line-without-equals": (_insert("[GENERAL]", MARK), "line 2 is not a key, a section or a comment"),
}


@pytest.mark.parametrize("variant", sorted(INI_VARIANTS))
def test_hostile_slidedat(tmp_path, variant):
    edit, expected = INI_VARIANTS[variant]
    path, planted = _mrxs(tmp_path, edit=edit)
    result = outcome(path)
    if expected == "delivered":
        assert result == "delivered"
        assert leaks(path, planted + [MARK]) == []
        assert openslide_view(path)[:2] == ("mirax", [])
    else:
        assert expected in result and MARK not in result


def test_a_kept_value_holding_a_removed_one_goes(tmp_path):
    """SLIDE_CONTENT (removed) is `12,25`, which the kept SCANNER_SOFTWARE_VERSION `1,12,25,1`
    contains: the kept value is emptied, the removed one stays on the search list."""
    path, planted = _mrxs(tmp_path, edit=_insert("[GENERAL]", "SLIDE_CONTENT = 12,25"))
    _, plan, _ = anonymize(path)
    assert "12,25" in plan.removed and leaks(path, planted + ["12,25"]) == []
    with open(os.path.join(path[:-5], "Slidedat.ini"), "rb") as fh:
        assert b"SCANNER_SOFTWARE_VERSION = \r\n" in fh.read()


def test_objective_power_survives_in_its_typed_shapes(tmp_path):
    path, _ = _mrxs(tmp_path, edit=_replace("OBJECTIVE_MAGNIFICATION = 20", "OBJECTIVE_MAGNIFICATION = 40x"))
    anonymize(path)
    assert properties(path)["openslide.objective-power"] == "40"


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16-le-bom", "utf-8"])
def test_hostile_text_in_every_encoding(tmp_path, encoding):
    text = f"Müller {MARK} ü"
    path, planted = _mrxs(tmp_path, encoding="utf-16" if encoding == "utf-16-le-bom" else "utf-8",
                          edit=_insert("[NONHIERLAYER_0_SECTION]", f"OPERATOR = {text}"))
    if encoding == "latin-1":
        slidedat = os.path.join(path[:-5], "Slidedat.ini")
        with open(slidedat, "rb") as fh:
            data = fh.read().decode("utf-8-sig")
        with open(slidedat, "wb") as fh:
            fh.write(data.encode("latin-1"))
    assert outcome(path) == "delivered"
    assert leaks(path, planted + [MARK, text]) == []


@pytest.mark.parametrize("names", [{"data_name": f"{ACCESSION} {PATIENT}.dat"}, {"index_name": f"{ACCESSION}-index.dat"},
                                   {"data_name": "Data0007.dat", "index_name": "idx.dat"}])
def test_files_named_after_the_case_take_canonical_names(tmp_path, names):
    path, planted = _mrxs(tmp_path, **names)
    _, _, region = openslide_view(path)
    _, plan, _ = anonymize(path)
    assert sorted(os.listdir(path[:-5])) == ["Data0000.dat", "Index.dat", "Slidedat.ini"]
    assert leaks(path, planted) == [] and openslide_view(path) == ("mirax", [], region)
    assert "MRXS files renamed to Index.dat and Data0000.dat ..." in plan.actions


def test_files_named_out_of_order_are_refused(tmp_path):
    path, _ = _mrxs(tmp_path, data_name="Index.dat", index_name="Data0000.dat")
    with pytest.raises(Unsupported, match="named out of order"):
        prepare(path, OPTIONS)


def test_renames_are_replayed_after_a_crash(tmp_path):
    path, planted = _mrxs(tmp_path, data_name=f"{ACCESSION}.dat")
    module, plan, _ = prepare(path, OPTIONS)
    folder = path[:-5]
    os.rename(os.path.join(folder, f"{ACCESSION}.dat"), os.path.join(folder, "Data0000.dat"))  # killed here
    plan = module.plan_from_json(plan.to_json())
    plan.apply(path)
    plan.apply(path)
    verify(path, module, plan, OPTIONS)
    assert leaks(path, planted) == []


def _append(file, data):
    with open(file, "ab") as fh:
        fh.write(data)


BYTE_VARIANTS = {  # changes to the binary files
    "index-slack-appended": lambda folder: _append(os.path.join(folder, "Index.dat"), MARK.encode("utf-16-le")),
    "data-header-padding": lambda folder: _overwrite(os.path.join(folder, "Data0000.dat"), 45, MARK.encode()),
    "data-file-number": lambda folder: _overwrite(os.path.join(folder, "Data0000.dat"), 37, b"ZQ9"),
    "data-file-tail": lambda folder: _append(os.path.join(folder, "Data0000.dat"), MARK.encode()),
    "unused-hierarchical-entry": lambda folder: _overwrite(os.path.join(folder, "Index.dat"), 49, MARK.encode()[:4]),
}


def _overwrite(file, at, data):
    with open(file, "r+b") as fh:
        fh.seek(at)
        fh.write(data)


@pytest.mark.parametrize("variant", sorted(BYTE_VARIANTS))
def test_hostile_bytes_in_index_and_data_files(tmp_path, variant):
    path, planted = _mrxs(tmp_path)
    BYTE_VARIANTS[variant](path[:-5])
    assert outcome(path) == "delivered"
    assert leaks(path, planted + [MARK, MARK[:4], "ZQ9"]) == []


@pytest.mark.parametrize("stray", ["notes.txt", "Data0001.dat", "sub/readme", "._Data0000.dat"])
def test_a_file_slidedat_does_not_list_refuses_the_slide(tmp_path, stray):
    path, _ = _mrxs(tmp_path)
    target = os.path.join(path[:-5], stray)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as fh:
        fh.write(PATIENT.encode())
    reason = outcome(path)
    assert "a file in the MRXS data folder that Slidedat.ini does not list" in reason and PATIENT not in reason


def test_clutter_in_the_data_folder_is_removed_and_reported(tmp_path):
    path, planted = _mrxs(tmp_path)
    folder = path[:-5]
    with open(os.path.join(folder, ".DS_Store"), "wb") as fh:
        fh.write(b"\0\0\0\1Bud1" + PATIENT.encode())
    with open(os.path.join(folder, "._Data0000.dat"), "wb") as fh:
        fh.write(b"\x00\x05\x16\x07" + ACCESSION.encode())
    os.makedirs(os.path.join(folder, "@eaDir"))
    with open(os.path.join(folder, "@eaDir", "Data0000.dat@SynoEAStream"), "wb") as fh:
        fh.write(ACCESSION.encode())
    _, plan, _ = anonymize(path)
    assert sorted(os.listdir(folder)) == ["Data0000.dat", "Index.dat", "Slidedat.ini"]
    assert leaks(path, planted) == [] and "macOS folder settings (.DS_Store) removed" in plan.actions


# --- the audit is independent of the scrubber ---------------------------------------------------------

def _anonymized(tmp_path):
    path, _ = _mrxs(tmp_path)
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    assert module.check(path, plan, OPTIONS) == []
    return path, module, plan


TAMPERING = {
    "unknown-key": (lambda folder: _append(os.path.join(folder, "Slidedat.ini"), b"NOTE = x\r\n"),
                    "Slidedat.ini [NONHIERLAYER_1_SECTION]: a key the allow-list does not explain"),
    "emptied-key-with-value": (lambda folder: _edit(folder, b"SLIDE_NAME = \r\n", b"SLIDE_NAME = x\r\n"),
                               "SLIDE_NAME: a value the allow-list does not explain"),
    "comment": (lambda folder: _edit(folder, b"[HIERARCHICAL]", b"# x\r\n[HIERARCHICAL]"), "not a section or a key"),
    "label-listed": (lambda folder: _edit(folder, b"removed-by-paw-1", b"ScanDataLayer_SlideBarcode"), "label image is still listed"),
    "index-slack": (lambda folder: _append(os.path.join(folder, "Index.dat"), b"x"), "Index.dat: bytes outside"),
    "data-bytes": (lambda folder: _append(os.path.join(folder, "Data0000.dat"), b"x"), "Data0000.dat: bytes outside"),
    "extra-file": (lambda folder: _append(os.path.join(folder, "notes.txt"), b"x"), "'notes.txt': a file in the MRXS"),
}


def _edit(folder, old, new):
    file = os.path.join(folder, "Slidedat.ini")
    with open(file, "rb") as fh:
        data = fh.read()
    with open(file, "wb") as fh:
        fh.write(data.replace(old, new, 1))


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_audit_refuses_tampered_output(tmp_path, tamper):
    change, reason = TAMPERING[tamper]
    path, module, plan = _anonymized(tmp_path)
    change(path[:-5])
    assert any(reason in p for p in module.check(path, plan, OPTIONS)), module.check(path, plan, OPTIONS)


def test_audit_catches_a_scrubber_that_keeps_unknown_keys(tmp_path, monkeypatch):
    """Break the scrubber on purpose (unknown keys copied): the audit, reading only the table
    and the written file, refuses."""
    path, _ = _mrxs(tmp_path, edit=_insert("[NONHIERLAYER_0_SECTION]", f"LIS_CASE = {MARK}"))
    table = mrxs_format.table
    patched = dict(table.ROLE_KEYS[table.NONHIER_LAYER], LIS_CASE=table.OneOf(MARK))
    monkeypatch.setitem(mrxs_format.table.ROLE_KEYS, table.NONHIER_LAYER, patched)
    module, plan, _ = prepare(path, OPTIONS)
    monkeypatch.undo()  # the audit reads the real table
    plan.apply(path)
    assert "Slidedat.ini [NONHIERLAYER_0_SECTION]: a key the allow-list does not explain" in \
        module.check(path, plan, OPTIONS)


# --- records and tiles: every byte belongs to one image; tile images hold only pixels ----------------

MACRO, LABEL, PREVIEW, XML_INFO, POSITIONS = range(5)   # synth.mrxs records, in order


def _point(tile, record):
    """Index.dat's tile entry `tile` pointing at the bytes of `record` (a label kept as a tile)."""
    def change(tiles, records):
        tiles[tile][1:3] = records[record][:2]
    return change


@pytest.mark.parametrize("tile, record, what", [
    (0, LABEL, "the label image"),
    (3, MACRO, "the macro image"),
    (1, PREVIEW, "the thumbnail image"),
    (2, XML_INFO, "a non-tile record"),
])
def test_a_tile_sharing_bytes_with_a_destroyed_image_is_refused(tmp_path, tile, record, what):
    """OpenSlide would show the label photo as a tile of the zoom level while the report said
    'label image destroyed' (red team M31): the slide is refused instead."""
    path, _ = _mrxs(tmp_path, entries=_point(tile, record))
    result = outcome(path)
    assert what in result and "a tile" in result and "share bytes of data file 0" in result


def test_two_tiles_sharing_bytes_are_refused(tmp_path):
    def change(tiles, records):
        tiles[1][1:3] = tiles[0][1:3]
    path, _ = _mrxs(tmp_path, entries=change)
    assert "a tile and a tile share bytes" in outcome(path)


def test_audit_finds_a_label_kept_as_a_tile(tmp_path, monkeypatch):
    """Break the scrubber's refusal: the audit, reading Index.dat itself, finds the destroyed
    label's bytes still there (a tile keeps them)."""
    path, _ = _mrxs(tmp_path, entries=_point(0, LABEL))
    monkeypatch.setattr(mrxs_format, "_refuse_shared_bytes", lambda *args: None)
    assert "Data0000.dat: the bytes of a destroyed image are not cleared" in outcome(path)


def _jpeg_segment(marker, payload):
    def edit(i, data):
        return data[:2] + bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    return edit


def _before_eoi(marker, payload):
    def edit(i, data):
        return data[:-2] + bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload + data[-2:]
    return edit


def _only(n, edit):
    return lambda i, data: edit(i, data) if i == n else data


@pytest.mark.parametrize("tile_format, edit, reason", [
    ("JPEG", _only(0, _jpeg_segment(0xFE, MARK.encode())), "zoom level 0 tile 0: COM segment"),
    ("JPEG", _only(3, _jpeg_segment(0xE1, b"Exif\0\0" + MARK.encode("utf-16-le"))), "zoom level 0 tile 3: APP1 segment"),
    ("JPEG", _only(2, _before_eoi(0xEF, MARK.encode())), "zoom level 0 tile 2: APP15 segment"),
    ("JPEG", _only(1, lambda i, data: data + MARK.encode()), "zoom level 0 tile 1: JPEG stream holds data after EOI"),
    ("PNG", _only(0, lambda i, data: data[:33] + len(MARK).to_bytes(4, "big") + b"tEXt" + MARK.encode() + bytes(4) + data[33:]),
     "zoom level 0 tile 0: 'tEXt' chunk"),
    ("PNG", _only(2, lambda i, data: data + MARK.encode()), "zoom level 0 tile 2: bytes after IEND"),
])
def test_text_in_tile_images_is_refused(tmp_path, tile_format, edit, reason):
    path, _ = _mrxs(tmp_path, tile_format=tile_format, tile_edit=edit)
    result = outcome(path, SimpleNamespace(keep_macro=False, full_scan=False))
    assert reason in result and MARK not in result


def test_png_tiles_are_delivered(tmp_path):
    path, planted = _mrxs(tmp_path, tile_format="PNG")
    region = openslide_view(path)[2]
    assert outcome(path) == "delivered"
    assert openslide_view(path) == ("mirax", [], region) and leaks(path, planted) == []


def test_audit_walks_tile_images_itself(tmp_path, monkeypatch):
    path, _ = _mrxs(tmp_path, tile_edit=_only(0, _jpeg_segment(0xFE, MARK.encode())))
    monkeypatch.setattr(mrxs_format, "_check_tiles", lambda *args, **kwargs: None)
    assert "tile images: zoom level 0 tile 0: COM segment" in outcome(path)


def test_an_oversized_slidedat_is_refused_by_its_size(tmp_path):
    path, _ = _mrxs(tmp_path, edit=_insert("[GENERAL]", "NOTE = " + "x" * (1 << 21)))
    assert outcome(path) == "cannot parse: Slidedat.ini is larger than a slide description can be (1 MiB)"


@pytest.mark.parametrize("name", ["JPEG", "Default", "Slide zoom level", "jpeg", "default"])
def test_a_slide_named_like_the_vocabulary_keeps_its_typed_values(tmp_path, name):
    """SLIDE_NAME goes; a name that is a word the table itself writes (IMAGE_FORMAT's `JPEG`) is
    not searched for, so the typed value OpenSlide needs stays (red team ME03: refused with a
    reason about IMAGE_FORMAT)."""
    path, planted = _mrxs(tmp_path, edit=_replace(f"SLIDE_NAME = {ACCESSION} {PATIENT}", f"SLIDE_NAME = {name}"))
    assert outcome(path) == "delivered"
    assert leaks(path, [p for p in planted if p != ACCESSION]) == []


def test_a_second_section_written_in_lower_case_goes_with_its_values(tmp_path):
    """A second `[general]` section (red team M24): its name and values are removed; the name is
    the table's own word in another case, so it is not searched for (the search ignores case and
    would find paw's own `[GENERAL]`), its values are."""
    path, planted = _mrxs(tmp_path, edit=lambda lines: lines + ["[general]", f"SLIDE_NAME = {MARK}"])
    assert outcome(path) == "delivered"
    assert leaks(path, planted + [MARK]) == []
