"""`anonymize.label: replace`: the drawn label, read back with OpenSlide and a QR decoder (zxing-cpp)."""

import os
import shutil
import signal
from types import SimpleNamespace

import numpy as np
import openslide
import pytest
import zxingcpp

from checks import folder_leaks, leaked, mrxs_leaks, mrxs_tiles, openslide_view, tile_digest
from conftest import real_dicom_folder, shared_fixture
from paw import label
from paw.errors import VerificationFailed
from paw.formats import prepare
from synth import LABEL_TEXT, aperio, dicom, generic, leica, mrxs, ndpi, philips, ventana
from paw.verify import verify

PSEUDONYM = "PAW-7K2M9QX4TD"
OPTIONS = SimpleNamespace(keep_macro=False, full_scan=True)
ORIGINAL_LABEL = LABEL_TEXT.decode()  # the synthetic label photos are these bytes, repeated


def drawn():
    values = {"pseudonym": PSEUDONYM, "case": "", "block": "A1", "stain": "HE"}
    return label.render(PSEUDONYM, label.text_lines("", "{pseudonym}_{block}_{stain}", values))


def anonymize_with_label(path, options=OPTIONS):
    art = drawn()
    module, plan, found = prepare(path, options, PSEUDONYM, art)
    plan.apply(path)
    verify(path, module, plan, options)
    return art, plan, found


def qr_codes(image):
    return [result.text for result in zxingcpp.read_barcodes(image)]


def pixels(image):
    return np.asarray(image.convert("L"))


def same_pixels(image, art):
    return np.array_equal(pixels(image), np.frombuffer(art.pixels, np.uint8).reshape(art.height, art.width))


TIFF_CASES = {  # generator, arguments, name, OpenSlide vendor, where OpenSlide shows the label
    "aperio": (aperio, {}, "slide.svs", "aperio", "label", ["label", "thumbnail"]),
    "aperio-bigtiff-big-endian-gt450": (aperio, {"bigtiff": True, "byteorder": ">", "gt450": True},
                                        "slide.svs", "aperio", "label", ["label", "thumbnail"]),
    "philips": (philips, {}, "slide.tiff", "philips", "label", ["label"]),
    # Ventana's label directory (Label_Image) is what OpenSlide calls `macro`.
    "ventana": (ventana, {}, "slide.bif", "ventana", "macro", ["macro"]),
}


@pytest.mark.parametrize("case", sorted(TIFF_CASES))
def test_tiff_formats_get_a_drawn_label(tmp_path, case):
    generator, args, name, vendor, shown, images = TIFF_CASES[case]
    path = str(tmp_path / name)
    planted = generator.write(path, **args)
    assert leaked(path, [ORIGINAL_LABEL])  # the original label photo is there before
    _, _, region = openslide_view(path)
    tiles = tile_digest(path)

    art, plan, found = anonymize_with_label(path)

    assert found["drawn label"] == 1
    assert leaked(path, planted + [ORIGINAL_LABEL]) == []
    assert tile_digest(path) == tiles
    assert openslide_view(path) == (vendor, images, region)
    image = openslide.OpenSlide(path).associated_images[shown]
    assert qr_codes(image) == [PSEUDONYM]
    assert same_pixels(image, art)  # Deflate is lossless: exactly the drawn pixels


def test_mrxs_label_layer_points_at_the_drawn_label(tmp_path):
    path = str(tmp_path / "S26 slide.mrxs")
    planted = mrxs.write(path)
    _, _, region = openslide_view(path)
    tiles = mrxs_tiles(path)

    _, _, found = anonymize_with_label(path)

    assert found["drawn label"] == 1
    assert mrxs_tiles(path) == tiles
    assert mrxs_leaks(path, planted) == []
    assert openslide_view(path) == ("mirax", ["label"], region)
    assert qr_codes(openslide.OpenSlide(path).associated_images["label"]) == [PSEUDONYM]


