"""Hostile TIFF-family slides, second round (red team of #14): what paw keeps must be typed all
the way down — Leica collections OpenSlide can only open with the macro, ICC text after a NUL,
numbers in ICC and ColorMap containers, numbers without a plausible range, the digits of the
file name in a kept number, writers paw does not know.

Each variant ends delivered clean or quarantined (never delivered with the planted value), with
the outcome paw should choose asserted, so a rule weakened or over-tightened fails a test.
"""

import re
import struct

import pytest

from paw.formats import prepare
from paw.errors import Unsupported
from synth import aperio, tiled
from test_tiff_hostile import ENCODINGS, FULL, NAME, OPTIONS, outcome, properties


# --- Leica: one brightfield main image, or refused (OpenSlide's quickhash needs the macro) -----

def _leica(monkeypatch, change):
    from synth import leica
    full = leica.description
    monkeypatch.setattr(leica, "description", lambda w, h: change(full(w, h)))
    return leica


def _second_main(width, height, offset_x="40000000", objective="20", levels=2, light="brightfield"):
    dims = "".join(f'<dimension sizeX="{width >> (2 * r)}" sizeY="{height >> (2 * r)}" r="{r}" ifd="{3 + r}"/>'
                   for r in range(levels))
    return (f'<image name="second"><pixels sizeX="{width}" sizeY="{height}">{dims}</pixels>'
            f'<view sizeX="{width * 500}" sizeY="{height * 500}" offsetX="{offset_x}" offsetY="5000000" spacingZ="0"/>'
            f"<scanSettings><objectiveSettings><objective>{objective}</objective></objectiveSettings>"
            f"<illuminationSettings><illuminationSource>{light}</illuminationSource>"
            "</illuminationSettings></scanSettings></image>")


LEICA_COLLECTIONS = {
    # Two tissue regions OpenSlide composites (it opens the input, hashing the macro).
    "two similar regions": (lambda x: x.replace("</collection>", _second_main(1024, 768) + "</collection>"),
                            [(1024, 768, 0), (256, 192, 1)]),
    # A label photo posing as a second region at the main image's resolution.
    "label as a similar region": (lambda x: x.replace("</collection>", _second_main(512, 256, "60000000") + "</collection>"),
                                  [(512, 256, 0), (128, 64, 1)]),
    # A label photo as a dissimilar main image (OpenSlide refuses the input too).
    "label as a dissimilar main image": (lambda x: x.replace("</collection>", _second_main(512, 256, levels=1, objective="5") + "</collection>"),
                                         [(512, 256, 0)]),
    # A fluorescence image beside the brightfield one: OpenSlide skips it but needs the macro.
    "fluorescence second image": (lambda x: x.replace("</collection>", _second_main(1024, 768, light="fluorescence") + "</collection>"),
                                  [(1024, 768, 0), (256, 192, 1)]),
    "main image lit by fluorescence": (lambda x: x.replace("<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings></image></collection>",
                                                           "<illuminationSource>fluorescence</illuminationSource></illuminationSettings></scanSettings></image></collection>"), []),
    "main image without illumination": (lambda x: x.replace("<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings></image></collection>",
                                                            "</illuminationSettings></scanSettings></image></collection>"), []),
}


@pytest.mark.parametrize("keep_macro", [False, True])
@pytest.mark.parametrize("variant", sorted(LEICA_COLLECTIONS))
def test_leica_collection_openslide_cannot_open_without_the_macro_is_refused(tmp_path, monkeypatch, variant, keep_macro):
    from types import SimpleNamespace
    change, extra = LEICA_COLLECTIONS[variant]
    leica = _leica(monkeypatch, change)
    path = str(tmp_path / "slide.scn")
    leica.write(path, extra_images=[tiled({}, w, h, level) for w, h, level in extra])
    options = SimpleNamespace(keep_macro=keep_macro, full_scan=False)
    result, reason, plan = outcome(path, options)
    assert result == "quarantined" and plan is None
    assert "main image" in reason and "Leica SCN" in reason


