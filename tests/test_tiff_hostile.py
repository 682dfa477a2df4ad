"""Hostile TIFF-family slides: identifiers planted where paw keeps things.

Every variant must end either delivered clean (verified, and the planted name in none of its
forms anywhere in the file) or quarantined with a reason — never delivered with the value; and
neither the reason nor the ledger's actions may quote it. The planted names are written in ASCII,
Latin-1, UTF-8, UTF-16LE and UTF-16BE, at the start, middle and end of a value, in the first and
a later directory. Most variants also say which of the two outcomes paw chooses, so a test fails
if a rule is weakened (a value passed through) or over-tightened (a real shape refused).
"""

import struct
from types import SimpleNamespace

import pytest

from paw.errors import Unsupported, VerificationFailed
from paw.formats import prepare
from paw.verify import name_values, verify
from synth import aperio

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=False)
FULL = SimpleNamespace(keep_macro=False, full_scan=True)

NAME = "OKONKWO^BEATRIX"
NAME_ACCENTED = "MÜLLER^JÖRG-ÅSA"
ENCODINGS = {
    "ascii": NAME.encode("ascii"),
    "latin-1": NAME_ACCENTED.encode("latin-1"),
    "utf-8": NAME_ACCENTED.encode("utf-8"),
    "utf-16le": NAME.encode("utf-16-le"),
    "utf-16be": NAME.encode("utf-16-be"),
}
# Every form a planted name may take in the output.
FORMS = {text.encode(codec) for text in (NAME, NAME_ACCENTED)
         for codec in ("utf-8", "latin-1", "utf-16-le", "utf-16-be")}
# Pieces of the names long enough to mean something if they survive on their own.
PIECES = [b"OKONKWO", b"BEATRIX", "MÜLLER".encode("latin-1"), "MÜLLER".encode(),
          "OKONKWO".encode("utf-16-le"), "OKONKWO".encode("utf-16-be")]


def plant(value, position, encoding):
    """`value` (text) with the name inserted at its start, middle or end, as bytes."""
    raw, name = value.encode("latin-1"), ENCODINGS[encoding]
    cut = {"start": 0, "middle": len(raw) // 2, "end": len(raw)}[position]
    return raw[:cut] + name + raw[cut:]


def outcome(path, options=OPTIONS, extra=()):
    """('delivered'|'quarantined', reason, plan), checking the contract on the way: nothing
    planted is delivered, no reason or action quotes it, a refusal before editing leaves the
    file as it was."""
    with open(path, "rb") as fh:
        before = fh.read()
    try:
        module, plan, found = prepare(path, options)
    except Unsupported as exc:
        with open(path, "rb") as fh:
            assert fh.read() == before, "a slide refused before editing must be unchanged"
        _no_quote(str(exc))
        return "quarantined", str(exc), None
    _no_quote(" ".join(plan.actions))
    plan.apply(path)
    try:
        verify(path, module, plan, options, extra_values=extra)
    except VerificationFailed as exc:
        _no_quote(str(exc))
        return "quarantined", str(exc), plan
    with open(path, "rb") as fh:
        data = fh.read()
    left = [form for form in list(FORMS) + PIECES if form in data]
    assert left == [], f"delivered with the planted name: {left}"
    return "delivered", None, plan


def _no_quote(text):
    data = text.encode("utf-8")
    assert not any(form in data for form in FORMS) and NAME not in text and "MÜLLER" not in text


def properties(path):
    import openslide
    slide = openslide.OpenSlide(path)
    try:
        return dict(slide.properties)
    finally:
        slide.close()


# --- Aperio: kept keys carrying free text ---------------------------------------------------------

KEPT_KEYS = {"AppMag": "40", "MPP": "0.2520", "Left": "25.691574", "StripeWidth": "1000",
             "ICC Profile": "ScanScope v1", "ScannerType": "GT450", "Exposure Time": "109",
             "Originalheight": "33014"}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_aperio_kept_key_with_text_loses_the_item(tmp_path, encoding, position):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=aperio.item_edit("AppMag", plant("40", position, encoding), ("level0", "level1")))
    result, reason, plan = outcome(path)
    assert result == "delivered"
    # UTF-16 puts a NUL inside the value: what a reader sees ends there ("4", "40": typed, kept)
    assert properties(path).get("aperio.AppMag") in (None, "4", "40")
    if encoding not in ("utf-16le", "utf-16be"):
        assert "aperio.AppMag" not in properties(path)
        assert any(a.startswith("description: AppMag (not a number") for a in plan.actions)


@pytest.mark.parametrize("key", sorted(KEPT_KEYS))
@pytest.mark.parametrize("role", ["level0", "thumbnail", "level1"])
def test_aperio_every_kept_key_is_typed_in_every_directory(tmp_path, key, role):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=aperio.item_edit(key, plant(KEPT_KEYS[key], "end", "ascii"), (role,)))
    assert outcome(path)[0] == "delivered"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-16le"])