def test_dicom_folder_gets_a_drawn_label_instance(tmp_path):
    folder = str(tmp_path / "slide")
    planted = dicom.write(folder)
    _, _, region = openslide_view(dicom.volume(folder))

    art, plan, found = anonymize_with_label(folder)

    assert found["drawn label"] == 1
    assert sorted(os.listdir(folder)) == [f"{PSEUDONYM}_{n}.dcm" for n in ("label", "level-0", "level-1", "thumbnail")]
    assert folder_leaks(folder, planted) == []
    volume = os.path.join(folder, f"{PSEUDONYM}_level-0.dcm")
    assert openslide_view(volume) == ("dicom", ["label", "thumbnail"], region)
    image = openslide.OpenSlide(volume).associated_images["label"]
    assert qr_codes(image) == [PSEUDONYM] and same_pixels(image, art)


def test_real_aperio_sample_gets_a_drawn_label(tmp_path):
    path = str(tmp_path / "CMU-1-Small-Region.svs")
    shutil.copyfile(shared_fixture("aperio", "cmu-1-small-region.svs"), path)
    with open(path, "rb") as fh:  # the scanner's label strip, as stored
        import tifffile
        with tifffile.TiffFile(path) as tf:
            page = next(p for p in tf.pages if p.subfiletype == 1)
            fh.seek(page.dataoffsets[0])
            original = fh.read(min(4096, page.databytecounts[0]))
    _, _, region = openslide_view(path)
    tiles = tile_digest(path)
    art, _, _ = anonymize_with_label(path)
    with open(path, "rb") as fh:
        assert original not in fh.read()
    assert leaked(path, ["CPAPERIOCS", "CMU-1", "12/29/09", "label 387x463"]) == []
    assert tile_digest(path) == tiles
    assert openslide_view(path) == ("aperio", ["label", "thumbnail"], region)
    image = openslide.OpenSlide(path).associated_images["label"]
    assert qr_codes(image) == [PSEUDONYM] and same_pixels(image, art)


def test_real_dicom_samples_get_a_drawn_label_instance(tmp_path):
    folder = real_dicom_folder(tmp_path)
    before = openslide_view(str(folder / "boxes_0.dcm"))
    anonymize_with_label(str(folder))
    kept = [f"{PSEUDONYM}_{n}.dcm" for n in ("label", "level-0", "thumbnail")]
    assert sorted(os.listdir(folder)) == kept
    vendor, images, region = openslide_view(str(folder / kept[1]))
    assert (vendor, images, region) == (before[0], sorted(before[1] + ["label"]), before[2])
    assert qr_codes(openslide.OpenSlide(str(folder / kept[1])).associated_images["label"]) == [PSEUDONYM]


def test_single_file_dicom_gets_no_label_and_says_so(tmp_path):
    folder = tmp_path / "slide"
    dicom.write(str(folder))
    single = str(tmp_path / "volume.dcm")
    shutil.move(dicom.volume(str(folder)), single)
    _, plan, found = anonymize_with_label(single)
    assert "drawn label" not in found
    assert any("single-file" in action for action in plan.actions)


@pytest.mark.parametrize("hole", [0, 5 << 30], ids=["small", "offsets-past-4GiB"])
def test_ndpi_has_no_label_and_nothing_is_drawn(tmp_path, hole):
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, hole=hole)
    _, _, region = openslide_view(path)
    size = os.path.getsize(path)
    _, plan, found = anonymize_with_label(path, SimpleNamespace(keep_macro=False, full_scan=False))
    assert "drawn label" not in found and plan.added == []
    assert os.path.getsize(path) == size and os.stat(path).st_blocks * 512 < 1 << 20
    assert openslide_view(path) == ("hamamatsu", [], region)


@pytest.mark.parametrize("generator", [leica, generic], ids=["leica", "generic"])
def test_formats_without_a_label_get_none(tmp_path, generator):
    path = str(tmp_path / "slide.tif")
    generator.write(path)
    _, plan, found = anonymize_with_label(path)
    assert "drawn label" not in found and plan.added == []
    assert "label" not in openslide_view(path)[1]


