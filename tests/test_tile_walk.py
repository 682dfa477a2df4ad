"""Red team 14, F1/F4/F8: text in the tiles and strips paw keeps, and in iSyntax's binary part.

A kept tile is read whole (tileheaders.py): a JPEG, JPEG 2000 or deflate stream that must end
exactly where the tile's byte count ends, with no segment that may carry text; NDPI level strips
by their restart intervals. By default the first, the last and DRAWN tiles drawn with `secrets`
per image; every tile with verify.full_scan. Every variant here ends quarantined with a reason
naming the tile, or delivered clean (NUL padding, real output) — never delivered with the text.
Hostile values are our own: a name and an accession in ASCII, Latin-1, UTF-8, UTF-16LE/BE, and a
short id that a printable-run heuristic would miss.
"""

import io
import os
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from paw.formats import tileheaders
from paw.formats.tifftags import Tag, Type
from paw.verify import name_values
from test_tiff_hostile import FULL, OPTIONS, outcome

NAME = "OKONKWO^BEATRIX"
ACCENTED = "MÜLLER^JÖRG-ÅSA"
TEXTS = {
    "ascii": NAME.encode(),
    "latin-1": ACCENTED.encode("latin-1"),
    "utf-8": ACCENTED.encode("utf-8"),
    "utf-16le": NAME.encode("utf-16-le"),
    "utf-16be": NAME.encode("utf-16-be"),
    "short id": b"K4711-09",
    "greek utf-8": "Ωμέγα Ζήτα".encode(),
}


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_tile(shade=9, size=256):
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (size, size), (shade, 2 * shade % 256, 128)).save(out, "JPEG", quality=70)
    return out.getvalue()


def j2k_tile(shade=9, **extra):
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (shade, 3, 7)).save(out, "JPEG2000", no_jp2=True, irreversible=False, **extra)
    return out.getvalue()


# How each hiding place changes one plain stream (`text` is the planted bytes).
JPEG_PLACES = {
    "COM after SOI": lambda d, t: d[:2] + _segment(0xFE, t) + d[2:],
    "APP1 Exif": lambda d, t: d[:2] + _segment(0xE1, b"Exif\0\0" + t) + d[2:],
    "APP1 XMP": lambda d, t: d[:2] + _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x>" + t + b"</x>") + d[2:],
    "APP13 IPTC": lambda d, t: d[:2] + _segment(0xED, b"Photoshop 3.0\0" + t) + d[2:],
    "APP15": lambda d, t: d[:2] + _segment(0xEF, t) + d[2:],
    "COM before EOI": lambda d, t: d[:-2] + _segment(0xFE, t) + d[-2:],
    "after EOI": lambda d, t: d + t,
    "after EOI and NULs": lambda d, t: d + bytes(16) + t,
}
J2K_PLACES = {
    "main-header COM": lambda d, t: d[:d.index(b"\xff\x90")] + _segment(0x64, b"\0\1" + t) + d[d.index(b"\xff\x90"):],
    "after EOC": lambda d, t: d + t,
}


def _tile_writer(monkeypatch, module, change, where=(0, 5)):
    """Make `module` (a synth vendor) write JPEG tiles, tile `where` = (level, index) changed."""
    import synth
    original = synth.tiled

    def tiled(tags, width, height, level=0, sparse=False):
        image = original(tags, width, height, level, sparse)
        if not sparse:
            image.tags[Tag.COMPRESSION] = (Type.SHORT, 7)
            image.chunks = [change(jpeg_tile(i % 200)) if (level, i) == where else jpeg_tile(i % 200)
                            for i in range(len(image.chunks))]
        return image
    monkeypatch.setattr(module, "tiled", tiled)


def _aperio_jpeg(monkeypatch, path, change, tile=5):
    from synth import aperio
    real = aperio.jpeg_tile
    monkeypatch.setattr(aperio, "jpeg_tile", lambda i, level: change(real(i, level)) if (i, level) == (tile, 0)
                        else real(i, level))
    aperio.write(path, tile_compression=7)
    return "directory 0", tile