@pytest.mark.parametrize("variant", sorted(LEICA_COLLECTIONS))
def test_leica_check_refuses_what_the_plan_should_have(tmp_path, monkeypatch, variant):
    """The independent check (tifffile's view) also refuses such a collection, should a plan
    ever let one through."""
    import tifffile
    from types import SimpleNamespace
    from paw.formats import leica as vendor
    change, extra = LEICA_COLLECTIONS[variant]
    leica = _leica(monkeypatch, change)
    path = str(tmp_path / "slide.scn")
    leica.write(path, extra_images=[tiled({}, w, h, level) for w, h, level in extra])
    with tifffile.TiffFile(path) as tf:
        problems = vendor.check(tf, SimpleNamespace(keep_macro=True, full_scan=False))
    assert any("main image" in p for p in problems)


def test_leica_one_main_image_is_delivered_and_opens(tmp_path):
    from synth import leica
    path = str(tmp_path / "slide.scn")
    leica.write(path)
    assert outcome(path)[0] == "delivered"
    assert properties(path)["openslide.vendor"] == "leica"


# --- writers paw does not know are refused, never "generic" ----------------------------------

WRITERS = {  # (tags in directory 0 or the reduced level, the field the reason names)
    "Grundium Ocus": ({271: (2, "Grundium"), 272: (2, "Ocus40")}, "Make"),
    "Olympus cellSens": ({271: (2, "OLYMPUS"), 305: (2, "cellSens 3.1")}, "Make"),
    "Hamamatsu without NDPI tags": ({271: (2, "Hamamatsu"), 305: (2, "NDP.scan 2.5.89")}, "Make"),
    "a model only": ({272: (2, "C13210-01")}, "Model"),
    "an unknown converter": ({305: (2, "MyLabConverter 2.1")}, "Software"),
    "a converter named like a person": ({305: (2, NAME)}, "Software"),
    "tifffile after a NUL-hidden converter": ({305: (2, "MyLab\0tifffile.py")}, "Software"),
}


@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
@pytest.mark.parametrize("variant", sorted(WRITERS))
def test_tiff_from_an_unknown_writer_is_refused(tmp_path, variant, where):
    from synth import generic
    tags, field = WRITERS[variant]
    path = str(tmp_path / "slide.tif")
    generic.write(path, **{where: tags})
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None
    assert "writer paw does not know" in reason and f"({field} " in reason


@pytest.mark.parametrize("software", ["tifffile.py", "tifffile 2024.8.30", "vips", "libvips 8.15.1"])
def test_generic_pyramid_writers_are_delivered(tmp_path, software):
    from synth import generic
    path = str(tmp_path / "slide.tif")
    generic.write(path, extra_tags={305: (2, software)})
    assert outcome(path)[0] == "delivered"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_ndpi_make_with_text_is_refused_by_name(tmp_path, encoding, where):
    """tifffile takes a file for NDPI only with its Make: text after `Hamamatsu` refuses the
    slide naming Make, not as "kept image data is not where it was"."""
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, **{where: {271: (2, b"Hamamatsu " + ENCODINGS[encoding])}})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "Make" in reason and "not where it was" not in reason


# --- ICC profiles: every byte of a text tag, numbers in numeric containers ---------------------

def _profile(tags, space=b"RGB "):
    """An ICC v2 display profile made of (signature, type + data) tags, written here (never
    with paw's code)."""
    table, data, at = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, payload in tags:
        table += struct.pack(">4sII", signature, at + len(data), len(payload))
        data += payload + bytes(-len(payload) % 4)
    body = struct.pack(">I", len(tags)) + table + data
    head = bytearray(128)
    struct.pack_into(">I4sI4s4s4s", head, 0, 128 + len(body), b"lcms", 0x02100000, b"mntr", space, b"XYZ ")
    head[36:44] = b"acspAPPL"
    return bytes(head) + body


def _desc(ascii_part, unicode_part=b"", script=b""):
    return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_part)) + ascii_part
            + struct.pack(">II", 0, len(unicode_part) // 2) + unicode_part
            + b"\0\0" + bytes([min(len(script), 67)]) + script[:67].ljust(67, b"\0"))


def _text(raw):
    return b"text" + bytes(4) + raw