@pytest.mark.parametrize("key", ["ImageID", "Parmset", "Filename", "Title", "Barcode"])
def test_aperio_record_ids_and_free_text_keys_go(tmp_path, key, encoding):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=aperio.item_edit(key, plant("1004486", "end", encoding), ("level0", "thumbnail", "level1")))
    result, _, plan = outcome(path)
    assert result == "delivered"
    assert f"aperio.{key}" not in properties(path)
    assert f"description: {key} removed" in plan.actions


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_aperio_identifier_used_as_a_key(tmp_path, encoding):
    path = str(tmp_path / "slide.svs")

    def edit(role, text):
        return text.encode("latin-1") + b"|" + ENCODINGS[encoding] + b" = 1"
    aperio.write(path, edit=edit)
    result, _, plan = outcome(path)
    assert result == "delivered"
    assert "1 unknown description fields removed" in plan.actions  # counted, never named


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("position", ["start", "middle", "end"])
@pytest.mark.parametrize("role", ["level0", "level1"])
def test_aperio_first_item_with_a_name(tmp_path, encoding, position, role):
    path = str(tmp_path / "slide.svs")

    def edit(r, text):
        if r != role:
            return text
        first, _, rest = text.partition("|")
        return plant(first, position, encoding) + b"|" + rest.encode("latin-1")
    aperio.write(path, edit=edit)
    result, reason, plan = outcome(path)
    if role == "level0" and position == "start" and not encoding.startswith("utf-16"):
        # no longer `Aperio...`: not Aperio, and no other vendor paw knows
        assert result == "quarantined" and "unknown vendor" in reason
        return
    if encoding.startswith("utf-16") and role == "level0":
        # a NUL inside the first item ends what every reader sees there: before "Aperio" the
        # file is a generic TIFF to OpenSlide too (delivered as one, or refused), after it the
        # first item is what it was; either way the name is gone or the slide refused
        return
    assert result == "delivered"
    if role == "level0":
        assert properties(path)["openslide.comment"].startswith("Aperio|")


def test_aperio_first_item_real_shapes_are_kept(tmp_path):
    """The first items of the real fixtures and of public real files stay as they are."""
    real = ["Aperio Image Library v11.2.1 \r\n46000x32914 [42673,5576 2220x2967] (240x240) JPEG/RGB "
            "Q=30;Aperio Image Library v10.0.51\r\n46920x33014 [0,100 46000x32914] (256x256) JPEG/RGB Q=30",
            "Aperio Image Library v10.0.50\r\n16000x17597 [0,100 15374x17497] (256x256) -> 3843x4374 J2K/YUV16 Q=70",
            "Aperio Leica Biosystems GT450 v1.0.1\n63236x23770 [0,0,63236x23770] (256x256) JPEG/YCC Q=91",
            "Aperio Image Library vFS90 01\r\n159712x44759 [0,100 153271x44659] (256x256) JPEG/RGB Q=30",
            "Aperio Image, Grundium Ocus\n"]
    for first in real:
        path = str(tmp_path / "slide.svs")
        aperio.write(path, edit=lambda role, text, first=first: first + "|" + text.partition("|")[2])
        assert outcome(path)[0] == "delivered"
        assert properties(path)["openslide.comment"].startswith(first)


@pytest.mark.parametrize("tag", [271, 272, 305])
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
@pytest.mark.parametrize("value", [b"Aperio\0" + NAME.encode(), NAME.encode("latin-1"), b"ScanScope " + NAME.encode("utf-16-le")])
def test_aperio_make_model_software_go(tmp_path, tag, where, value):
    """Aperio writes none of them: all dropped, also text hidden after a NUL."""
    path = str(tmp_path / "slide.svs")
    aperio.write(path, **{where: {tag: (2, value)}})
    assert outcome(path)[0] == "delivered"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_aperio_description_text_after_nul(tmp_path, encoding):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, edit=lambda role, text: text.encode("latin-1") + b"\0" + ENCODINGS[encoding])
    assert outcome(path)[0] == "delivered"


# --- binary blobs paw keeps: ICC profiles, JPEG tables, structural tags -------------------------

def icc_profile(desc=b"sRGB built-in", cprt=b"No copyright, use freely", unicode=None,
                header=None, extra=(), gap=b""):
    """A minimal display profile (ICC.1 v2): desc (textDescriptionType, or mluc with `unicode`
    UTF-16BE text), cprt (textType), wtpt (XYZ). `header` patches header bytes {offset: bytes},
    `extra` adds (signature, type+data) tags, `gap` puts bytes after the last tag."""
    if unicode is None:
        desc_tag = (b"desc" + bytes(4) + struct.pack(">I", len(desc) + 1) + desc + b"\0"
                    + bytes(8) + bytes(3) + bytes(67))
    else:
        desc_tag = (b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS"
                    + struct.pack(">II", len(unicode), 28) + unicode)
    tags = [(b"desc", desc_tag), (b"cprt", b"text" + bytes(4) + cprt + b"\0"),
            (b"wtpt", b"XYZ " + bytes(4) + struct.pack(">3i", 63190, 65536, 54061)), *extra]
    table, data, at = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, payload in tags:
        table += struct.pack(">4sII", signature, at + len(data), len(payload))
        data += payload + bytes(-len(payload) % 4)
    body = struct.pack(">I", len(tags)) + table + data + gap
    head = bytearray(128)
    struct.pack_into(">I4sI4s4s4s", head, 0, 128 + len(body), b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    head[36:44] = b"acspAPPL"
    head[80:84] = b"lcms"
    for offset, raw in (header or {}).items():
        head[offset:offset + len(raw)] = raw
    return bytes(head) + body


ICC_VARIANTS = {
    "desc ascii": dict(desc=NAME.encode()),
    "desc latin-1": dict(desc=NAME_ACCENTED.encode("latin-1")),
    "desc mluc utf-16be": dict(unicode=NAME.encode("utf-16-be")),
    "cprt": dict(cprt=b"(c) " + NAME.encode()),
    "header manufacturer and model": dict(header={48: b"OKON", 52: b"KWO^"}),
    "header reserved bytes": dict(header={100: NAME.encode()}),
    "padding after the tags": dict(gap=NAME.encode() + b"\0"),
}


@pytest.mark.parametrize("variant", sorted(ICC_VARIANTS))
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_icc_profile_text_is_blanked(tmp_path, variant, where):
    import tifffile
    from paw.formats import icc
    path = str(tmp_path / "slide.svs")
    aperio.write(path, **{where: {34675: (7, icc_profile(**ICC_VARIANTS[variant]))}})
    result, _, _ = outcome(path)
    assert result == "delivered"
    with open(path, "rb") as fh:
        assert b"OKON" not in fh.read()
    with tifffile.TiffFile(path) as tf:  # still a profile, its colour data kept
        page = tf.pages[0 if where == "extra_tags" else 2]
        profile = page.tags[34675].value
        assert icc.texts(profile) and all(text in icc.KNOWN_TEXTS for _, text in icc.texts(profile))


def test_icc_profile_paw_cannot_type_is_dropped(tmp_path):
    import tifffile
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, NAME.encode() * 20)})
    result, _, plan = outcome(path)
    assert result == "delivered" and "ICC profile removed (an ICC profile paw cannot type)" in plan.actions
    with tifffile.TiffFile(path) as tf:
        assert 34675 not in tf.pages[0].tags


