"""Olympus VSI: the real cellSens slide and slide-scanner variants (label and overview stacks)
through the job, read back with slideio (and bioio-vsi or Bio-Formats where installed), and
hostile variants that must be delivered clean or quarantined."""

import glob
import hashlib
import os
import shutil
import struct
import subprocess

import pytest

from checks import leaked
from conftest import shared_fixture
from synth import vsi as synth

slideio = pytest.importorskip("slideio", reason="slideio (requirements-dev.txt) not installed")

IDENTIFYING = ["ferranda", "ehrenfeu", "Image_01", "0843ed78-60b1-41da-8ff5-8d090e29f256",
               "001 C405, C488", "First Frame Marker", "D:\\Data"]
SECRET = "Smith, John 1970-01-01"


def source():
    return shared_fixture(*synth.SOURCE)


def view(path):
    """slideio's view: scenes (name, size, channels, z, magnification, resolution) and the SHA-1
    of every channel's z-stack."""
    slide = slideio.open_slide(path, "VSI")
    found = []
    for i in range(slide.num_scenes):
        scene = slide.get_scene(i)
        found.append((scene.rect, scene.num_channels, scene.num_z_slices, scene.magnification,
                      scene.resolution, [scene.get_channel_name(c) for c in range(scene.num_channels)],
                      [hashlib.sha1(scene.read_block(channel_indices=[c], slices=(0, scene.num_z_slices))
                                    .tobytes()).hexdigest() for c in range(scene.num_channels)]))
    return found


def slide_files(folder):
    return sorted(os.path.relpath(p, folder) for p in glob.glob(os.path.join(folder, "**"), recursive=True)
                  if os.path.isfile(p))


def all_leaks(folder, values):
    return [name for name in slide_files(folder) if leaked(os.path.join(folder, name), values)]


def test_real_vsi_and_its_folder_reach_the_outbox_together(lab):
    synth.copy_slide(source(), lab.inbox, "S24-4711 A1 HE")
    before = view(os.path.join(lab.inbox, "S24-4711 A1 HE.vsi"))
    assert lab.run() == 0, lab.rows()
    names = lab.outbox_files()
    assert len(names) == 2 and names[0].startswith("PAW-") and names[0].endswith(".vsi")
    assert names[1] == f"_{names[0][:-4]}_"
    assert slide_files(os.path.join(lab.outbox, names[1])) == ["stack1/frame_t_0.ets"]
    output = os.path.join(lab.outbox, names[0])
    assert view(output) == before                       # pixels, channel names, optics
    assert all_leaks(lab.outbox, IDENTIFYING + ["S24-4711"]) == []
    data = open(output, "rb").read()
    assert struct.pack("<q", 1622473135) not in data and struct.pack("<i", 19988482) not in data  # date, serial
    row = lab.rows()[0]
    assert row["format"] == "vsi" and row["status"] == "anonymized" and os.listdir(lab.inbox) == []


def test_bioio_vsi_reads_the_same_image(tmp_path):
    reader = pytest.importorskip("bioio_vsi").Reader
    path = synth.copy_slide(source(), str(tmp_path), "slide")
    before = reader(path).get_image_data("CZYX", T=0)
    _anonymize(path)
    after = reader(path)
    assert (after.get_image_data("CZYX", T=0) == before).all()
    assert after.channel_names == ["C405", "C488"] and after.physical_pixel_sizes.X == pytest.approx(0.108333, 1e-4)


def _anonymize(path, full_scan=False):
    from paw import formats
    from paw.verify import verify
    options = type("Options", (), {"keep_macro": False, "full_scan": full_scan})()
    handler = formats.identify(path)
    prepared = handler.plan(path, options)
    prepared.plan.apply(path)
    problems = handler.check(path, prepared.plan, options)
    assert problems == []
    verify(path, handler, prepared.plan, options)
    return prepared