def _vendor_jpeg(name, level_directory):
    def write(monkeypatch, path, change, tile=5):
        import importlib
        module = importlib.import_module(f"synth.{name}")
        _tile_writer(monkeypatch, module, change, (0, tile))
        module.write(path)
        return f"directory {level_directory}", tile
    return write


JPEG_VENDORS = {
    "aperio": (_aperio_jpeg, ".svs"),
    "philips": (_vendor_jpeg("philips", 0), ".tiff"),
    "ventana": (_vendor_jpeg("ventana", 2), ".bif"),
    "leica": (_vendor_jpeg("leica", 1), ".scn"),
    "generic": (_vendor_jpeg("generic", 0), ".tif"),
}


@pytest.mark.parametrize("vendor", sorted(JPEG_VENDORS))
@pytest.mark.parametrize("place", sorted(JPEG_PLACES))
def test_jpeg_tile_hiding_places_refuse(tmp_path, monkeypatch, vendor, place):
    """Every JPEG vendor: a segment that may carry text, or bytes after EOI, in a middle tile
    (a small level: every tile is in the sample) refuses the slide before anything is written."""
    write, extension = JPEG_VENDORS[vendor]
    path = str(tmp_path / f"slide{extension}")
    where, tile = write(monkeypatch, path, lambda d: JPEG_PLACES[place](d, TEXTS["ascii"]))
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and f"{where} tile {tile}:" in reason, reason


@pytest.mark.parametrize("text", sorted(TEXTS))
@pytest.mark.parametrize("place", ["after EOI", "COM before EOI", "APP1 Exif"])
def test_every_encoding_and_short_ids_refuse(tmp_path, monkeypatch, text, place):
    """What a printable-run rule missed (Latin-1, UTF-8, Greek, an 8-character id): the walk is
    structural, so the text's encoding and length do not matter."""
    path = str(tmp_path / "slide.svs")
    _aperio_jpeg(monkeypatch, path, lambda d: JPEG_PLACES[place](d, TEXTS[text]), tile=0)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "directory 0 tile 0:" in reason


@pytest.mark.parametrize("vendor", sorted(JPEG_VENDORS))
def test_nul_padding_after_eoi_is_delivered(tmp_path, monkeypatch, vendor):
    """NUL bytes after EOI carry no text: a writer that pads tiles is not refused."""
    write, extension = JPEG_VENDORS[vendor]
    path = str(tmp_path / f"slide{extension}")
    write(monkeypatch, path, lambda d: d + bytes(61))
    assert outcome(path, FULL)[0] == "delivered"


@pytest.mark.parametrize("place", sorted(J2K_PLACES) + ["tile-part COM"])
@pytest.mark.parametrize("text", ["ascii", "latin-1", "utf-16le", "short id"])
@pytest.mark.parametrize("tile", [0, 7, 47])
def test_jpeg2000_tile_hiding_places_refuse(tmp_path, monkeypatch, place, text, tile):
    from synth import aperio
    real = aperio.j2k_tile

    def changed(i, level):
        data = real(i, level)
        if (i, level) != (tile, 0):
            return data
        if place == "tile-part COM":   # after SOT's 12 bytes; Psot grows by the segment
            at = data.index(b"\xff\x90")
            segment = _segment(0x64, b"\0\1" + TEXTS[text])
            psot = struct.unpack_from(">I", data, at + 6)[0]
            head = data[:at + 6] + struct.pack(">I", psot + len(segment) if psot else 0) + data[at + 10:at + 12]
            return head + segment + data[at + 12:]
        return J2K_PLACES[place](data, TEXTS[text])
    monkeypatch.setattr(aperio, "j2k_tile", changed)
    path = str(tmp_path / "slide.svs")
    aperio.write(path, tile_compression=33005)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and f"directory 0 tile {tile}: JPEG 2000" in reason, reason


def test_jpeg2000_nul_padding_is_delivered(tmp_path, monkeypatch):
    from synth import aperio
    real = aperio.j2k_tile
    monkeypatch.setattr(aperio, "j2k_tile", lambda i, level: real(i, level) + bytes(40))
    path = str(tmp_path / "slide.svs")
    aperio.write(path, tile_compression=33005)
    assert outcome(path, FULL)[0] == "delivered"