def test_icc_tag_outside_the_icc_table_is_removed(tmp_path):
    """A `meta` dictionary (or any signature the ICC tag table does not list) goes from the
    tag table; the profile's colour stays."""
    import tifffile
    from paw.formats import icc
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, icc_profile(extra=[(b"meta", b"dict" + bytes(4) + NAME.encode("utf-16-be"))]))})
    result, _, plan = outcome(path)
    assert result == "delivered" and "1 ICC profile tags outside the ICC tag table removed" in plan.actions
    with tifffile.TiffFile(path) as tf:
        assert [s for s, *_ in icc.tags(tf.pages[0].tags[34675].value)] == [b"desc", b"cprt", b"wtpt"]


def test_the_real_sRGB_profile_is_kept_but_for_its_date(tmp_path):
    """lcms2's built-in sRGB (what the real boxes.tiff carries): texts known, date zeroed."""
    from PIL import ImageCms
    import tifffile
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={34675: (7, profile)})
    assert outcome(path)[0] == "delivered"
    with tifffile.TiffFile(path) as tf:
        kept = tf.pages[0].tags[34675].value
    assert kept[:24] == profile[:24] and kept[36:] == profile[36:] and kept[24:36] == bytes(12)


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


TABLES = _segment(0xDB, bytes([0]) + bytes(range(1, 65))) + _segment(0xC4, bytes([0]) + bytes(16) + bytes(12))


@pytest.mark.parametrize("tables", [
    b"\xff\xd8" + _segment(0xFE, NAME.encode()) + TABLES + b"\xff\xd9",
    b"\xff\xd8" + TABLES + _segment(0xE1, b"Exif\0\0" + NAME.encode("utf-16-le")) + b"\xff\xd9",
    b"\xff\xd8" + TABLES + _segment(0xEC, b"Ducky" + NAME_ACCENTED.encode("latin-1")) + b"\xff\xd9",
    b"\xff\xd8" + TABLES + b"\xff\xd9" + NAME.encode(),
])
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_jpeg_tables_keep_only_tables(tmp_path, tables, where):
    import tifffile
    from paw.formats import jpeg
    path = str(tmp_path / "slide.svs")
    aperio.write(path, **{where: {347: (7, tables)}})
    assert outcome(path)[0] == "delivered"
    with tifffile.TiffFile(path) as tf:
        kept = tf.pages[0 if where == "extra_tags" else 2].tags[347].value
    assert kept == b"\xff\xd8" + TABLES + b"\xff\xd9" and jpeg.unexplained(kept) == []


def test_jpeg_tables_that_do_not_parse_refuse_the_slide(tmp_path):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, extra_tags={347: (7, b"\xff\xd8" + NAME.encode() * 4)})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "JPEGTables" in reason


@pytest.mark.parametrize("tag, value", [
    (319, (2, NAME)),                       # PrimaryChromaticities typed ASCII
    (32998, (2, NAME_ACCENTED.encode())),   # TileDepth typed ASCII, UTF-8
    (340, (2, NAME.encode("utf-16-le"))),   # SMinSampleValue typed ASCII, UTF-16
    (32997, (7, NAME.encode())),            # ImageDepth typed UNDEFINED
    (258, (1, NAME.encode())),              # BitsPerSample typed BYTE
])
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_structural_tag_holding_text_refuses_the_slide(tmp_path, tag, value, where):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, **{where: {tag: value}})
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None  # refused before anything was written
    assert "not a number" in reason or "not numbers" in reason


@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_numbers_that_spell_text_are_caught_by_the_audit(tmp_path, where):
    """WhitePoint is two RATIONALs: 16 bytes that can spell a name; the scrubber keeps typed
    numbers, the audit's printable-run scan refuses them."""
    raw = NAME.encode().ljust(16, b"!")
    pairs = [struct.unpack("<II", raw[i:i + 8]) for i in (0, 8)]
    path = str(tmp_path / "slide.svs")
    aperio.write(path, **{where: {318: (5, pairs)}})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "printable text" in reason


# --- labels paw does not recognise: decided by geometry -----------------------------------------

def test_aperio_label_stored_tiled_is_destroyed(tmp_path):
    path = str(tmp_path / "slide.svs")
    aperio.write(path, label_style="tiled")
    result, _, plan = outcome(path, FULL)
    assert result == "delivered"
    with open(path, "rb") as fh:
        assert b"LABEL-PIXELS" not in fh.read()
    assert "unknown image destroyed" in plan.actions


def test_aperio_label_at_directory_1_without_marks_is_destroyed(tmp_path):
    """OpenSlide would show it as `thumbnail`; its aspect is not the slide's."""
    import openslide
    path = str(tmp_path / "slide.svs")
    aperio.write(path, label_style="thumbnail")
    assert "thumbnail" in openslide.OpenSlide(path).associated_images
    assert outcome(path, FULL)[0] == "delivered"
    assert openslide.OpenSlide(path).associated_images.keys() == set()
    with open(path, "rb") as fh:
        assert b"LABEL-PIXELS" not in fh.read()


