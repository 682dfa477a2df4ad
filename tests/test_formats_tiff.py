"""Per-format anonymization of TIFF slides, checked with an independent reader (OpenSlide)."""

import os
import shutil
from types import SimpleNamespace

import pytest
import tifffile

from checks import leaked, openslide_view, tile_digest
from conftest import shared_fixture
from paw.errors import Unsupported, VerificationFailed
from paw.formats import prepare
from synth import aperio, generic
from paw.verify import verify

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=True)


def anonymize(path, options=OPTIONS, extra=()):
    module, plan, found = prepare(path, options)
    plan.apply(path)
    verify(path, module, plan, options, extra_values=extra)
    return module, plan, found


APERIO_VARIANTS = {
    "classic": {},
    "big-endian": {"byteorder": ">"},
    "bigtiff": {"bigtiff": True},
    "bigtiff-big-endian-gt450": {"bigtiff": True, "byteorder": ">", "gt450": True},
    "label-without-description-line": {"label_line": False},
    "label-only-by-description-line": {"label_subfile": 0},
    "barcode-not-last": {"barcode_last": False},
    "jpeg2000-tiles": {"tile_compression": 33003},  # paw never decodes: any codec is the same
}


@pytest.mark.parametrize("variant", sorted(APERIO_VARIANTS))
def test_aperio_synthetic(tmp_path, variant):
    path = str(tmp_path / "slide.svs")
    args = APERIO_VARIANTS[variant]
    planted = aperio.write(path, **args)
    # OpenSlide 4.0 cannot open big-endian classic TIFF at all (it reads the first directory
    # offset as 8 bytes and keeps the low 32 bits), so that variant is checked with tifffile only.
    readable = not (args.get("byteorder") == ">" and not args.get("bigtiff")) \
        and "tile_compression" not in args  # the fake JPEG 2000 tiles do not decode
    if readable:
        vendor, images, region = openslide_view(path)
        assert vendor == "aperio"
        if args.get("label_subfile", 1) == 1:
            assert "label" in images and "macro" in images
    tiles = tile_digest(path)

    module, plan, found = anonymize(path)

    assert module.name == "aperio"
    assert found["label"] == 1 and found["macro"] == 1
    assert leaked(path, planted) == []
    assert tile_digest(path) == tiles
    if readable:
        assert openslide_view(path) == ("aperio", ["thumbnail"], region)
    with tifffile.TiffFile(path) as tf:
        assert [p.subfiletype for p in tf.pages if not p.is_tiled] == [0]  # the thumbnail


def test_aperio_keep_macro(tmp_path):
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    anonymize(path, SimpleNamespace(keep_macro=True, full_scan=True))
    assert openslide_view(path)[1] == ["macro", "thumbnail"]


def test_aperio_keeps_optical_fields(tmp_path):
    import openslide
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    anonymize(path)
    props = openslide.OpenSlide(path).properties
    assert props["aperio.AppMag"] == "40" and props["aperio.MPP"] == "0.2520"
    assert props["openslide.mpp-x"] == "0.252"
    assert "aperio.Date" not in props and "aperio.Barcode" not in props  # removed, key and value


def test_aperio_real_sample(tmp_path):
    path = str(tmp_path / "CMU-1-Small-Region.svs")
    shutil.copyfile(shared_fixture("aperio", "cmu-1-small-region.svs"), path)
    vendor, images, region = openslide_view(path)
    assert (vendor, images) == ("aperio", ["label", "macro", "thumbnail"])
    tiles = tile_digest(path)
    anonymize(path, extra=["CMU-1"])
    identifying = ["CPAPERIOCS", "CMU-1", "12/29/09", "09:59:15",
                   "b414003d-95c6-48b0-9369-8010ed517ba7", "label 387x463", "macro 1280x431"]
    assert leaked(path, identifying) == []
    assert openslide_view(path) == ("aperio", ["thumbnail"], region)
    assert tile_digest(path) == tiles