def _mluc(raw, declared=None):
    declared = len(raw) if declared is None else declared
    return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", declared, 28) + raw


def _xyz(*values):
    return b"XYZ " + bytes(4) + struct.pack(f">{len(values)}i", *(round(v * 65536) for v in values))


def _curv(entries):
    return b"curv" + bytes(4) + struct.pack(f">I{len(entries)}H", len(entries), *entries)


GAMMA = _curv([563])  # 2.2
COLOUR = [(b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
          (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
          (b"rTRC", GAMMA), (b"gTRC", GAMMA), (b"bTRC", GAMMA)]
KNOWN_DESC = _desc(b"sRGB built-in\0")
KNOWN_CPRT = _text(b"No copyright, use freely\0")


def _with(desc=KNOWN_DESC, cprt=KNOWN_CPRT, extra=()):
    return _profile([(b"desc", desc), (b"cprt", cprt), *COLOUR, *extra])


def _as_text(encoding):
    return ENCODINGS[encoding]


ICC_TEXT_VARIANTS = {  # every one: the tag is blanked whole, the slide delivered
    "cprt known text, NUL, name": lambda n: _with(cprt=_text(b"No copyright, use freely\0" + n + b"\0")),
    "desc leading NUL, name": lambda n: _with(desc=_desc(b"\0" + n + b"\0")),
    "cprt UTF-16BE": lambda n: _with(cprt=_text(NAME.encode("utf-16-be") + b"\0\0")),
    "desc ScriptCode": lambda n: _with(desc=_desc(b"sRGB built-in\0", script=n)),
    "desc Unicode after its NUL": lambda n: _with(desc=_desc(b"sRGB built-in\0", "sRGB built-in\0".encode("utf-16-be") + NAME.encode("utf-16-be"))),
    "desc Unicode unknown": lambda n: _with(desc=_desc(b"sRGB built-in\0", NAME.encode("utf-16-be"))),
    "desc bytes after the ScriptCode": lambda n: _with(desc=_desc(b"sRGB built-in\0") + n),
    "mluc past its declared length": lambda n: _with(desc=_mluc("sRGB built-in".encode("utf-16-be") + NAME.encode("utf-16-be"),
                                                             declared=26)),
    "mluc unknown text": lambda n: _with(desc=_mluc(NAME.encode("utf-16-be"))),
    "text tag under the dmdd signature": lambda n: _with(extra=[(b"dmdd", _text(n + b"\0"))]),
}
ICC_VENDORS = ["aperio", "ndpi", "philips", "ventana", "leica", "generic"]


def _write_with_tags(vendor, path, tags, monkeypatch, later=False):
    """A synthetic `vendor` slide with `tags` in its first (or a later) kept image directory."""
    import synth
    module = __import__(f"synth.{vendor}", fromlist=["write"])
    if vendor in ("aperio", "ndpi", "generic") or (vendor == "philips" and later):
        module.write(path, **{"later_tags" if later else "extra_tags": tags})
        return
    if vendor == "philips":  # directory 0 is the first tiled directory it writes
        later = False
    calls = []
    original = synth.tiled

    def tiled(extra, *args, **kwargs):
        calls.append(1)
        if len(calls) == (2 if later else 1):
            extra = {**extra, **tags}
        return original(extra, *args, **kwargs)
    monkeypatch.setattr(module, "tiled", tiled)
    module.write(path)


@pytest.mark.parametrize("vendor", ICC_VENDORS)
@pytest.mark.parametrize("variant", sorted(ICC_TEXT_VARIANTS))
def test_icc_text_tag_holding_anything_but_known_text_is_blanked(tmp_path, monkeypatch, variant, vendor):
    import tifffile
    from paw.formats import icc
    path = str(tmp_path / f"slide.{vendor}")
    _write_with_tags(vendor, path, {34675: (7, ICC_TEXT_VARIANTS[variant](ENCODINGS["ascii"]))}, monkeypatch,
                     later=vendor in ("philips",))
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert any("ICC profile texts blanked" in a for a in plan.actions)
    with tifffile.TiffFile(path, is_ndpi=vendor == "ndpi") as tf:  # still a profile, colour kept
        profiles = [p.tags[34675].value for p in tf.pages if 34675 in p.tags]
    assert profiles and all(icc.tags(p)[2][0] == b"wtpt" for p in profiles)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("where", ["first", "later"])
def test_icc_text_after_a_nul_in_every_encoding(tmp_path, monkeypatch, encoding, where):
    path = str(tmp_path / "slide.svs")
    profile = _with(cprt=_text(b"No copyright, use freely\0" + _as_text(encoding) + b"\0"))
    _write_with_tags("aperio", path, {34675: (7, profile)}, monkeypatch, later=where == "later")
    assert outcome(path)[0] == "delivered"


@pytest.mark.parametrize("variant", sorted(ICC_TEXT_VARIANTS))
def test_audit_refuses_icc_text_the_scrubber_missed(tmp_path, monkeypatch, variant):
    """Mutation: an ICC scrubber that keeps everything is caught by the audit, read separately."""
    from paw.formats import icc
    monkeypatch.setattr(icc, "scrub", lambda profile: (profile, 0, 0))
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, ICC_TEXT_VARIANTS[variant](ENCODINGS["ascii"]))})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "ICC" in reason