def test_generic_reduced_image_that_is_not_a_level_is_destroyed(tmp_path):
    from synth import generic, label_pixels, tiled
    from synth import TILE
    label = tiled({254: (4, 1)}, 300, 200)
    label.chunks = [label_pixels(TILE, TILE)] * len(label.chunks)
    path = str(tmp_path / "slide.tif")
    generic.write(path, extra_images=[label])
    result, _, plan = outcome(path, FULL)
    assert result == "delivered"
    with open(path, "rb") as fh:
        assert b"LABEL-PIXELS" not in fh.read()


@pytest.mark.parametrize("vendor", ["philips", "ventana"])
def test_tiled_image_that_is_not_a_level_refuses_a_vendor_that_counts_levels(tmp_path, vendor):
    """Philips needs one pixel spacing per tiled level, Ventana numbered levels: destroying a
    tiled image would break the slide, keeping it would keep a label."""
    from synth import philips, tiled, ventana
    path = str(tmp_path / "slide.tif")
    if vendor == "philips":
        philips.write(path, extra_images=[tiled({254: (4, 1)}, 300, 200)])
    else:
        ventana.write(path, extra_images=[tiled({270: (2, "level=2 mag=5 quality=90")}, 300, 200)])
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "not a pyramid level" in reason


def test_leica_directory_no_image_uses_is_destroyed(tmp_path):
    from synth import label_pixels, leica, tiled
    from synth import TILE
    label = tiled({}, 256, 256)
    label.chunks = [label_pixels(TILE, TILE)]
    path = str(tmp_path / "slide.scn")
    leica.write(path, extra_images=[label])
    assert outcome(path, FULL)[0] == "delivered"
    with open(path, "rb") as fh:
        assert b"LABEL-PIXELS" not in fh.read()


def test_ndpi_directory_with_an_unknown_lens_is_destroyed(tmp_path):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, later_tags={65421: (11, -3.0)})
    result, _, plan = outcome(path)
    assert result == "delivered" and "unknown image destroyed" in plan.actions


# --- NDPI: the properties text, vendor text tags, strip comments ---------------------------------

def _ndpi_properties(*lines):
    """The synthetic properties with lines added (str, or bytes in another encoding)."""
    from synth import ndpi
    base = ndpi.PROPERTIES.encode("latin-1")
    return base[:base.index(b";NDP")] + b"".join(
        (line if isinstance(line, bytes) else line.encode("latin-1")) + b"\r\n" for line in lines) \
        + base[base.index(b";NDP"):]


NDPI_LINES = {
    "new key under a kept prefix": lambda e: b"roi.patient=" + ENCODINGS[e],
    "kept key, text in its value": lambda e: b"roi.slide.macro=68,279,1256," + ENCODINGS[e],
    "product": lambda e: b"Product=" + ENCODINGS[e],
    "number then text": lambda e: b"PSHV=179 " + ENCODINGS[e],
    "identifier as a key": lambda e: ENCODINGS[e] + b"=1",
    "hex that spells the name": lambda e: b"AHEX[0]=" + ENCODINGS[e].hex().upper().encode(),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("variant", sorted(NDPI_LINES))
def test_ndpi_properties_keep_typed_lines_only(tmp_path, variant, encoding):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, properties=_ndpi_properties(NDPI_LINES[variant](encoding)))
    result, _, plan = outcome(path)
    assert result == "delivered"
    props = properties(path)
    assert props["hamamatsu.Objective.Lens.Magnificant"] == "20.00"  # typed lines stay
    assert "hamamatsu.roi.patient" not in props and props["hamamatsu.Product"] == "C13210-01"


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_ndpi_kept_value_with_text(tmp_path, position):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, properties=_ndpi_properties(b"calibration.version=" + plant("249", position, "ascii")))
    assert outcome(path)[0] == "delivered"


def test_ndpi_properties_text_after_nul(tmp_path):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, properties=ndpi.PROPERTIES.encode("latin-1") + b"\0" + NAME.encode())
    assert outcome(path)[0] == "delivered"


@pytest.mark.parametrize("tag, value", [
    (65434, (2, NAME)),                                  # Fluorescence: free text
    (65427, (2, NAME_ACCENTED.encode())),                # SlideLabel/Reference
    (65442, (2, NAME.encode("utf-16-le"))),              # ScannerSerialNumber
    (271, (2, b"Hamamatsu\0" + NAME.encode())),          # Make, text after the NUL
    (272, (2, "C9600-12 " + NAME)),                      # Model with text
    (305, (2, NAME_ACCENTED.encode("latin-1"))),         # Software
    (65448, (2, NAME)),                                  # FirmwareVersion
])
@pytest.mark.parametrize("where", ["extra_tags", "later_tags"])
def test_ndpi_vendor_text_tags_go(tmp_path, tag, value, where):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, **{where: {tag: value}})
    result, reason, _ = outcome(path)
    if tag == 271:  # tifffile needs Make to read NDPI: refused, naming the field
        assert result == "quarantined" and "Make" in reason
    else:
        assert result == "delivered"


def test_ndpi_real_product_strings_are_kept(tmp_path):
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path)
    outcome(path)
    props = properties(path)
    assert (props["tiff.Make"], props["tiff.Model"], props["tiff.Software"]) == \
        ("Hamamatsu", "C13210-01", "NDP.scan 3.2.12")


@pytest.mark.parametrize("comment", [NAME.encode(), b"Hamamatsu NanoZoomer Digital Pathology " + NAME.encode(),
                                     NAME.encode("utf-16-le")])
def test_ndpi_strip_comment_with_text_refuses_before_editing(tmp_path, comment):
    """Strips are image payload paw never rewrites: a comment it cannot explain refuses."""
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path, level_comment=comment)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "COM segment" in reason