def test_verification_refuses_an_image_the_plan_did_not_add(tmp_path):
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    module, plan, _ = prepare(path, OPTIONS, PSEUDONYM, drawn())
    plan.apply(path)
    plan.added = []  # as if paw had linked an image it did not draw
    with pytest.raises(VerificationFailed):
        verify(path, module, plan, OPTIONS)


# --- through the job --------------------------------------------------------------------------

LAB_CONFIG = """
naming: {pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d) (?P<stain>\\w+)', template: '{pseudonym}_{block}_{stain}'}
anonymize: {label: replace, label_text: "{pseudonym}\\nblock {block}  stain {stain}"}
"""


def test_run_draws_the_output_pseudonym_and_the_kept_identifiers(lab):
    lab.write_config(extra=LAB_CONFIG)
    planted = aperio.write(os.path.join(lab.inbox, "S26-047119 A1 HE.svs"))
    assert lab.run() == 0
    [name] = lab.outbox_files()
    pseudonym, block, stain = name[:-4].split("_")
    assert (block, stain) == ("A1", "HE")
    path = os.path.join(lab.outbox, name)
    assert leaked(path, planted + [ORIGINAL_LABEL]) == []
    image = openslide.OpenSlide(path).associated_images["label"]
    assert qr_codes(image) == [pseudonym]
    # the text printed is the template filled with the kept groups, nothing else of the name
    expected = label.render(pseudonym, [pseudonym, "block A1  stain HE"])
    assert same_pixels(image, expected)
    assert "label replaced by a drawn pseudonym label" in lab.rows()[0]["removed"]