def test_scanner_slide_loses_label_and_overview(lab, tmp_path):
    """A label stack (default type, smaller than the image) and an overview (type 1) are
    destroyed: only the slide's image stack keeps tiles."""
    path = synth.scanner_slide(source(), str(tmp_path), "scan")
    folder = str(tmp_path)
    assert _decoded_text(os.path.join(folder, "_scan_", "stack2", "frame_t_0.ets"))
    kept_tiles = _tiles(os.path.join(folder, "_scan_", "stack1", "frame_t_0.ets"))
    prepared = _anonymize(path)
    assert prepared.found["other image"] == 1 and prepared.found["overview"] == 1
    assert all_leaks(folder, [synth.PLANTED_LABEL] + IDENTIFYING) == []
    assert _tiles(os.path.join(folder, "_scan_", "stack1", "frame_t_0.ets")) == kept_tiles
    for number in (2, 3):
        assert set(b"".join(_tiles(os.path.join(folder, "_scan_", f"stack{number}", "frame_t_0.ets")))) == {0}


def _decoded_text(ets):
    """Whether the first tile of an ETS file decodes to an image with dark strokes on white
    (the drawn label), read with imagecodecs (OpenJPEG) — a person's view of the tile."""
    import imagecodecs
    import numpy as np
    tiles = _tiles(ets)
    try:
        image = imagecodecs.jpeg2k_decode(tiles[0])
    except Exception:
        return False
    return bool(np.asarray(image).max() > 0 and (np.asarray(image) < np.asarray(image).max() // 2).mean() > 0.001)


def _tiles(ets):
    with open(ets, "rb") as fh:
        head = fh.read(64)
        dims = struct.unpack_from("<i", head, 12)[0]
        table, count = struct.unpack_from("<q", head, 32)[0], struct.unpack_from("<i", head, 40)[0]
        found = []
        for i in range(count):
            fh.seek(table + i * 4 * (dims + 5) + 4 + 4 * dims)
            offset, length = struct.unpack("<qi", fh.read(12))
            fh.seek(offset)
            found.append(fh.read(length))
    return found


BIOFORMATS = os.environ.get("PAW_BIOFORMATS_JAR", "/opt/bioformats/bioformats_package.jar")


@pytest.mark.skipif(not (shutil.which("java") and os.path.exists(BIOFORMATS)),
                    reason="Bio-Formats (java + bioformats_package.jar, see .ci/run) not installed")
def test_bioformats_lists_overview_before_and_not_after(tmp_path):
    """Bio-Formats is the reader that shows cellSens overview stacks and the .vsi's TIFF page
    ("macro image") as series; after paw only the 1x1 placeholder page and unnamed stacks remain."""
    path = synth.scanner_slide(source(), str(tmp_path), "scan")

    def info():
        result = subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageInfo", "-nopix",
                                 "-omexml", "-no-upgrade", path], capture_output=True, text=True, timeout=300)
        return result.stdout
    before = info()
    assert 'Name="overview"' in before and "Label" in before and "ferranda" in before
    _anonymize(path)
    after = info()
    assert "Series count" in after and 'Name="overview"' not in after and "Label" not in after
    assert "ferranda" not in after and "Image_01" not in after and "19988482" not in after
    assert "Width = 1645" in after


@pytest.mark.skipif(not (shutil.which("java") and os.path.exists(BIOFORMATS)),
                    reason="Bio-Formats (java + bioformats_package.jar, see .ci/run) not installed")
def test_bioformats_decodes_no_destroyed_stack(tmp_path):
    """Bio-Formats lists the scanner slide's overview stack as series 1 and decodes its pixels
    (a drawn label) before; after paw the series is still listed (its ETS file is kept) but
    nothing decodes from its zeroed tiles."""
    import numpy as np
    import tifffile
    path = synth.scanner_slide(source(), str(tmp_path), "scan")

    def series_one():
        out = str(tmp_path / "series1.ome.tif")
        if os.path.exists(out):
            os.remove(out)
        subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageConverter", "-no-upgrade",
                        "-overwrite", "-series", "1", path, out], capture_output=True, timeout=300)
        try:
            return tifffile.imread(out)
        except Exception:   # nothing written: Bio-Formats could not decode the series
            return None
    before = series_one()
    assert before is not None and before.shape[-2:] == (400, 1200) and np.ptp(before) > 0
    _anonymize(path)
    after = series_one()
    assert after is None or np.ptp(after) == 0