# --- XML vendors: Philips, Ventana, Leica, iSyntax -----------------------------------------------

def _encoded(encoding):
    """The name as it can appear inside XML text: ASCII, Latin-1/UTF-8 bytes, or UTF-16."""
    return ENCODINGS[encoding]


def _philips_with(monkeypatch, change):
    from synth import philips
    full = philips.description
    monkeypatch.setattr(philips, "description", lambda levels: change(full(levels).encode("latin-1")))
    return philips


PHILIPS_VARIANTS = {
    "text after the root": lambda x, n: x + n,
    "text after a NUL": lambda x, n: x + b"\0" + n,
    "extra attribute": lambda x, n: x.replace(b'<Attribute Name="DICOM_MANUFACTURER"',
                                              b'<Attribute Comment="' + n + b'" Name="DICOM_MANUFACTURER"', 1),
    "free text in a kept attribute": lambda x, n: x.replace(b">PHILIPS<", b">PHILIPS " + n + b"<", 1),
    "name used as an attribute name": lambda x, n: x.replace(b"</DataObject>", b'<Attribute Name="' + n
                                                            + b'" Group="0x0001" Element="0x0001" PMSVR="IString">1</Attribute></DataObject>', 1),
    "comment": lambda x, n: x.replace(b"<Attribute", b"<!-- " + n + b" --><Attribute", 1),
    "processing instruction": lambda x, n: x.replace(b"<Attribute", b"<?note " + n + b"?><Attribute", 1),
    "CDATA": lambda x, n: x.replace(b">PHILIPS<", b"><![CDATA[" + n + b"]]><", 1),
    "text between elements": lambda x, n: x.replace(b"</Attribute><Attribute", b"</Attribute>" + n + b"<Attribute", 1),
    "character references": lambda x, n: x.replace(b">PHILIPS<", b">" + b"".join(b"&#%d;" % c for c in NAME.encode()) + b"<", 1),
    "unknown element": lambda x, n: x.replace(b"</DataObject>", b"<Note>" + n + b"</Note></DataObject>", 1),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("variant", sorted(PHILIPS_VARIANTS))
def test_philips_xml_hiding_places(tmp_path, monkeypatch, variant, encoding):
    philips = _philips_with(monkeypatch, lambda x: PHILIPS_VARIANTS[variant](x, _encoded(encoding)))
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    result, _, plan = outcome(path)
    if encoding.startswith("utf-16"):
        return  # its NULs cut the XML short: cut out, or the document no longer parses (refused)
    assert result == "delivered"
    assert properties(path)["openslide.vendor"] == "philips"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_philips_kept_attribute_with_text_loses_its_value(tmp_path, monkeypatch, position, encoding):
    philips = _philips_with(monkeypatch, lambda x: x.replace(
        b">PHILIPS<", b">" + plant("PHILIPS", position, encoding) + b"<", 1))
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    result, _, plan = outcome(path)
    assert result == "delivered" and properties(path).get("philips.DICOM_MANUFACTURER", "") == ""
    assert any(a.startswith("XML: DICOM_MANUFACTURER (not") for a in plan.actions)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_philips_level_description_in_a_later_directory_goes(tmp_path, encoding):
    from synth import philips
    path = str(tmp_path / "slide.tiff")
    philips.write(path, later_tags={270: (2, b"level=1 " + ENCODINGS[encoding])})
    assert outcome(path)[0] == "delivered"


def test_philips_object_type_with_a_name_refuses(tmp_path, monkeypatch):
    philips = _philips_with(monkeypatch, lambda x: x.replace(b'ObjectType="DPScannedImage"',
                                                            b'ObjectType="' + NAME.encode() + b'"', 1))
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    assert outcome(path)[0] == "quarantined"


def test_philips_software_must_be_philips_dp(tmp_path):
    from synth import philips
    path = str(tmp_path / "slide.tiff")
    philips.write(path, later_tags={305: (2, "Philips DP v1.0 " + NAME)})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "Software" in reason


def _xmp_with(monkeypatch, change, function="xmp"):
    from synth import ventana
    full = getattr(ventana, function)
    monkeypatch.setattr(ventana, function, lambda *a: change(full(*a)))
    return ventana


VENTANA_VARIANTS = {  # (xmp function, change, outcome)
    "iScan extra attribute": ("xmp", lambda x, n: x.replace(b"<iScan ", b'<iScan Patient="' + n + b'" ', 1), "delivered"),
    "iScan magnification with text": ("xmp", lambda x, n: x.replace(b'Magnification="40"', b'Magnification="40 ' + n + b'"'), "delivered"),
    "iScan scanner model with text": ("xmp", lambda x, n: x.replace(b'DP 200"', b'DP 200 ' + n + b'"'), "delivered"),
    "comment": ("xmp", lambda x, n: x.replace(b"<ProcessingParameters>", b"<!--" + n + b"--><ProcessingParameters>"), "delivered"),
    "text after the root": ("xmp", lambda x, n: x + n, "delivered"),
    "text inside an element": ("xmp", lambda x, n: x.replace(b"</iScan>", n + b"</iScan>"), "delivered"),
    "unknown element": ("xmp", lambda x, n: x.replace(b"</Metadata>", b'<Patient Name="' + n + b'"/></Metadata>'), "delivered"),
    "EncodeInfo extra attribute": ("encode_info", lambda x, n: x.replace(b'<SlideStitchInfo ', b'<SlideStitchInfo Note="' + n + b'" '), "delivered"),
    "EncodeInfo unknown element": ("encode_info", lambda x, n: x.replace(b"</EncodeInfo>", b"<Operator>" + n + b"</Operator></EncodeInfo>"), "delivered"),
    "EncodeInfo text after a NUL": ("encode_info", lambda x, n: x + b"\0" + n, "delivered"),
    "EncodeInfo geometry with text": ("encode_info", lambda x, n: x.replace(b'Width="256"', b'Width="256 ' + n + b'"'), "quarantined"),
    "EncodeInfo direction with text": ("encode_info", lambda x, n: x.replace(b'Direction="RIGHT"', b'Direction="' + n + b'"'), "quarantined"),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("variant", sorted(VENTANA_VARIANTS))
def test_ventana_xmp_hiding_places(tmp_path, monkeypatch, variant, encoding):
    function, change, expected = VENTANA_VARIANTS[variant]
    ventana = _xmp_with(monkeypatch, lambda x: change(x, _encoded(encoding)), function)
    path = str(tmp_path / "slide.bif")
    ventana.write(path)
    result, _, _ = outcome(path)
    if encoding.startswith("utf-16"):
        return  # its NULs cut the packet short: cut out, or it no longer parses (refused)
    assert result == expected
    if result == "delivered":
        props = properties(path)
        assert props["openslide.vendor"] == "ventana" and props["ventana.ScanRes"] == "0.25"


def test_ventana_real_dp200_layout_is_edited_in_place_not_longer(tmp_path):
    """The DP 200 iScan packet and the level-0 EncodeInfo: only the dropped values' bytes go."""
    import tifffile
    from synth import ventana
    path = str(tmp_path / "slide.bif")
    ventana.write(path)
    assert outcome(path)[0] == "delivered"
    with tifffile.TiffFile(path) as tf:
        kept = tf.pages[0].tags[700].value
        encode = tf.pages[1].tags[700].value  # level 0, now that the thumbnail is gone
    assert kept.startswith(b"<?xml version='1.0' encoding='utf-8' ?>\n<Metadata>\n  <iScan Mode=\"brightfield\"")
    assert b'ScanWhitePoint="235"' in kept and len(kept) < len(ventana.xmp())
    assert b'Direction="RIGHT"' in encode and b"OutputFileName" not in encode


@pytest.mark.parametrize("description, expected", [
    ("level=0 mag=40 quality=90 " + NAME, "delivered"),
    ("level=0 mag=40 quality=90 patient=" + NAME, "delivered"),
    ("level=0 mag=" + NAME, "quarantined"),
])
def test_ventana_level_description(tmp_path, description, expected):
    from synth import ventana
    path = str(tmp_path / "slide.bif")
    ventana.write(path, level_description=description)
    assert outcome(path)[0] == expected


def _leica_with(monkeypatch, change):
    from synth import leica
    full = leica.description
    monkeypatch.setattr(leica, "description", lambda w, h: change(full(w, h).encode("latin-1")))
    return leica


LEICA_VARIANTS = {
    "text after the root": (lambda x, n: x + n, "delivered"),
    "extra attribute on an image": (lambda x, n: x.replace(b'<image name="', b'<image note="' + n + b'" name="', 1), "delivered"),
    "objective with text": (lambda x, n: x.replace(b"<objective>20<", b"<objective>20 " + n + b"<"), "quarantined"),
    "aperture with text": (lambda x, n: x.replace(b"<numericalAperture>0.4<", b"<numericalAperture>" + n + b"<"), "delivered"),
    "device model with a name": (lambda x, n: x.replace(b'model="Leica SCN400;Leica SCN"', b'model="Leica ' + n + b'"'), "delivered"),
    "comment": (lambda x, n: x.replace(b"<collection", b"<!--" + n + b"--><collection"), "delivered"),
    "unknown element": (lambda x, n: x.replace(b"</scanSettings>", b"<operator>" + n + b"</operator></scanSettings>"), "delivered"),
    "namespace declaration": (lambda x, n: x.replace(b"<scn ", b'<scn xmlns:p="' + n + b'" ', 1), "delivered"),
    "geometry with text": (lambda x, n: x.replace(b'offsetX="10000000"', b'offsetX="' + n + b'"'), "quarantined"),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("variant", sorted(LEICA_VARIANTS))
def test_leica_xml_hiding_places(tmp_path, monkeypatch, variant, encoding):
    change, expected = LEICA_VARIANTS[variant]
    leica = _leica_with(monkeypatch, lambda x: change(x, _encoded(encoding)))
    path = str(tmp_path / "slide.scn")
    leica.write(path)
    result, _, _ = outcome(path)
    if result == "delivered":  # every delivered Leica slide must open (OpenSlide's quickhash)
        assert properties(path)["openslide.vendor"] == "leica"
    if encoding.startswith("utf-16"):
        return  # its NULs cut the XML short: cut out, or it no longer parses (refused)
    assert result == expected


ISYNTAX_VARIANTS = {
    "text after the root": (lambda x, n: x + n, "delivered"),
    "extra attribute": (lambda x, n: x.replace(b'<Attribute Name="DICOM_MANUFACTURER"', b'<Attribute X="' + n + b'" Name="DICOM_MANUFACTURER"', 1), "delivered"),
    "free text in a kept attribute": (lambda x, n: x.replace(b">PHILIPS<", b">" + n + b"<", 1), "delivered"),
    "codec value with text": (lambda x, n: x.replace(b">spatial<", b">" + n + b"<", 1), "quarantined"),
    "unknown codec attribute": (lambda x, n: x.replace(b"</DataObject>\r\n", b'<Attribute Name="UFS_IMAGE_NOTE" Group="0x301D" Element="0x2099" PMSVR="IString">' + n + b"</Attribute></DataObject>\r\n"), "quarantined"),
}


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
@pytest.mark.parametrize("variant", sorted(ISYNTAX_VARIANTS))
def test_isyntax_header_hiding_places(tmp_path, variant, encoding):
    from synth import isyntax
    change, expected = ISYNTAX_VARIANTS[variant]
    path = tmp_path / "slide.isyntax"
    isyntax.write(str(path))
    data = path.read_bytes()
    end = data.index(b"\r\n\x04")
    header = change(data[:end] + b"\r\n", ENCODINGS[encoding])
    path.write_bytes(header[:-2] + data[end:])
    result, _, _ = outcome(str(path))
    assert result == expected


# --- the original name, its parts, every encoding ---------------------------------------------------

def test_a_part_of_the_file_name_in_a_typed_field_is_caught(tmp_path):
    """"123456" of "OKONKWO 2026-123456 HE" where a typed number may stand: the audit explains
    it (a number), the search for the name's parts does not let it pass."""
    stem = "OKONKWO 2026-123456 HE"
    path = str(tmp_path / f"{stem}.svs")
    aperio.write(path, edit=lambda role, text: text.replace("OriginalWidth = 46920", "OriginalWidth = 123456"))
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="removed value"):
        verify(path, module, plan, OPTIONS, extra_values=name_values(stem))


def test_a_plain_slide_with_that_name_is_delivered(tmp_path):
    stem = "OKONKWO 2026-123456 HE"
    path = str(tmp_path / f"{stem}.svs")
    aperio.write(path)
    assert outcome(path, extra=name_values(stem))[0] == "delivered"


@pytest.mark.parametrize("codec", ["utf-8", "latin-1", "utf-16-le", "utf-16-be"])
def test_name_parts_are_found_in_every_encoding(tmp_path, codec):
    """With verify.full_scan tile data is searched too: the accession in any encoding, here in
    the pixels of an uncompressed tile (which no walk can call wrong)."""
    import tifffile
    stem = "MÜLLER 2026-123456 HE"
    path = str(tmp_path / f"{stem}.svs")
    aperio.write(path, sparse=True)
    with tifffile.TiffFile(path) as tf:
        offset = int(tf.pages[0].dataoffsets[0])
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        fh.write("2026-123456".encode(codec))
    module, plan, _ = prepare(path, FULL)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="removed value"):
        verify(path, module, plan, FULL, extra_values=name_values(stem))


def test_name_parts_are_searched_in_four_encodings():
    from paw.verify import needles
    parts = name_values("MÜLLER 2026-123456 HE")
    assert "2026-123456" in parts and "123456" in parts and "HE" not in parts
    found = needles(["2026-123456", "MÜLLER"])
    for codec in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
        assert "2026-123456".encode(codec) in found and "MÜLLER".encode(codec) in found
    # read from a file as Latin-1 but really UTF-8: also searched as what it spells
    assert "MÜLLER".encode("utf-16-le") in needles(["MÜLLER".encode().decode("latin-1")])


# --- vendors paw does not fully understand are refused, never "generic" -------------------------

@pytest.mark.parametrize("tags, vendor", [
    ({305: (2, "MedScan 5.0"), 270: (2, "Objective Power=20;OverlapsXY=64 64;" + NAME)}, "Trestle"),
    ({271: (2, "Huron Digital Pathology")}, "Huron"),
    ({65000: (2, "<Argos.Scan.Metadata>" + NAME + "</Argos.Scan.Metadata>")}, "Argos"),
    ({270: (2, "ImageJ=1.52a\nimages=1")}, "ImageJ"),
    ({305: (2, "PerkinElmer-QPI")}, "PerkinElmer"),
    ({270: (2, "Patient " + NAME)}, "description paw cannot read"),
    ({40000: (4, 7)}, "private tag 40000"),
])
def test_unknown_vendors_are_refused(tmp_path, tags, vendor):
    from synth import generic
    path = str(tmp_path / "slide.tif")
    generic.write(path, extra_tags=tags)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and vendor in reason


# --- independence: a scrubber that forgets is caught by the audit ---------------------------------

def test_audit_catches_an_aperio_scrubber_that_keeps_everything(tmp_path, monkeypatch):
    from paw.formats import aperio as vendor
    monkeypatch.setattr(vendor, "scrub_description", lambda text: (text, [], [], 0))
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "ImageDescription" in reason


def test_audit_catches_an_ndpi_scrubber_that_keeps_everything(tmp_path, monkeypatch):
    from paw.formats import ndpi as vendor
    from synth import ndpi
    monkeypatch.setattr(vendor, "scrub_properties", lambda text: (text, [], [], 0))
    path = str(tmp_path / "slide.ndpi")
    ndpi.write(path)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "NDPI properties line" in reason


def test_audit_catches_a_surgery_that_keeps_every_tag(tmp_path, monkeypatch):
    from paw.formats.surgery import Surgery
    monkeypatch.setattr(Surgery, "keep_typed", lambda self, directory, rules: None)
    path = str(tmp_path / "slide.svs")
    aperio.write(path)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "a tag the allow-list does not keep" in reason


@pytest.mark.parametrize("vendor", ["philips", "ventana"])
def test_audit_catches_an_xml_scrubber_that_keeps_everything(tmp_path, monkeypatch, vendor):
    import importlib
    module = importlib.import_module(f"paw.formats.{vendor}")
    monkeypatch.setattr(module.Scrub, "result", lambda self: self.document.text)
    synth = importlib.import_module(f"synth.{vendor}")
    path = str(tmp_path / "slide.tif")
    synth.write(path)
    result, reason, _ = outcome(path)
    assert result == "quarantined"


def test_philips_keep_macro_keeps_a_clean_base64_macro_only(tmp_path, monkeypatch):
    import base64
    from synth import philips
    keep = SimpleNamespace(keep_macro=True, full_scan=False)
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    assert outcome(path, keep)[0] == "delivered"
    assert properties(path)["openslide.vendor"] == "philips"
    with open(path, "rb") as fh:
        assert base64.b64encode(philips.small_jpeg(200)) in fh.read()
    full = philips.description
    monkeypatch.setattr(philips, "description", lambda levels: full(levels, macro_comment=NAME.encode()))
    philips.write(path)
    result, _, plan = outcome(path, keep)
    assert result == "delivered" and "XML: MACROIMAGE (base64 image) removed" in plan.actions


# --- tile headers: sampled by default, every tile with verify.full_scan --------------------------

def _jpeg_with(segment):
    """A JPEG tile with `segment` inserted after SOI (COM or APPn with the name)."""
    data = jpeg_tile_bytes()
    return data[:2] + segment + data[2:]


def jpeg_tile_bytes():
    """A JPEG tile of its own (the generator's function may be the test's replacement)."""
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (9, 9, 9)).save(out, "JPEG", quality=70)
    return out.getvalue()