# --- deflate (generic TIFF, and the synthetic vendors' own deflate tiles) --------------------------

@pytest.mark.parametrize("vendor, extension", [("generic", ".tif"), ("philips", ".tiff"), ("ventana", ".bif"),
                                               ("leica", ".scn"), ("aperio", ".svs")])
@pytest.mark.parametrize("text", ["ascii", "latin-1", "utf-16be", "short id"])
def test_text_after_a_deflate_stream_refuses(tmp_path, monkeypatch, vendor, extension, text):
    import importlib

    import synth
    module = importlib.import_module(f"synth.{vendor}")
    original = synth.tile_bytes
    monkeypatch.setattr(synth, "tile_bytes", lambda i, size, level=0: original(i, size, level)
                        + (TEXTS[text] if (i, level) == (3, 0) else b""))
    path = str(tmp_path / f"slide{extension}")
    module.write(path)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "tile 3: data after the end of the deflate stream" in reason


@pytest.mark.parametrize("change, phrase", [
    (lambda d: d[:-4], "deflate stream has no end"),
    (lambda d: d[:10] + NAME.encode() + d[10:], "deflate data does not parse"),
    (lambda d: d + bytes(32), None),
])
def test_deflate_tiles_must_end_at_their_byte_count(tmp_path, monkeypatch, change, phrase):
    import synth
    from synth import generic
    original = synth.tile_bytes
    monkeypatch.setattr(synth, "tile_bytes", lambda i, size, level=0: change(original(i, size, level))
                        if (i, level) == (2, 0) else original(i, size, level))
    path = str(tmp_path / "slide.tif")
    generic.write(path)
    result, reason, _ = outcome(path, FULL)
    assert (result, phrase is None or phrase in reason) == ("delivered" if phrase is None else "quarantined", True)


# --- NDPI strips ---------------------------------------------------------------------------------

def _ndpi(path, change=None, restart=True):
    from synth import ndpi
    ndpi.write(path, restart=restart, edit_strip=change)


def _after(strip, starts, k, insert):
    """`insert` put at the end of restart interval k (before its marker); later starts move."""
    end = starts[k + 1] - 2 if k + 1 < len(starts) else len(strip) - 2
    return strip[:end] + insert + strip[end:], [s + (len(insert) if s > end else 0) for s in starts]


NDPI_PLACES = {
    "COM before EOI": lambda s, m, t: _after(s, m, len(m) - 1, _segment(0xFE, t)),
    "after EOI": lambda s, m, t: (s + t, m),
    "COM between intervals": lambda s, m, t: _after(s, m, 0, _segment(0xFE, t)),
    "APP1 in the header": lambda s, m, t: (s[:2] + _segment(0xE1, b"Exif\0\0" + t) + s[2:],
                                            [x + len(t) + 10 for x in m]),
    "a second COM in the header": lambda s, m, t: (s[:2] + _segment(0xFE, t) + s[2:], [x + len(t) + 4 for x in m]),
}


@pytest.mark.parametrize("place", sorted(NDPI_PLACES))
@pytest.mark.parametrize("text", ["ascii", "latin-1", "utf-8", "utf-16le", "short id"])
@pytest.mark.parametrize("restart", [True, False], ids=["restart intervals", "one whole strip"])
def test_ndpi_strip_hiding_places_refuse(tmp_path, monkeypatch, place, text, restart):
    """NDPI level strips, with restart markers and McuStarts (as real NanoZoomer levels) or one
    plain JPEG stream: the text at the end, between restart intervals and in the header."""
    from synth import ndpi
    path = str(tmp_path / "slide.ndpi")

    def change(level, strip, starts):
        return NDPI_PLACES[place](strip, starts, TEXTS[text]) if level == 1 else (strip, starts)
    if restart:
        _ndpi(path, change)
    else:
        real = ndpi._jpeg

        def level_one_changed(width, height, shade, *args, **kwargs):
            strip = real(width, height, shade, *args, **kwargs)
            return change(1, strip, [0])[0] if shade == 90 else strip   # level 1's shade
        monkeypatch.setattr(ndpi, "_jpeg", level_one_changed)
        ndpi.write(path)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "directory 1" in reason, reason