def test_generic_synthetic(tmp_path):
    path = str(tmp_path / "slide.tif")
    planted = generic.write(path)
    vendor, images, region = openslide_view(path)
    assert vendor == "generic-tiff"
    tiles = tile_digest(path)
    module, plan, found = anonymize(path)
    assert module.name == "generic-tiff"
    assert found == {"level": 2, "unknown": 1}
    assert leaked(path, planted + ["LABEL-PIXELS", "IPTC"]) == []
    assert openslide_view(path) == ("generic-tiff", [], region)
    assert tile_digest(path) == tiles


def test_generic_real_sample(tmp_path):
    path = str(tmp_path / "boxes.tiff")
    shutil.copyfile(shared_fixture("generic-tiff", "boxes.tiff"), path)
    before = openslide_view(path)
    tiles = tile_digest(path)
    anonymize(path)
    assert openslide_view(path) == before
    assert tile_digest(path) == tiles


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"\x00" * 100, "not a TIFF"),
    (b"\x80" + os.urandom(4095), "not a TIFF"),  # \x80: no magic number by chance
    (b"II*\x00\x08\x00\x00\x00\x05\x00", "incomplete file: 10 bytes of an Aperio SVS slide"),
])
def test_broken_files_are_refused(tmp_path, content, reason):
    path = tmp_path / "bad.svs"
    path.write_bytes(content)
    with pytest.raises(Unsupported, match=reason):
        prepare(str(path), OPTIONS)


def test_truncated_slide_is_refused(tmp_path):
    path = tmp_path / "slide.svs"
    aperio.write(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Unsupported, match="incomplete file"):
        prepare(str(path), OPTIONS)


def test_directory_loop_is_refused(tmp_path):
    import struct
    path = tmp_path / "loop.svs"
    aperio.write(str(path))
    data = bytearray(path.read_bytes())
    first = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[first:first + 2])[0]
    data[first + 2 + 12 * count:first + 6 + 12 * count] = struct.pack("<I", first)
    path.write_bytes(bytes(data))
    with pytest.raises(Unsupported, match="loops"):
        prepare(str(path), OPTIONS)


def test_unknown_vendor_variants_fail_closed(tmp_path):
    """A Ventana-like XMP or an NDPI tag must never be treated as generic TIFF."""
    path = str(tmp_path / "v.tif")
    generic.write(path)
    for tag, value, name in [(700, (1, b"<iScan UnitNumber='1'/>"), "Ventana"),
                             (65420, (4, 1), "NDPI")]:
        from synth.tiffwriter import Image, write_tiff
        write_tiff(path, [Image({256: (4, 256), 257: (4, 256), 258: (3, 8), 259: (3, 1),
                                 262: (3, 1), 277: (3, 1), 322: (3, 256), 323: (3, 256),
                                 tag: value}, [bytes(256 * 256)], tiled=True)])
        with pytest.raises(Unsupported, match=name):
            prepare(path, OPTIONS)


def test_verification_catches_a_value_left_behind(tmp_path):
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    from paw.formats.tiff import Tiff
    with open(path, "r+b") as fh:  # a value surviving inside a kept description
        fh.seek(Tiff(fh).directories[0].entries[270].value_offset + 10)
        fh.write(b"S26-047119 A1 HE")
    # the residual audit sees the text it cannot explain before the value search does
    with pytest.raises(VerificationFailed, match="first item is not a known product"):
        verify(path, module, plan, OPTIONS)


def test_value_search_catches_a_removed_value_the_audit_would_not_see(tmp_path):
    """The search for removed values is the second, independent net (here: inside bytes a
    numeric rule exempts from the audit's printable-run scan, the tile offset table)."""
    from paw.verify import find_any
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    with open(path, "r+b") as fh:
        fh.seek(plan.layout[0][0])
        fh.write(b"S26-047119")
    assert find_any(path, ["S26-047119"]) == plan.layout[0][0]
    with pytest.raises(VerificationFailed):
        verify(path, module, plan, OPTIONS)