def _spelled(text, width=2):
    raw = text.encode()
    raw += bytes(-len(raw) % width)
    return list(struct.unpack(f">{len(raw) // width}{'H' if width == 2 else 'i'}", raw))


def _para_identity():
    return b"para" + bytes(4) + struct.pack(">HHi", 0, 0, 65536)


def _mab(curves):
    """A lutAtoBType with only its B curves (ICC.1:2010 10.10), each padded to 4 bytes."""
    body = b"".join(c + bytes(-len(c) % 4) for c in curves)
    return b"mAB " + bytes(4) + bytes([3, 3, 0, 0]) + struct.pack(">5I", 32, 0, 0, 0, 0) + body


ICC_NUMBER_VARIANTS = {  # (profile, outcome): unknown/out-of-place tags go, bad colour refuses
    "kTRC in an RGB profile": (lambda: _with(extra=[(b"kTRC", _curv(_spelled(NAME)))]), "delivered"),
    "a signature no profile uses": (lambda: _with(extra=[(b"zzzz", _curv(_spelled(NAME)))]), "delivered"),
    "rTRC spelling a name": (lambda: _profile([(b"desc", KNOWN_DESC), (b"cprt", KNOWN_CPRT), *COLOUR[:4],
                                               (b"rTRC", _curv(_spelled(NAME))), *COLOUR[5:]]), "quarantined"),
    "rTRC of a text type": (lambda: _profile([(b"desc", KNOWN_DESC), (b"cprt", KNOWN_CPRT), *COLOUR[:4],
                                              (b"rTRC", _text(NAME.encode() + b"\0")), *COLOUR[5:]]), "quarantined"),
    "para spelling a name": (lambda: _profile([(b"desc", KNOWN_DESC), (b"cprt", KNOWN_CPRT), *COLOUR[:4],
                                               (b"rTRC", b"para" + bytes(4) + struct.pack(">HH", 4, 0) + NAME.encode()[:28].ljust(28, b"^")),
                                               *COLOUR[5:]]), "quarantined"),
    "wtpt spelling a name": (lambda: _profile([(b"desc", KNOWN_DESC), (b"cprt", KNOWN_CPRT),
                                               (b"wtpt", b"XYZ " + bytes(4) + NAME.encode()[:12]), *COLOUR[1:]]), "quarantined"),
    "chad spelling a name": (lambda: _with(extra=[(b"chad", b"sf32" + bytes(4) + (NAME.encode() * 3)[:36])]), "quarantined"),
    "mft2 with text past its tables": (lambda: _with(extra=[(b"A2B0", b"mft2" + bytes(4) + bytes([3, 3, 2, 0])
                                                             + struct.pack(">9i", *[65536, 0, 0, 0, 65536, 0, 0, 0, 65536])
                                                             + struct.pack(">HH", 2, 2) + bytes(2 * (2 * 3 + 8 * 3 + 2 * 3))
                                                             + NAME.encode())]), "quarantined"),
    "tech signature spelling a name": (lambda: _with(extra=[(b"tech", b"sig " + bytes(4) + NAME.encode()[:4])]), "delivered"),
    "tech signature with text after it": (lambda: _with(extra=[(b"tech", b"sig " + bytes(4) + b"fscn" + NAME.encode())]), "delivered"),
    "mAB with identity curves": (lambda: _with(extra=[(b"A2B0", _mab([_para_identity()] * 3))]), "delivered"),
    "mAB whose B curves spell a name": (lambda: _with(extra=[(b"A2B0", _mab([_curv(_spelled(NAME))] * 3))]), "quarantined"),
    "gamma of a name": (lambda: _profile([(b"desc", KNOWN_DESC), (b"cprt", KNOWN_CPRT), *COLOUR[:4],
                                          (b"rTRC", _curv(_spelled(NAME[:2]))), *COLOUR[5:]]), "quarantined"),
}