def test_ndpi_restart_intervals_sampled_and_all_with_full_scan(tmp_path, monkeypatch):
    """A COM between two middle restart intervals of level 0 (1,536 intervals): found by the
    full scan always, and by default when the draw picks that interval (here: forced; a draw
    that misses it delivers it — the sample's documented limit)."""
    path = str(tmp_path / "slide.ndpi")
    _ndpi(path, lambda level, s, m: _after(s, m, 700, _segment(0xFE, NAME.encode())) if level == 0 else (s, m))
    with open(path, "rb") as fh:
        before = fh.read()
    result, reason, _ = outcome(path, FULL)
    assert result == "quarantined" and "directory 0 restart interval 700:" in reason
    monkeypatch.setattr(tileheaders, "sample", lambda count, full, drawn=None: sorted({0, min(700, count - 1), count - 1}))
    with open(path, "wb") as fh:
        fh.write(before)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "restart interval 700" in reason


@pytest.mark.parametrize("lie", ["not rising", "past the strip", "shifted"])
def test_ndpi_mcu_starts_that_do_not_match_the_strip_refuse(tmp_path, lie):
    path = str(tmp_path / "slide.ndpi")

    def change(level, strip, starts):
        if level:
            return strip, starts
        starts = list(starts)
        if lie == "not rising":
            starts[5], starts[6] = starts[6], starts[5]
        elif lie == "past the strip":
            starts[-1] = len(strip) + 10
        else:
            starts[0] -= 1
        return strip, starts
    _ndpi(path, change)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "directory 0" in reason


def test_real_and_synthetic_ndpi_with_restart_intervals_are_delivered(tmp_path):
    import shutil

    from conftest import shared_fixture
    path = str(tmp_path / "slide.ndpi")
    _ndpi(path)
    assert outcome(path, FULL)[0] == "delivered"
    real = shared_fixture("hamamatsu", "test3-DAPI-2-(387).ndpi")
    for options in (OPTIONS, FULL):
        shutil.copyfile(real, path)
        os.chmod(path, 0o644)
        assert outcome(path, options)[0] == "delivered"


# --- the sample: unpredictable, first and last always, every tile with full_scan ------------------

def test_the_sample_is_drawn_from_a_secret_source():
    draws = {tuple(tileheaders.sample(100_000, False)) for _ in range(5)}
    assert len(draws) == 5   # never the same positions twice (a writer cannot aim around them)
    for draw in draws:
        assert draw[0] == 0 and draw[-1] == 99_999 and len(draw) == tileheaders.DRAWN + 2
    assert list(tileheaders.sample(10, False)) == list(range(10))   # a small image: every tile
    assert list(tileheaders.sample(100_000, True)) == list(range(100_000))
    seen = set()
    for _ in range(200):
        seen.update(tileheaders.sample(300, False))
    assert seen == set(range(300))   # every position can be drawn


def test_the_draw_uses_secrets(monkeypatch):
    import secrets

    class Fixed:
        def sample(self, population, k):
            return list(population)[-k:]
    monkeypatch.setattr(secrets, "SystemRandom", Fixed)
    assert list(tileheaders.sample(1000, False))[-3:] == [997, 998, 999]


def test_a_big_level_with_text_in_a_fifth_of_its_tiles_is_refused_by_default(tmp_path, monkeypatch):
    """192 tiles at level 0, a COM in every fifth: a draw of DRAWN misses all of them with
    probability 0.8 ** 64 (< 1e-6), twice (plan and verification draw apart)."""
    from synth import aperio
    real = aperio.jpeg_tile
    monkeypatch.setattr(aperio, "jpeg_tile", lambda i, level: JPEG_PLACES["COM after SOI"](real(i, level), b"K4711")
                        if level == 0 and i % 5 == 2 else real(i, level))
    path = str(tmp_path / "slide.svs")
    aperio.write(path, 4096, 3072, tile_compression=7)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "JPEG COM segment" in reason