def test_verification_catches_label_pixels_left_behind(tmp_path):
    """If the zeroing of a destroyed image had not happened, verification must notice."""
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    module, plan, _ = prepare(path, OPTIONS)
    label_pixels = max(plan.zeros, key=lambda z: z[1])  # the largest zeroed range
    plan.zeros.remove(label_pixels)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="not cleared"):
        verify(path, module, plan, OPTIONS)


def sparse_copy(src, dst):
    import subprocess
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)


@pytest.mark.parametrize("hole", [0, 5 << 30], ids=["small", "offsets-past-4GiB"])
def test_ndpi_synthetic(tmp_path, hole):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    planted = ndpi.write(path, hole=hole)
    vendor, images, region = openslide_view(path)
    assert (vendor, images) == ("hamamatsu", ["macro"])
    module, plan, found = anonymize(path, SimpleNamespace(keep_macro=False, full_scan=False))
    assert module.name == "ndpi" and found == {"level": 2, "macro": 1, "map": 1}
    assert os.stat(path).st_blocks * 512 < 1 << 20  # the hole stayed a hole
    assert openslide_view(path) == ("hamamatsu", [], region)
    import openslide
    props = openslide.OpenSlide(path).properties
    assert "hamamatsu.Reference" not in props and "hamamatsu.Created" not in props
    assert props["hamamatsu.Objective.Lens.Magnificant"] == "20.00"
    if not hole:
        assert leaked(path, planted) == []


def test_ndpi_renamed_to_tif_is_still_ndpi(tmp_path):
    """Detected by content: tifffile would pick NDPI parsing from the extension alone."""
    from synth import ndpi
    path = str(tmp_path / "slide.tif")
    ndpi.write(path)
    module, _, _ = anonymize(path, SimpleNamespace(keep_macro=False, full_scan=True))
    assert module.name == "ndpi"


def test_ndpi_real_sample(tmp_path):
    path = str(tmp_path / "sample.ndpi")
    shutil.copyfile(shared_fixture("hamamatsu", "test3-DAPI-2-(387).ndpi"), path)
    before = openslide_view(path)
    assert before[:2] == ("hamamatsu", ["macro"])
    anonymize(path)
    # scanner serials, dates in tags, properties and shading data
    assert leaked(path, ["950291", "950410", "2017:02:07", "2011/05/23", "2017/01/27"]) == []
    assert openslide_view(path) == ("hamamatsu", [], before[2])


def _xml_vendor(tmp_path, generator, vendor, associated, skip=(), **args):
    path = str(tmp_path / "slide")
    planted = generator.write(path, **args)
    before_vendor, before_images, _ = openslide_view(path)
    assert (before_vendor, before_images) == (vendor, associated)
    tiles = tile_digest(path, skip)
    module, plan, found = anonymize(path)
    assert leaked(path, planted) == []
    assert openslide_view(path)[:2] == (vendor, [])
    assert tile_digest(path, skip) == tiles
    return path, module, found


def test_philips_synthetic(tmp_path):
    import openslide
    from synth import philips
    path, module, found = _xml_vendor(tmp_path, philips, "philips", ["label", "macro"])
    assert found == {"level": 2, "label": 1, "macro": 1}
    props = openslide.OpenSlide(path).properties
    assert props["philips.PIM_DP_IMAGE_TYPE"] == "WSI"
    assert props["philips.PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE[1].DICOM_PIXEL_SPACING"] == '"0.0005" "0.0005"'
    assert "philips.DICOM_DERIVATION_DESCRIPTION" not in props  # cut out, name and value


def test_ventana_synthetic(tmp_path):
    import openslide
    from synth import ventana
    path, module, found = _xml_vendor(tmp_path, ventana, "ventana", ["macro", "thumbnail"], skip=(4,),
                                     probability=True)
    assert found == {"label": 1, "thumbnail": 1, "level": 2, "unknown": 1}  # + Probability_Image
    props = openslide.OpenSlide(path).properties
    assert props["ventana.Magnification"] == "40" and "ventana.UserName" not in props
    with tifffile.TiffFile(path) as tf:  # directory 0 keeps its place, its pixels are zeros
        page = tf.pages[0]
        with open(path, "rb") as fh:
            fh.seek(page.dataoffsets[0])
            assert fh.read(page.databytecounts[0]).count(0) == page.databytecounts[0]