@pytest.mark.parametrize("vendor", ICC_VENDORS)
@pytest.mark.parametrize("variant", sorted(ICC_NUMBER_VARIANTS))
def test_icc_numbers_are_typed(tmp_path, monkeypatch, variant, vendor):
    build, expected = ICC_NUMBER_VARIANTS[variant]
    path = str(tmp_path / f"slide.{vendor}")
    _write_with_tags(vendor, path, {34675: (7, build())}, monkeypatch, later=vendor == "philips")
    result, reason, plan = outcome(path)
    assert result == expected, reason
    if result == "quarantined":
        assert "ICC" in reason and plan is None  # refused before any edit


@pytest.mark.parametrize("variant", ["kTRC in an RGB profile", "a signature no profile uses"])
def test_audit_refuses_icc_tags_the_scrubber_kept(tmp_path, monkeypatch, variant):
    from paw.formats import icc
    monkeypatch.setattr(icc, "scrub", lambda profile: (profile, 0, 0))
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, ICC_NUMBER_VARIANTS[variant][0]())})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "ICC" in reason


ICC_HEADER_FIELDS = {  # (offset, length): header numbers a writer could fill with text
    "version bytes 10-11": (10, 2), "flags": (44, 4), "device attributes": (56, 8),
    "rendering intent": (64, 4), "illuminant": (68, 12)}


def _header_text(field):
    at, length = ICC_HEADER_FIELDS[field]
    profile = bytearray(_with())
    profile[at:at + length] = b"MUELLER^JOERG S26-047119"[:length]
    return bytes(profile)


@pytest.mark.parametrize("field", sorted(ICC_HEADER_FIELDS))
def test_icc_header_numbers_hold_only_what_the_icc_defines(tmp_path, field):
    """Text in the header's number fields (red team re-run N1): normalised in place, the slide
    delivered without it, also with the full scan."""
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, _header_text(field))})
    at, length = ICC_HEADER_FIELDS[field]
    result, reason, _ = outcome(path, FULL)
    assert result == "delivered", reason
    with open(path, "rb") as fh:
        assert b"MUELLER^JOERG S26-047119"[:length] not in fh.read()


@pytest.mark.parametrize("field", sorted(ICC_HEADER_FIELDS))
def test_audit_refuses_icc_header_numbers_the_scrubber_kept(tmp_path, monkeypatch, field):
    from paw.formats import icc
    monkeypatch.setattr(icc, "scrub", lambda profile: (profile, 0, 0))
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, _header_text(field))})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "ICC" in reason


def test_real_profiles_are_kept(tmp_path):
    """The classic HP sRGB profile (desc, dmnd, dmdd, vued, view, meas, tech, 1024-entry
    curves: the DICOM fixture's) and lcms2's built-in sRGB (mluc, para, chad, chrm): kept with
    their colour, nothing blanked or removed."""
    import tifffile
    from PIL import ImageCms
    from conftest import shared_fixture
    profiles = [ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()]
    try:
        import pydicom
        profiles.append(pydicom.dcmread(shared_fixture("dicom", "highdicom", "sm_image.dcm"))
                        .OpticalPathSequence[0].ICCProfile)
    except pytest.skip.Exception:
        pass
    for n, profile in enumerate(profiles):
        path = str(tmp_path / f"slide{n}.svs")
        aperio.write(path, extra_tags={34675: (7, profile)})
        result, _, plan = outcome(path)
        assert result == "delivered" and not any("blanked" in a or "tags outside" in a for a in plan.actions)
        with tifffile.TiffFile(path) as tf:
            kept = tf.pages[0].tags[34675].value
        assert kept[:24] == profile[:24] and kept[100:] == profile[100:]