TILE_SEGMENTS = {
    "COM ascii": _segment(0xFE, NAME.encode()),
    "COM latin-1": _segment(0xFE, NAME_ACCENTED.encode("latin-1")),
    "APP1 Exif utf-16": _segment(0xE1, b"Exif\0\0" + NAME.encode("utf-16-le")),
    "APP13 IPTC utf-8": _segment(0xED, b"Photoshop 3.0\0" + NAME_ACCENTED.encode()),
    "APP0 JFXX thumbnail": _segment(0xE0, b"JFXX\0\x10" + NAME.encode("utf-16-be")),
}


@pytest.mark.parametrize("segment", sorted(TILE_SEGMENTS))
@pytest.mark.parametrize("tile", [0, 47], ids=["first", "last"])
def test_text_in_a_sampled_tile_header_refuses_before_editing(tmp_path, monkeypatch, segment, tile):
    from synth import aperio as writer
    real = writer.jpeg_tile
    monkeypatch.setattr(writer, "jpeg_tile", lambda index, level: _jpeg_with(TILE_SEGMENTS[segment])
                        if (index, level) == (tile, 0) else real(index, level))
    path = str(tmp_path / "slide.svs")
    writer.write(path, tile_compression=7)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and f"directory 0 tile {tile}:" in reason