def _variant(tmp_path, change, name="hostile"):
    path = synth.copy_slide(source(), str(tmp_path), name)
    data = bytearray(open(path, "rb").read())
    change(data, path)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _set(tag, text, occurrence=0, encoding="utf-16-le"):
    return lambda data, path: synth.set_string(data, tag, text, occurrence, encoding)


def _date_in_an_unknown_number(data, path):
    hit = next(f for f in synth.fields(data) if f[2] == 100100)   # an exposure time, int64
    struct.pack_into("<q", data, hit[3], 1622473135)


def _after_the_tree(data, path):
    data.extend(SECRET.encode() + SECRET.encode("utf-16-le"))


def _in_an_ets_gap(data, path):
    with open(os.path.join(os.path.dirname(path), "_hostile_", "stack1", "frame_t_0.ets"), "ab") as fh:
        fh.write(SECRET.encode("utf-16-le"))


def _text_in_a_number_table(data, path):
    hit = next(f for f in synth.fields(data) if f[2] == 268435458 and f[1] & 0xFFFFFF == 270)  # a colour table
    data[hit[3]:hit[3] + 44] = SECRET.encode("utf-16-le")


HOSTILE = {
    "text in a table of numbers (a display colour table)": _text_in_a_number_table,
    "author (UTF-16, start of the value)": _set(15, SECRET + " Image"),
    "path (end of the value)": _set(12, "D:\\" + SECRET),
    "channel name that is not a name (4 characters: the field's length)": _set(2419, "J,S1"),
    "device name with a possessive": _set(120116, "Dr Smith's IX83"),
    "product name": _set(34, SECRET),
    "unit": _set(268435456, SECRET[:8]),
    "string of a tag paw does not know": _set(21009, "Smith1"),
    "Latin-1 bytes in a UTF-16 field": _set(15, "Müller, Jürgen", encoding="latin-1"),
    "a date in a number paw does not know": _date_in_an_unknown_number,
    "text after the tag tree": _after_the_tree,
    "text in a gap of the ETS file": _in_an_ets_gap,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_vsi_is_delivered_clean(lab, tmp_path, case):
    path = _variant(tmp_path, HOSTILE[case])
    shutil.move(path, os.path.join(lab.inbox, "hostile.vsi"))
    shutil.move(os.path.join(str(tmp_path), "_hostile_"), os.path.join(lab.inbox, "_hostile_"))
    assert lab.run() == 0, lab.rows()[0]["error"]
    assert all_leaks(lab.outbox, [SECRET, "Smith1", "Smith's", "Jürgen", "ferranda", "J,S1", "Smith, J"]) == []
    assert all("Müller".encode("latin-1") not in open(os.path.join(lab.outbox, f), "rb").read()
               for f in slide_files(lab.outbox))
    [output] = [n for n in lab.outbox_files() if n.endswith(".vsi")]
    assert struct.pack("<q", 1622473135) not in open(os.path.join(lab.outbox, output), "rb").read()
    slide = slideio.open_slide(os.path.join(lab.outbox, output), "VSI")
    assert slide.num_scenes == 1 and slide.get_scene(0).rect == (0, 0, 1645, 1682)


def _extra_file(data, path):
    open(os.path.join(os.path.dirname(path), "_hostile_", "stack1", "notes.txt"), "w").write(SECRET)


def _extra_stack(data, path):
    os.makedirs(os.path.join(os.path.dirname(path), "_hostile_", "stack9"))


def _comment_in_a_tile(data, path):
    ets = os.path.join(os.path.dirname(path), "_hostile_", "stack1", "frame_t_0.ets")
    with open(ets, "r+b") as fh:
        head = fh.read(64)
        dims = struct.unpack_from("<i", head, 12)[0]
        fh.seek(struct.unpack_from("<q", head, 32)[0] + 4 + 4 * dims)
        offset, length = struct.unpack("<qi", fh.read(12))
        fh.seek(offset)
        tile = fh.read(length)
        text = SECRET.encode()   # after SOC, a COM segment (Registration 1: Latin-1 text)
        fh.seek(offset)
        fh.write((tile[:2] + b"\xff\x64" + struct.pack(">HH", 4 + len(text), 1) + text + tile[2:])[:length])


def _loop(data, path):
    first = synth.fields(data)[0]
    struct.pack_into("<I", data, first[0] + 8, first[0] - first[7])   # next field: itself


def _unknown_value_type(data, path):
    hit = next(f for f in synth.fields(data) if f[2] == 15)
    struct.pack_into("<I", data, hit[0], (hit[1] & ~0xFFFFFF) | 9999)


def _text_as_a_tag(data, path):
    company = next(f for f in synth.fields(data) if f[2] == 16)
    data[company[0] + 4:company[0] + 8] = b"RTVT"   # a field's tag number spelling text


REFUSED = {
    "a tag number that spells text": (_text_as_a_tag, "tag number that reads as text"),
    "a file the .vsi does not explain": (_extra_file, "something other than frame_t"),
    "a stack folder of no stack": (_extra_stack, "not the stack of an image"),
    "a JPEG 2000 comment in a tile": (_comment_in_a_tile, "COM segment"),
    "a field chain that loops": (_loop, "loops"),
    "a value type paw does not know": (_unknown_value_type, "value type paw does not know"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_vsi_not_understood_is_quarantined_with_one_line(lab, tmp_path, case):
    change, reason = REFUSED[case]
    path = _variant(tmp_path, change)
    shutil.move(path, os.path.join(lab.inbox, "odd.vsi"))
    shutil.move(os.path.join(str(tmp_path), "_hostile_"), os.path.join(lab.inbox, "_odd_"))
    assert lab.run() == 3
    assert lab.quarantined() == ["_odd_", "odd.vsi"]   # together, under their own names
    text = open(os.path.join(lab.quarantine, "odd.vsi.reason.txt")).read()
    assert reason in text and "\n" not in text.strip() and SECRET not in text


def test_vsi_without_its_folder_is_quarantined(lab):
    shutil.copyfile(source(), os.path.join(lab.inbox, "alone.vsi"))
    assert lab.run() == 3
    assert "without its _X_ folder" in open(os.path.join(lab.quarantine, "alone.vsi.reason.txt")).read()


def test_manual_anonymize_copies_both_members(lab, tmp_path):
    path = synth.copy_slide(source(), str(tmp_path), "by-hand")
    out = tmp_path / "out"
    out.mkdir()
    assert lab.run("anonymize", path, "--output", str(out)) == 0
    pseudonym = lab.rows()[0]["pseudonym"]
    assert sorted(os.listdir(out)) == sorted([f"_{pseudonym}_", f"{pseudonym}.vsi"])
    assert all_leaks(str(out), IDENTIFYING) == []


def test_bundle_pairs_a_vsi_with_its_folder(tmp_path):
    from paw import bundle, fsops
    (tmp_path / "_a b_").mkdir()
    (tmp_path / "a b.vsi").write_bytes(b"")
    (tmp_path / "c.vsi").write_bytes(b"")
    found, walk = bundle.in_folder(str(tmp_path), ["a b.vsi", "c.vsi"], ["_a b_"])
    assert [(b.kind, b.members) for b in found] == [("vsi", ("a b.vsi", "_a b_")), ("file", ("c.vsi",))]
    assert walk == []
    assert bundle.at(str(tmp_path / "a b.vsi")).kind == "vsi"
    assert bundle.member_names("vsi", "P", ".VSI") == ["P.vsi", "_P_"]
    (tmp_path / "P.vsi").write_bytes(b"")
    assert fsops.free_names(str(tmp_path), ["P.vsi", "_P_"]) == ["P-2.vsi", "_P-2_"]


def test_vsi_plan_round_trips_through_the_journal(tmp_path):
    import json

    from paw import formats
    path = synth.copy_slide(source(), str(tmp_path), "slide")
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    plan = formats.identify(path).plan(path, options).plan
    data = json.loads(json.dumps(plan.to_json()))
    assert json.loads(json.dumps(formats.plan_from_json("vsi", data).to_json())) == data


def test_audit_refuses_a_kept_string_the_table_does_not_accept(tmp_path, monkeypatch):
    """The audit is written against the table, not the scrubber: a scrubber whose channel-name
    kind accepted anything keeps a name with a date in it; the audit names the field only."""
    from paw import formats
    from paw.formats import allow, vsi
    path = _variant(tmp_path, _set(2419, "J,S1"))
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    monkeypatch.setattr(vsi, "STRINGS_KEEP", {**vsi.STRINGS_KEEP, 2419: allow.Pattern(".*")})
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    monkeypatch.undo()
    plan.apply(path)
    problems = handler.check(path, plan, options)
    assert any(p.endswith("/2419: text the allow-list does not explain") for p in problems), problems
    assert not any("J,S1" in p for p in problems)


def test_mutated_vsi_is_refused_or_clean(tmp_path):
    """Random overwrites and truncations of the .vsi and its ETS file: each ends refused with a
    one-line reason, or verified with no planted UTF-16 text left outside kept tiles."""
    import random

    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    planted = "PLANTED-SECRET-1"
    original_path = synth.copy_slide(source(), str(tmp_path), "m")
    original = open(original_path, "rb").read()
    ets_path = os.path.join(str(tmp_path), "_m_", "stack1", "frame_t_0.ets")
    ets_original = open(ets_path, "rb").read()
    rng = random.Random(19)
    outcomes = {"refused": 0, "clean": 0}
    for trial in range(60):
        data, ets = bytearray(original), bytearray(ets_original)
        target = data if rng.random() < 0.8 else ets
        for _ in range(rng.randint(1, 3)):
            at, kind = rng.randrange(len(target)), rng.random()
            if kind < 0.5:
                target[at:at + 4] = rng.randbytes(4)
            elif kind < 0.6:
                del target[at:]
            else:
                target[at:at + 32] = planted.encode("utf-16-le")
        open(original_path, "wb").write(data)
        open(ets_path, "wb").write(ets)
        try:
            handler = formats.identify(original_path)
            plan = handler.plan(original_path, options).plan
            plan.apply(original_path)
            verify(original_path, handler, plan, options)
        except SlideRefused as exc:
            assert "\n" not in str(exc) and planted not in str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["clean"] += 1
        for rel, sub in plan.files.items():
            result = bytearray(open(os.path.join(str(tmp_path), rel), "rb").read())
            for offset, length in sub.kept_data:
                result[offset:offset + length] = bytes(length)
            text = result.decode("utf-16-le", "replace") + result[1:].decode("utf-16-le", "replace")
            # A device or channel name field may keep text that fits its pattern (README, Limits).
            if planted in text:
                fields = formats.vsi.read_tree(bytes(result))[0] if rel.endswith(".vsi") else []
                at = bytes(result).find(planted.encode("utf-16-le"))
                holder = [f.tag for f in formats.vsi.walk(fields)
                          if not f.inline and f.value <= at < f.value + f.size]
                assert holder and holder[-1] in formats.vsi.STRINGS_KEEP, (trial, rel, holder)
    assert outcomes["refused"] and outcomes["clean"], outcomes


# --- red team 19 (findings F1-F3, F6, F7, F9): each reproducer, rebuilt here with synth -----------

def _outcome(path, full_scan=False):
    """Plan, apply and verify in-process: ("refused", reason) or ("delivered", prepared)."""
    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    options = type("Options", (), {"keep_macro": False, "full_scan": full_scan})()
    try:
        handler = formats.identify(path)
        prepared = handler.plan(path, options)
        prepared.plan.apply(path)
        verify(path, handler, prepared.plan, options)
    except SlideRefused as exc:
        return "refused", str(exc)
    return "delivered", prepared


def _with_stack(tmp_path, **stack):
    """The real slide plus one scanner stack (synth.add_stack) as stack 2."""
    path = synth.copy_slide(source(), str(tmp_path), "scan")
    data = bytearray(open(path, "rb").read())
    synth.add_stack(data, os.path.join(str(tmp_path), "_scan_"), 2, **stack)
    open(path, "wb").write(data)
    return path


# F1: a label stack is destroyed whatever it is called; only the slide's image keeps tiles.
LABEL_STACKS = {
    "named Slide Label": dict(name="Slide Label"),
    "named Etikett, as Latin-1 bytes": dict(name="Etikett", name_encoding="latin-1"),
    "named Barcode": dict(name="Barcode"),
    "named Label in UTF-16BE": dict(name="Label", name_encoding="utf-16-be"),
    "named like an image": dict(name="2x BF"),
    "without a name": dict(name=""),
    "an overview as large as the image": dict(name="20x_BF_01", stack_type=1, size=(1645, 1682)),
    **{f"a macro as large as the image, its type as {encoding}": dict(
        name="20x_BF_01", stack_type=1 if encoding == "uint8" else 256, type_encoding=encoding,
        size=(1645, 1682)) for encoding in synth.STACK_TYPE_ENCODINGS},
}


@pytest.mark.parametrize("case", sorted(LABEL_STACKS))
def test_a_stack_that_is_not_the_slides_image_is_destroyed(tmp_path, case):
    path = _with_stack(tmp_path, **LABEL_STACKS[case])
    label = os.path.join(str(tmp_path), "_scan_", "stack2", "frame_t_0.ets")
    image = os.path.join(str(tmp_path), "_scan_", "stack1", "frame_t_0.ets")
    assert _decoded_text(label)
    before = _tiles(image)
    outcome, prepared = _outcome(path)
    assert outcome == "delivered", prepared
    assert not _decoded_text(label) and set(b"".join(_tiles(label))) == {0}
    assert _tiles(image) == before
    slide = slideio.open_slide(path, "VSI")   # a viewer shows no label: the stack does not decode
    for i in range(slide.num_scenes):
        scene = slide.get_scene(i)
        if scene.rect != (0, 0, 1645, 1682):
            try:
                block = scene.read_block()
            except RuntimeError:
                continue
            assert block.min() == block.max()


REFUSED_STACKS = {
    "as large as the image, default type": (dict(name="Label", size=(1645, 1682)), "same size"),
    "two property volumes": (dict(name="20x_BF_01", second_properties="Label"), "two property volumes"),
    "a stack type that is not an integer": (dict(name="x", stack_type=1.5, type_encoding="double"),
                                            "not one integer"),
    "a smaller stack of a finer pixel size": (dict(name="x", pixel_size=0.01), "finer pixel size"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_STACKS))
def test_a_slide_whose_image_paw_cannot_tell_is_refused(tmp_path, case):
    stack, reason = REFUSED_STACKS[case]
    outcome, text = _outcome(_with_stack(tmp_path, **stack))
    assert outcome == "refused" and reason in text


def test_audit_refuses_a_kept_stack_the_rule_would_not_keep(tmp_path, monkeypatch):
    """The audit picks the slide's image again by its own reading: a scrubber that kept the
    label stack's tiles (here, by a rule that picks the smallest stack) is caught."""
    from paw import formats
    from paw.formats import vsi
    path = _with_stack(tmp_path, name="Label")
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    monkeypatch.setattr(vsi, "choose_image", lambda types, areas, sizes: min(areas, key=lambda n: areas[n] or 1e18))
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    monkeypatch.undo()
    plan.apply(path)
    assert any("kept tiles are not the slide's image stack's" in p for p in handler.check(path, plan, options))


# F2: device, filter and objective names are not a place for text; manufacturers come from a list.
NAMES = {
    "a person as device name": _set(120116, "Jane Doe IX83"),
    "a person as device model": _set(120132, "Jane Doe"),
    "the removed author, other case, as manufacturer": _set(120133, "Ferranda"),
    "a name in an objective description": _set(120065, "Jane Doe 60x / 1.42"),
    "a name as channel name": _set(2419, "Jo S"),
    "a name as filter name": _set(120063, "Jane Doe", occurrence=1),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_free_text_names_in_the_tag_tree_are_emptied(tmp_path, case):
    path = _variant(tmp_path, NAMES[case])
    outcome, prepared = _outcome(path)
    assert outcome == "delivered", prepared
    assert all_leaks(str(tmp_path), ["Jane Doe", "Jo S", "Ferranda"]) == []


# F6/F7: numbers no reader needs are zeroed, whatever they look like; so are inline slots and
# spare words.
def _numbers_that_read_as_dates(data, path):
    hits = synth.fields(data)
    inline = next(f for f in hits if f[2] == 120210)          # a device code (inline int32)
    struct.pack_into("<i", data, inline[0] + 12, 20240506)
    long = next(f for f in hits if f[2] == 100100)            # an int64 of a device
    struct.pack_into("<q", data, long[3], 638505761290000000)
    double = next(f for f in hits if f[2] == 121110)          # a double of a device
    struct.pack_into("<d", data, double[3], 45418.2973)
    code = next(f for f in hits if f[2] == 10063)             # a display id (inline)
    struct.pack_into("<i", data, code[0] + 12, 987654321)


def _inline_text_in_a_string_field(data, path):
    company = next(f for f in synth.fields(data) if f[2] == 16)   # an empty string field
    struct.pack_into("<I", data, company[0], company[1] | synth.INLINE)
    data[company[0] + 12:company[0] + 16] = b"RTV!"             # its data size word


def _text_in_volume_reserved_words(data, path):
    for f in synth.fields(data):
        if f[1] & synth.EXTENDED and f[1] & synth.VALUE in (0, 1, 2):
            data[f[3] + 20:f[3] + 24] = b"RTV8"


def _text_in_ets_spare_words(data, path):
    ets = os.path.join(os.path.dirname(path), "_hostile_", "stack1", "frame_t_0.ets")
    with open(ets, "r+b") as fh:
        head = fh.read(64)
        dims, table, count = struct.unpack_from("<i", head, 12)[0], *struct.unpack_from("<qi", head, 32)
        for i in range(count):
            fh.seek(table + i * 4 * (dims + 5))
            fh.write(b"RTV6")
            fh.seek(table + (i + 1) * 4 * (dims + 5) - 4)
            fh.write(b"RTV7")
        fh.seek(64 + 40)                  # the ETS header's pixel-info hints
        fh.write(b"RTV9")


COVERT = {
    "dates and ids in numbers of unknown meaning": (_numbers_that_read_as_dates, [
        struct.pack("<i", 20240506), struct.pack("<q", 638505761290000000), struct.pack("<d", 45418.2973),
        struct.pack("<i", 987654321)]),
    "text in the inline slot of a string field": (_inline_text_in_a_string_field, [b"RTV!"]),
    "text in the reserved word of every volume": (_text_in_volume_reserved_words, [b"RTV8"]),
    "text in the spare words of every tile record and the ETS header": (_text_in_ets_spare_words,
                                                                      [b"RTV6", b"RTV7", b"RTV9"]),
}


@pytest.mark.parametrize("case", sorted(COVERT))
def test_numbers_and_spare_words_no_reader_needs_are_zeroed(tmp_path, case):
    change, planted = COVERT[case]
    path = _variant(tmp_path, change)
    files = [os.path.join(str(tmp_path), f) for f in slide_files(str(tmp_path))]
    assert any(p in open(f, "rb").read() for f in files for p in planted)
    before = view(path)
    outcome, prepared = _outcome(path)
    assert outcome == "delivered", prepared
    assert not [p for f in files for p in planted if p in open(f, "rb").read()]
    assert view(path) == before


# F3: the image's tiles are read whole for a sample (every one with full_scan).
def _image_ets(path):
    return os.path.join(os.path.dirname(path), f"_{os.path.basename(path)[:-4]}_", "stack1", "frame_t_0.ets")


def _tile_edit(index, change):
    """Rewrite tile `index` of the image stack as change(tile), appended at the end of the ETS
    file with its table record pointing there (the table moves after it)."""
    def edit(data, path):
        ets = bytearray(open(_image_ets(path), "rb").read())
        dims, table, count = struct.unpack_from("<i", ets, 12)[0], *struct.unpack_from("<qi", ets, 32)
        record = 4 * (dims + 5)
        rows = bytearray(ets[table:table + record * count])
        offset, length = struct.unpack_from("<qi", rows, index * record + 4 + 4 * dims)
        new = change(bytes(ets[offset:offset + length]))
        at = len(ets)
        ets += new
        struct.pack_into("<qi", rows, index * record + 4 + 4 * dims, at, len(new))
        struct.pack_into("<q", ets, 32, len(ets))
        ets += rows
        open(_image_ets(path), "wb").write(ets)
    return edit


def _with_comment(tile, text=b"Jane Doe"):
    return tile[:2] + b"\xff\x64" + struct.pack(">HH", 4 + len(text), 1) + text + tile[2:]


def _append_record(coordinates):
    def edit(data, path):
        ets = bytearray(open(_image_ets(path), "rb").read())
        dims, table, count = struct.unpack_from("<i", ets, 12)[0], *struct.unpack_from("<qi", ets, 32)
        record = 4 * (dims + 5)
        rows = bytearray(ets[table:table + record * count])
        first_offset, first_length = struct.unpack_from("<qi", rows, 4 + 4 * dims)
        tile = bytes(ets[first_offset:first_offset + first_length])   # a valid codestream
        at = len(ets)
        ets += tile
        rows += struct.pack(f"<i{dims}iqii", 0, *coordinates, at, len(tile), 0)
        struct.pack_into("<qi", ets, 32, len(ets), count + 1)
        ets += rows
        open(_image_ets(path), "wb").write(ets)
    return edit


TILE_CASES = {
    "text after EOC in a sampled tile": (_tile_edit(0, lambda t: t + b"Jane Doe after EOC"), "data after EOC"),
    "a COM in a sampled tile": (_tile_edit(2, _with_comment), "COM segment"),
    "a tile record outside its level's grid": (_append_record((999, 0, 0, 0, 0, 0)), "outside its level's grid"),
    "two tiles at one coordinate": (_append_record((0, 0, 0, 3, 1, 0)), "same coordinates"),
    "a tile at a level without a pyramid": (_append_record((0, 0, 0, 0, 0, 1)), "outside the image"),
}


@pytest.mark.parametrize("case", sorted(TILE_CASES))
def test_text_or_stray_tiles_in_the_image_stack_are_refused(tmp_path, case):
    change, reason = TILE_CASES[case]
    outcome, text = _outcome(_variant(tmp_path, change))
    assert outcome == "refused" and reason in text and "Jane Doe" not in text


def test_a_comment_in_an_unsampled_tile_needs_full_scan(tmp_path):
    """22 tiles: tile 1 is not among the 10 sampled; verify.full_scan reads every tile."""
    assert _outcome(_variant(tmp_path, _tile_edit(1, _with_comment)))[0] == "delivered"
    outcome, text = _outcome(_variant(tmp_path, _tile_edit(1, _with_comment), name="again"), full_scan=True)
    assert outcome == "refused" and "tile 1: COM segment" in text


# F9: the banner OpenJPEG writes into every codestream is not text a person typed.
def test_tiles_with_the_openjpeg_banner_are_delivered(tmp_path):
    import imagecodecs

    def reencode(tile):
        return imagecodecs.jpeg2k_encode(imagecodecs.jpeg2k_decode(tile), codecformat="J2K", reversible=True)
    path = _variant(tmp_path, _tile_edit(0, reencode))
    assert b"Created by OpenJPEG version" in open(_image_ets(path), "rb").read()
    before = view(path)
    outcome, prepared = _outcome(path)
    assert outcome == "delivered", prepared
    assert view(path) == before


def _text_in_ets_header_hints(data, path):
    with open(os.path.join(os.path.dirname(path), "_hostile_", "stack1", "frame_t_0.ets"), "r+b") as fh:
        fh.seek(64 + 40)                  # the ETS header's pixel-info hints
        fh.write(b"RTV9")


def _text_in_tile_record_spares(data, path):
    with open(os.path.join(os.path.dirname(path), "_hostile_", "stack1", "frame_t_0.ets"), "r+b") as fh:
        head = fh.read(64)
        dims, table = struct.unpack_from("<i", head, 12)[0], struct.unpack_from("<q", head, 32)[0]
        fh.seek(table)
        fh.write(b"RTV6")


@pytest.mark.parametrize("change, reason", [
    (_text_in_ets_header_hints, "unused ETS header word is not zero"),
    (_text_in_tile_record_spares, "spare words of its tile records are not zero")])
def test_audit_refuses_spare_words_the_scrubber_left(tmp_path, monkeypatch, change, reason):
    """The audit reads the ETS headers and tile records itself: a scrubber that no longer zeroed
    their spare words (here, with both rules switched off) is caught."""
    from paw import formats
    from paw.formats import vsi
    path = _variant(tmp_path, change)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    monkeypatch.setattr(vsi, "ets_spare", lambda ets: [])
    monkeypatch.setattr(vsi, "zero_record_spares", lambda table, dims: table)
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    plan.apply(path)
    monkeypatch.undo()
    assert any(reason in p for p in handler.check(path, plan, options))