# --- ColorMap: pixel data on a palette image, nothing anywhere else ---------------------------

@pytest.mark.parametrize("vendor", ICC_VENDORS)
@pytest.mark.parametrize("later", [False, True])
def test_colormap_on_an_rgb_image_is_dropped(tmp_path, monkeypatch, vendor, later):
    import tifffile
    colours = _spelled((NAME + " ") * 40)[:768]
    path = str(tmp_path / f"slide.{vendor}")
    _write_with_tags(vendor, path, {320: (3, colours)}, monkeypatch, later=later or vendor == "philips")
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert any("means nothing in this image" in a for a in plan.actions)
    with tifffile.TiffFile(path, is_ndpi=vendor == "ndpi") as tf:
        assert not any(320 in p.tags for p in tf.pages)


# --- kept numbers have a range and a precision; the name's digits are not one of them ----------

EVERY_DESCRIPTION = ("level0", "thumbnail", "level1")  # where aperio.item_edit plants a key

DIGITS = {  # identifiers written as numbers (own values): a date, a date-time, a phone number,
    "date of birth": b"19700101",  # an MRN, a 31-digit payload
    "scan date-time": b"20261120.143207",
    "phone number": b"01761234567",
    "record number": b"4711081519",
    "payload": b"4711081519471108151947110815194",
}
APERIO_NUMBERS = ["Left", "Top", "StripeWidth", "OriginalWidth", "Originalheight", "LineCameraSkew",
                  "LineAreaXOffset", "Focus Offset", "Filtered", "Exposure Time", "AppMag", "MPP"]


def _delivered_without(path, value, options=OPTIONS, extra=()):
    result, reason, plan = outcome(path, options, extra)
    if result == "delivered":
        with open(path, "rb") as fh:
            assert value not in fh.read(), "delivered with the planted number"
    return result, reason, plan


@pytest.mark.parametrize("digits", sorted(DIGITS))
@pytest.mark.parametrize("key", APERIO_NUMBERS)
def test_aperio_number_out_of_range_loses_the_item(tmp_path, key, digits):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=aperio.item_edit(key, DIGITS[digits], EVERY_DESCRIPTION))
    result, reason, plan = _delivered_without(path, DIGITS[digits])
    assert result == "delivered", reason
    assert f"description: {key} (not a number in its range) removed" in plan.actions


@pytest.mark.parametrize("key, value", [("Left", b"25.691574"), ("Top", b"32.792793273926"), ("StripeWidth", b"2040"),
                                        ("OriginalWidth", b"46920"), ("LineCameraSkew", b"-0.000424"),
                                        ("Focus Offset", b"-0.500000"), ("CalibrationAverageRed", b"208.22021484375"),
                                        ("Exposure Scale", b"0.000001"), ("Gamma", b"2.2"), ("MPP", b"0.263852")])
def test_aperio_real_numbers_are_kept(tmp_path, key, value):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=aperio.item_edit(key, value, EVERY_DESCRIPTION))
    assert outcome(path)[0] == "delivered"
    assert properties(path)[f"aperio.{key}"] == value.decode()


NDPI_NUMBERS = ["PSHV", "ccd.width", "slide.tickness", "exposure.slide.macro", "calibration.version",
                "target.white.intensity", "fine.focus.pitch", "lane.shift.amount"]