def test_leica_synthetic(tmp_path):
    import openslide
    from synth import leica
    path, module, found = _xml_vendor(tmp_path, leica, "leica", ["macro"], skip=(0,))
    assert found == {"macro": 1, "image": 1}
    props = openslide.OpenSlide(path).properties
    assert props["leica.objective"] == "20" and "leica.barcode" not in props


def test_philips_truncated_xml_is_refused(tmp_path, monkeypatch):
    from synth import philips
    full = philips.description
    monkeypatch.setattr(philips, "description", lambda levels: full(levels)[:-40])
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    with pytest.raises(Unsupported, match="XML"):
        prepare(path, OPTIONS)


def test_ventana_without_xmp_is_refused(tmp_path, monkeypatch):
    from synth import ventana
    monkeypatch.setattr(ventana, "xmp", lambda: b"<x/>")
    path = str(tmp_path / "slide.bif")
    ventana.write(path)
    with pytest.raises(Unsupported, match="not tiled"):
        prepare(path, OPTIONS)


def test_label_pointing_past_eof_is_refused(tmp_path):
    import struct
    from paw.formats.tiff import Tiff
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    with open(path, "r+b") as fh:
        label = Tiff(fh).directories[3]
        fh.seek(label.entries[273].value_offset)
        fh.write(struct.pack("<I", 0x7FFFFFF0))
    with pytest.raises(Unsupported, match="incomplete file"):
        prepare(path, OPTIONS)


def test_xml_with_doctype_is_refused(tmp_path, monkeypatch):
    from synth import leica
    full = leica.description
    monkeypatch.setattr(leica, "description", lambda w, h: full(w, h).replace(
        '<?xml version="1.0"?>', '<?xml version="1.0"?><!DOCTYPE scn [<!ENTITY a "aaaa">]>'))
    path = str(tmp_path / "slide.scn")
    leica.write(path)
    with pytest.raises(Unsupported, match="DOCTYPE"):
        prepare(path, OPTIONS)


def test_isyntax_synthetic(tmp_path):
    from synth import isyntax
    path = str(tmp_path / "slide.isyntax")
    planted = isyntax.write(path)
    with open(path, "rb") as fh:
        before = fh.read()
    end = before.index(b"\r\n\x04")
    module, plan, found = anonymize(path)
    with open(path, "rb") as fh:
        after = fh.read()
    assert module.name == "isyntax" and len(after) == len(before)
    assert after[end:] == before[end:]  # the marker and the binary data did not move
    assert leaked(path, planted) == []
    assert b"UFS_IMAGE_BLOCK_HEADER_TABLE" in after and b"AAECAwQFBgcICQ==" in after  # codec kept


def test_isyntax_without_end_of_text_is_refused(tmp_path):
    from synth import isyntax
    path = tmp_path / "slide.isyntax"
    isyntax.write(str(path))
    path.write_bytes(path.read_bytes().replace(b"\r\n\x04", b"\r\n\x05"))
    with pytest.raises(Unsupported, match="end-of-text"):
        prepare(str(path), OPTIONS)


def test_ome_tiff_paw_cannot_read_is_refused_not_treated_as_generic(tmp_path):
    """OME-XML names experimenters and dates: one ome.py cannot read (here: no Image, and a
    stripped first image) is refused, never scrubbed as a generic TIFF."""
    from synth import stripped, tiled
    from synth.tiffwriter import write_tiff
    xml = ('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/'
           'Schemas/OME/2016-06"><Experimenter UserName="jsmith"/></OME>')
    path = str(tmp_path / "slide.ome.tif")
    write_tiff(path, [tiled({270: (2, xml)}, 512, 512)])
    with pytest.raises(Unsupported, match="OME-XML without exactly one Image"):
        prepare(path, OPTIONS)
    write_tiff(path, [stripped({270: (2, xml)}, 512, 512)])
    with pytest.raises(Unsupported, match="OME-TIFF whose first image is not tiled"):
        prepare(path, OPTIONS)