def test_text_in_an_unsampled_tile_header_is_found_with_full_scan(tmp_path, monkeypatch):
    from synth import aperio as writer
    real = writer.jpeg_tile
    monkeypatch.setattr(writer, "jpeg_tile", lambda index, level: _jpeg_with(_segment(0xFE, NAME.encode()))
                        if (index, level) == (3, 0) else real(index, level))
    path = str(tmp_path / "slide.svs")
    writer.write(path, tile_compression=7)
    result, reason, _ = outcome(path, FULL)
    assert result == "quarantined" and "tile 3" in reason


def test_text_after_the_scan_is_found_with_full_scan(tmp_path, monkeypatch):
    """A COM segment inside the entropy-coded data (a second scan's header) and text after EOI."""
    from synth import aperio as writer
    real = writer.jpeg_tile
    for tail in (_segment(0xFE, NAME.encode()) + b"\xff\xd9", NAME.encode() * 2):
        hidden = real(0, 0)[:-2] + (tail if tail.startswith(b"\xff") else b"\xff\xd9" + tail)
        monkeypatch.setattr(writer, "jpeg_tile", lambda index, level, h=hidden: h if (index, level) == (0, 0)
                            else real(index, level))
        path = str(tmp_path / "slide.svs")
        writer.write(path, tile_compression=7)
        result, reason, _ = outcome(path, FULL)
        assert result == "quarantined" and "tile 0" in reason