@pytest.mark.parametrize("digits", ["date of birth", "record number", "payload"])
@pytest.mark.parametrize("key", NDPI_NUMBERS + ["stage.center", "zFine[0]", "roi.slide.macro"])
def test_ndpi_property_number_out_of_range_goes(tmp_path, key, digits):
    from synth import ndpi
    lists = {"stage.center": b"177617,", "zFine[0]": b"1,0,100,", "roi.slide.macro": b"68,279,1256,"}
    value = lists.get(key, b"") + DIGITS[digits]
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, properties=key.encode() + b"=" + value + b"\r\n" + ndpi.PROPERTIES.encode("latin-1"))
    result, reason, _ = _delivered_without(path, DIGITS[digits])
    assert result == "delivered", reason
    assert DIGITS[digits].decode() not in " ".join(properties(path).values())


PHILIPS_NUMBERS = {  # (attribute, value, outcome): a value OpenSlide needs refuses the slide
    "columns of ten digits": ("PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", b"4711081519", "delivered"),
    "compression ratio of an accession": ("DICOM_LOSSY_IMAGE_COMPRESSION_RATIO", b"&quot;47145&quot;", "delivered"),
    "image rows of a date": ("PIM_DP_IMAGE_ROWS", b"19700101", "delivered"),
    "pixel spacing of a date": ("DICOM_PIXEL_SPACING", b"&quot;19700101&quot; &quot;0.00025&quot;", "quarantined"),
}


@pytest.mark.parametrize("variant", sorted(PHILIPS_NUMBERS))
def test_philips_number_out_of_range(tmp_path, monkeypatch, variant):
    from synth import philips
    name, value, expected = PHILIPS_NUMBERS[variant]
    full = philips.description

    def description(levels, *args, **kwargs):
        text = full(levels, *args, **kwargs)
        if name == "DICOM_PIXEL_SPACING":
            return re.sub(r'(Name="DICOM_PIXEL_SPACING"[^>]*>)[^<]*', lambda m: m.group(1) + value.decode(), text, count=1)
        attribute = philips._attr(name, value.decode(), "IUInt32")
        return text.replace("</DataObject>", attribute + "</DataObject>", 1) if "PIIM" in name else \
            text.replace('<Attribute Name="DICOM_MANUFACTURER"', attribute + '<Attribute Name="DICOM_MANUFACTURER"', 1)
    monkeypatch.setattr(philips, "description", description)
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    planted = value.replace(b"&quot;", b"").split()[0]
    result, reason, _ = _delivered_without(path, planted)
    assert result == expected, reason
    if result == "delivered":
        assert properties(path)["openslide.vendor"] == "philips"


VENTANA_NUMBERS = {  # (old attribute text, new, outcome)
    "AOI0 Left of a date": (b'AOI0 Left="297"', b'AOI0 Left="19700101"', "delivered"),
    "Registration Radius of a record number": (b'Radius="0"', b'Radius="4711081519"', "delivered"),
    "ScanRes of a date": (b'ScanRes="0.25"', b'ScanRes="20261120"', "delivered"),
    "ImageInfo Width of a record number": (b'Width="256" Height', b'Width="4711081519" Height', "quarantined"),
    "AOI0 Left in Arabic-Indic digits": (b'AOI0 Left="297"', 'AOI0 Left="٤٧١١٩"'.encode(), "delivered"),
    "AOI0 Top in full-width digits": (b'Top="2323"', 'Top="０４７１１９"'.encode(), "delivered"),
}


@pytest.mark.parametrize("variant", sorted(VENTANA_NUMBERS))
def test_ventana_number_out_of_range(tmp_path, monkeypatch, variant):
    from synth import ventana
    old, new, expected = VENTANA_NUMBERS[variant]
    for function in ("xmp", "encode_info"):
        original = getattr(ventana, function)
        monkeypatch.setattr(ventana, function, lambda *a, _o=original: _o(*a).replace(old, new, 1)
                            if isinstance(_o(*a), bytes) else _o(*a).replace(old.decode(), new.decode(), 1))
    path = str(tmp_path / "slide.bif")
    ventana.write(path)
    with open(path, "rb") as fh:
        assert new in fh.read()
    planted = new.split(b'"')[1]
    result, reason, _ = _delivered_without(path, planted)
    assert result == expected, reason
    if result == "delivered":
        assert properties(path)["openslide.vendor"] == "ventana"