def test_without_pillow_or_segno_labels_are_destroyed_with_one_warning(lab, monkeypatch, caplog):
    monkeypatch.setitem(__import__("sys").modules, "segno", None)  # import segno -> ImportError
    monkeypatch.setattr(label, "_warned", [])
    lab.write_config(extra="anonymize: {label: replace}\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    aperio.write(os.path.join(lab.inbox, "b.svs"))
    assert lab.run() == 0
    warnings = [r for r in caplog.records if "requirements-label.txt" in r.getMessage()]
    assert len(warnings) == 1 and "segno is not installed" in warnings[0].getMessage()
    for name in lab.outbox_files():
        assert openslide_view(os.path.join(lab.outbox, name))[1] == ["thumbnail"]


@pytest.mark.parametrize("text, message", [
    ("{pseudonym} {specimen}", "not {pseudonym}, {case} or a named group"),
    ("{0}", "not {pseudonym}, {case} or a named group"),
])
def test_label_text_may_only_use_kept_groups(lab, text, message, capsys):
    lab.write_config(extra=f"anonymize: {{label: replace, label_text: '{text}'}}\n")
    assert lab.run() == 2
    assert message in capsys.readouterr().err


def test_label_mode_is_validated(lab, capsys):
    lab.write_config(extra="anonymize: {label: draw}\n")
    assert lab.run() == 2
    assert "must be destroy or replace" in capsys.readouterr().err


def test_inspect_says_where_the_label_goes_or_that_there_is_none(lab, capsys):
    lab.write_config(extra="anonymize: {label: replace}\n")
    svs, slide = os.path.join(lab.base, "a.svs"), os.path.join(lab.base, "b.ndpi")
    aperio.write(svs)
    ndpi.write(slide)
    lab.run("inspect", svs, slide)
    out = capsys.readouterr().out
    assert "drawn label: a new stripped directory, NewSubfileType 1" in out
    assert "drawn label: none (Hamamatsu NDPI has no label image)" in out


@pytest.mark.parametrize("point, nth", [("mid-anonymization", n) for n in (1, 2, 3, 4)]
                         + [("after-apply", 1)])
def test_kill_9_while_the_label_is_drawn(lab, point, nth):
    from test_crash import CRASHRUN
    lab.write_config(extra="anonymize: {label: replace}\n")
    planted = aperio.write(os.path.join(lab.inbox, "S26-1.svs"))
    env = dict(os.environ, PAW_CRASH_POINT=point, PAW_CRASH_NTH=str(nth))
    crashed = lab.run_subprocess(env=env, wrapper=CRASHRUN)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert lab.run_subprocess().returncode == 0
    [name] = lab.outbox_files()
    path = os.path.join(lab.outbox, name)
    assert leaked(path, planted + [ORIGINAL_LABEL]) == []
    assert qr_codes(openslide.OpenSlide(path).associated_images["label"]) == [name[:-4]]
    assert lab.staging() == [] and len(lab.rows()) == 1


def test_label_text_lines():
    values = {"pseudonym": "PAW-1", "case": "PAW-C", "specimen_free": "x", "block": "A1", "stain": ""}
    # the default: the output name's fields, in the template's order, nothing it leaves out
    assert label.text_lines("", "{pseudonym}_{block}_{stain}", values) == ["PAW-1", "block: A1"]
    assert label.text_lines("", "{case}_{stain}_{block}", values) == ["PAW-C", "block: A1"]
    assert label.text_lines("", "{block}-{pseudonym}-{case}", values) == ["PAW-1", "block: A1", "case: PAW-C"]
    assert label.text_lines("", "{pseudonym}", values) == ["PAW-1"]
    assert label.text_lines("{pseudonym}\n\n  {block} {stain}", "{pseudonym}", values) == ["PAW-1", "A1"]


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
def test_a_file_ending_near_or_past_4_gib(tmp_path, bigtiff):
    """A classic TIFF cannot address a label past 4 GiB: it is then only destroyed. A BigTIFF
    gets its label there (a sparse tail stands in for the image data)."""
    path = str(tmp_path / "slide.svs")
    aperio.write(path, bigtiff=bigtiff)
    size = (1 << 32) + 4096 if bigtiff else (1 << 32) - 1000
    os.truncate(path, size)
    _, _, region = openslide_view(path)
    _, plan, found = anonymize_with_label(path, SimpleNamespace(keep_macro=False, full_scan=False))
    images = openslide_view(path)
    if bigtiff:
        assert found["drawn label"] == 1 and plan.added[0][0] > 1 << 32
        assert images == ("aperio", ["label", "thumbnail"], region)
        assert qr_codes(openslide.OpenSlide(path).associated_images["label"]) == [PSEUDONYM]
    else:
        assert "no drawn label: a classic TIFF cannot grow past 4 GiB" in plan.actions
        assert images == ("aperio", ["thumbnail"], region)
        assert os.path.getsize(path) == size


def test_mrxs_whose_data_files_are_full_gets_no_label(tmp_path):
    path = str(tmp_path / "S26 slide.mrxs")
    mrxs.write(path)
    os.truncate(os.path.join(path[:-5], "Data0000.dat"), (1 << 31) - 1000)
    _, plan, found = anonymize_with_label(path, SimpleNamespace(keep_macro=False, full_scan=False))
    assert "no drawn label: every data file is near 2 GiB" in plan.actions
    assert "drawn label" not in found and openslide_view(path)[1] == []


def test_the_drawn_label_is_searched_like_everything_outside_the_tiles(tmp_path, monkeypatch):
    """paw drew it, but its bytes are not exempt: a removed value in them fails verification."""
    from synth import PATIENT
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    art = drawn()
    import zlib   # a valid stream (stored block): the tile walk passes it, the search must not
    monkeypatch.setattr(label.Label, "deflated", lambda self: zlib.compress(PATIENT.encode(), 0))
    module, plan, _ = prepare(path, OPTIONS, PSEUDONYM, art)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="removed value"):
        verify(path, module, plan, SimpleNamespace(keep_macro=False, full_scan=False))


def test_by_hand_anonymize_destroys_the_label_without_drawing_one(lab):
    """It gives no pseudonym (and no ledger row), so there is nothing to print on a label."""
    lab.write_config(extra="anonymize: {label: replace}\n")
    path = os.path.join(lab.base, "S26-047119.svs")
    aperio.write(path)
    assert lab.run("anonymize", "--in-place", path) == 0
    assert openslide_view(path)[1] == ["thumbnail"]