def test_one_unsampled_tile_is_refused_with_full_scan(tmp_path, monkeypatch):
    from synth import aperio
    real = aperio.jpeg_tile
    monkeypatch.setattr(aperio, "jpeg_tile", lambda i, level: real(i, level) + "MÜLLER".encode("latin-1")
                        if (i, level) == (101, 0) else real(i, level))
    monkeypatch.setattr(tileheaders, "DRAWN", 4)
    path = str(tmp_path / "slide.svs")
    aperio.write(path, 4096, 3072, tile_compression=7)
    result, reason, _ = outcome(path, FULL)
    assert result == "quarantined" and "directory 0 tile 101: JPEG stream holds data after EOI" in reason


# --- the name's parts and removed values inside tiles ---------------------------------------------

@pytest.mark.parametrize("codec", ["utf-8", "latin-1", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_the_names_accession_in_a_sampled_tile_is_found_by_default(tmp_path, codec, case):
    """Red team lab run: `S26-047123` from the file name, in the pixels of tile 0 (always in the
    sample; uncompressed tiles have no structure to walk) is found by the default value search."""
    import tifffile

    from paw.errors import VerificationFailed
    from paw.formats import prepare
    from paw.verify import verify
    from synth import aperio
    stem = "S26-047123 B1 PAS"
    path = str(tmp_path / f"{stem}.svs")
    aperio.write(path, sparse=True)
    with tifffile.TiffFile(path) as tf:
        offset = int(tf.pages[0].dataoffsets[0])
    with open(path, "r+b") as fh:
        fh.seek(offset + 999)
        fh.write(case("s26-047123").encode(codec))
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="removed value"):
        verify(path, module, plan, OPTIONS, extra_values=name_values(stem))


def test_the_search_reads_sampled_tiles_only_by_default(tmp_path):
    """The default search skips the kept tiles but a fresh draw of them per image."""
    from paw.formats import prepare
    from synth import aperio
    path = str(tmp_path / "slide.svs")
    aperio.write(path, 4096, 3072, sparse=True)
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    (_, skip), = module.searched(path, plan)
    kept = int(np.asarray(plan.kept_data).reshape(-1, 2)[:, 1].sum())
    skipped = int(sum(e - s for s, e in skip))
    assert 0 < kept - skipped < kept // 2   # some tiles are searched, most are not


# --- iSyntax binary part (F8) --------------------------------------------------------------------

ISYNTAX_BINARY = {
    "removed serial at the start": (lambda removed: b"\0" * 1000 + removed.encode() + bytes(range(256)) * 100,
                                    OPTIONS, "removed value"),
    "removed serial far in, full scan": (lambda removed: bytes(range(256)) * 40000 + removed.encode("utf-16-le"),
                                         FULL, "removed value"),
    "a second header": (lambda removed: b"<DataObject ObjectType=\"DPUfsImport\"><Attribute Name=\"X\">"
                        + NAME.encode() + b"</Attribute></DataObject>", OPTIONS, "starts with XML"),
    "a second header in UTF-16": (lambda removed: "<Attribute Name=\"X\">".encode("utf-16-le") + NAME.encode("utf-16-le"),
                                  OPTIONS, "starts with XML"),
}


@pytest.mark.parametrize("variant", sorted(ISYNTAX_BINARY))
def test_isyntax_binary_part(tmp_path, variant):
    from paw.errors import VerificationFailed
    from paw.formats import prepare
    from paw.verify import verify
    from synth import isyntax
    make, options, phrase = ISYNTAX_BINARY[variant]
    path = str(tmp_path / "slide.isyntax")
    isyntax.write(path)
    with open(path, "rb") as fh:
        data = fh.read()
    module, plan, _ = prepare(path, options)
    removed = next(v for v in plan.removed if len(v) >= 8)
    end = data.index(b"\r\n\x04") + 3
    with open(path, "wb") as fh:
        fh.write(data[:end] + make(removed) + data[end:])
    module, plan, _ = prepare(path, options)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match=phrase):
        verify(path, module, plan, options)