def test_jpeg2000_tile_comments(tmp_path, monkeypatch):
    """OpenJPEG's own COM is explained; a COM with a name in a JPEG 2000 tile refuses."""
    import io

    from PIL import Image
    from synth import aperio as writer
    path = str(tmp_path / "slide.svs")
    writer.write(path, tile_compression=33005)
    assert outcome(path)[0] == "delivered"

    def named(index, level):
        out = io.BytesIO()
        Image.new("RGB", (256, 256), (1, 2, 3)).save(out, "JPEG2000", no_jp2=True, comment=NAME)
        return out.getvalue()
    monkeypatch.setattr(writer, "j2k_tile", named)
    writer.write(path, tile_compression=33005)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "JPEG 2000 COM segment" in reason


def test_real_jpeg_tiles_pass(tmp_path):
    from synth import aperio as writer
    path = str(tmp_path / "slide.svs")
    writer.write(path, tile_compression=7)
    assert outcome(path, FULL)[0] == "delivered"
    assert properties(path)["openslide.vendor"] == "aperio"


@pytest.mark.parametrize("keep_macro", [False, True])
def test_philips_image_data_outside_a_kept_macro_goes(tmp_path, monkeypatch, keep_macro):
    """Found by the fuzzer (iSyntax, a damaged image type): base64 image data is kept only in a
    MACROIMAGE with keep_macro, never because it happens to be a clean JPEG."""
    import base64
    philips = _philips_with(monkeypatch, lambda x: x.replace(b">MACROIMAGE<", b">MACROIMAGF<", 1))
    path = str(tmp_path / "slide.tiff")
    philips.write(path)
    assert outcome(path, SimpleNamespace(keep_macro=keep_macro, full_scan=False))[0] == "delivered"
    with open(path, "rb") as fh:
        assert base64.b64encode(philips.small_jpeg(200))[-60:] not in fh.read()


def test_aperio_level_marked_as_a_reduced_image_stays_a_level(tmp_path):
    """NewSubfileType 1 on a tiled directory is TIFF's reduced-image bit, not Aperio's label:
    a directory that is a pyramid level by geometry stays one."""
    import openslide
    path = str(tmp_path / "slide.svs")
    aperio.write(path, later_tags={254: (4, 1)})
    assert openslide.OpenSlide(path).level_count == 2
    assert outcome(path)[0] == "delivered"
    assert openslide.OpenSlide(path).level_count == 2