LEICA_NUMBERS = {  # (old, new, outcome): geometry OpenSlide needs refuses the slide
    "view offsetX of a record number": ('offsetX="10000000"', 'offsetX="4711081519"', "quarantined"),
    "collection sizeX of a record number": ('sizeX="76000000" sizeY="25000000">', 'sizeX="4711081519" sizeY="25000000">', "quarantined"),
    "dimension r of an accession": ('r="1" ifd="2"', 'r="47119" ifd="2"', "delivered"),
}


@pytest.mark.parametrize("variant", sorted(LEICA_NUMBERS))
def test_leica_number_out_of_range(tmp_path, monkeypatch, variant):
    old, new, expected = LEICA_NUMBERS[variant]
    leica = _leica(monkeypatch, lambda x: x.replace(old, new, 1))
    path = str(tmp_path / "slide.scn")
    leica.write(path)
    planted = new.split('"')[1].encode()
    result, reason, _ = _delivered_without(path, planted)
    assert result == expected, reason
    if result == "delivered":
        assert properties(path)["openslide.vendor"] == "leica"


NAME_NUMBERS = {  # (file stem, how the slide carries the accession's digits as a number)
    "Aperio OriginalWidth": ("S26-047120 A1 HE", "aperio", ("OriginalWidth", b"47120")),
    "Aperio DisplayColor": ("S26-047122 B1 PAS", "aperio", ("DisplayColor", b"47122")),
    "Aperio OriginalHeight, five digits without the zero": ("S26-012345 A1 HE", "aperio", ("OriginalHeight", b"12345")),
    "Aperio MPP with the leading zero": ("S26-047121 A1 HE", "aperio", ("MPP", b"0.047121")),
    "NDPI ccd.width": ("S26-047123 A1 HE", "ndpi", ("ccd.width", b"47123")),
    "NDPI stage.center": ("2026-123456 HE", "ndpi", ("stage.center", b"177617,123456")),
}


@pytest.mark.parametrize("variant", sorted(NAME_NUMBERS))
def test_the_name_digits_as_a_kept_number_refuse_the_slide(tmp_path, variant):
    from paw.errors import VerificationFailed
    from paw.verify import name_values, verify
    from synth import ndpi
    stem, vendor, (key, value) = NAME_NUMBERS[variant]
    if vendor == "aperio":
        path = str(tmp_path / f"{stem}.svs")
        aperio.write(path, edit=aperio.item_edit(key, value, EVERY_DESCRIPTION))
    else:
        path = str(tmp_path / f"{stem}.ndpi")
        ndpi.write(path, properties=key.encode() + b"=" + value + b"\r\n" + ndpi.PROPERTIES.encode("latin-1"))
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="number from the file name|removed value") as caught:
        verify(path, module, plan, OPTIONS, extra_values=name_values(stem))
    assert value.decode() not in str(caught.value)


@pytest.mark.parametrize("stem", ["S26-047120 A1 HE", "S26-1000 A1 HE", "2026-123456 HE", "S26-25 A1 HE"])
def test_a_number_only_containing_the_name_digits_is_delivered(tmp_path, stem):
    """Digits of the name inside a longer number (Left 25.147120 holds 47120 of S26-047120) are
    not the name's number: only a whole number equal to a digit group of five digits or more
    refuses the slide (StripeWidth = 1000 of a slide named S26-1000 is a StripeWidth)."""
    path = str(tmp_path / f"{stem}.svs")
    aperio.write(path, edit=aperio.item_edit("Left", b"25.147120", EVERY_DESCRIPTION))
    from paw.verify import name_values
    assert outcome(path, extra=name_values(stem))[0] == "delivered"


@pytest.mark.parametrize("text", ["٤٧١١٩", "０４７１１９", "४७११९", "0.٠٤٧"])
def test_a_number_is_written_in_ascii_digits(text):
    """The audit reads XML and ASCII tags as UTF-8: Python's \\d would take Arabic-Indic,
    full-width or Devanagari digits (and float() reads them) for a number."""
    from paw.formats.allow import Integer, Number
    assert not Number().accepts(text) and not Integer().accepts(text)
    assert not Number(low=0, high=10 ** 6, decimals=6).accepts(text)