def test_isyntax_name_part_in_the_binary_start_is_found(tmp_path):
    from paw.errors import VerificationFailed
    from paw.formats import prepare
    from paw.verify import verify
    from synth import isyntax
    stem = "S26-047123 B1 PAS"
    path = str(tmp_path / f"{stem}.isyntax")
    isyntax.write(path)
    with open(path, "r+b") as fh:
        data = fh.read()
        fh.seek(data.index(b"\r\n\x04") + 3 + 5000)
        fh.write("s26-047123".encode("utf-16-be"))
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    with pytest.raises(VerificationFailed, match="removed value"):
        verify(path, module, plan, OPTIONS, extra_values=name_values(stem))


def test_isyntax_search_reads_the_start_and_random_windows_of_a_large_binary_part(tmp_path):
    from paw.formats import isyntax as handler
    from paw.formats import prepare
    from synth import isyntax
    path = str(tmp_path / "slide.isyntax")
    isyntax.write(path, hole=1 << 30)
    module, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    (_, skip), = module.searched(path, plan)
    (start, length), = plan.kept_data
    skipped = int(sum(e - s for s, e in skip))
    assert skip[0][0] == start + handler.BINARY_HEAD
    assert length - handler.BINARY_HEAD - handler.DRAWN * handler.WINDOW <= skipped < length - handler.BINARY_HEAD


# --- red team observation: a 4 GiB unreferenced hole read as 16 GB ---------------------------------

def test_anonymize_to_a_folder_keeps_holes_and_reads_none(lab, tmp_path):
    """`paw.py anonymize --output DIR` copied with shutil (holes written out as zeros), then
    verification read the zeros once per searched value: 7 minutes for a 4 GiB gap. The copy now
    keeps holes (fsops.copy_file), and a block of zeros is skipped by the value search."""
    from synth import ndpi
    path = str(tmp_path / "S26-047119 A1 HE.ndpi")
    ndpi.write(path, hole=1 << 30)
    out = tmp_path / "out"
    out.mkdir()
    assert lab.run("anonymize", path, "--output", str(out)) == 0
    [result] = out.iterdir()
    assert result.stat().st_size > 1 << 30 and result.stat().st_blocks * 512 < 8 << 20


def test_the_value_search_finds_a_value_after_a_block_of_zeros(tmp_path):
    from paw.verify import CHUNK, find_any
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(CHUNK + 100) + "s26-047119".encode("utf-16-be") + bytes(5000))
    assert find_any(str(path), ["S26-047119"]) == CHUNK + 100
    path.write_bytes(bytes(2 * CHUNK))
    assert find_any(str(path), ["S26-047119"]) is None


# --- a JPEG tile whose header does not parse (the real unreadable.svs) ------------------------------

def test_the_real_damaged_tiles_are_delivered_with_full_scan(tmp_path):
    import shutil

    from conftest import shared_fixture
    path = str(tmp_path / "unreadable.svs")
    shutil.copyfile(shared_fixture("aperio", "unreadable.svs"), path)
    os.chmod(path, 0o644)
    assert outcome(path, FULL)[0] == "delivered"


def _damaged(tile):
    """unreadable.svs's damage: the SOS marker turned into DQT (FFDA -> FFDB)."""
    at = tile.index(b"\xff\xda")
    return tile[:at] + b"\xff\xdb" + tile[at + 2:]


@pytest.mark.parametrize("change, phrase", [
    (lambda d: d + b"K4711-09", "does not end with EOI"),
    (lambda d: d[:-2] + _segment(0xFE, b"K4711-09") + d[-2:], "segment that may carry text"),
    (lambda d: d[:-2] + NAME.encode() * 2 + d[-2:], "holds text"),
])
def test_a_damaged_tile_still_holds_no_text(tmp_path, monkeypatch, change, phrase):
    path = str(tmp_path / "slide.svs")
    _aperio_jpeg(monkeypatch, path, lambda d: change(_damaged(d)), tile=0)
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and phrase in reason, reason
