"""Synthetic slides with fake identifiers planted where real scanners put real ones.

Used by the tests and the benchmarks (`paw.py demo` has its own small sample, paw/sample.py);
one module per vendor. Every generator returns the planted values so a caller can prove none of
them survives anonymization. They write files with their own writer (tiffwriter.py), never with
the parser under test.
"""

import zlib

from paw.formats.tifftags import Tag, Type

TILE = 256
NONE, DEFLATE = 1, 8  # Compression
RGB, CHUNKY = 2, 1    # Photometric, PlanarConfiguration

# Fake identifiers. Each is long and odd enough that finding it in a file is never a coincidence.
PATIENT = "DOE^JANE-PAWTEST"
ACCESSION = "S26-047119"
OPERATOR = "jsmith-paw-operator"
SERIAL = "SN-PAW-99812"
DATE = "11/20/26"
TIME = "14:32:07"
DATETIME = "2026:11:20 14:32:07"
BARCODE = "BC-S26-047119-A1"
HOST = "scanner-ws-paw-17"
LABEL_TEXT = b"LABEL-PIXELS DOE^JANE S26-047119 "  # stored as raw label pixels: must vanish


def tile_bytes(index, size, level=0):
    """A deflate-compressed RGB tile whose content depends on its index (so tiles differ)."""
    row = bytes(((index * 37 + x * 3 + level * 91) % 251 for x in range(size * 3)))
    return zlib.compress(row * size, 6)


def label_pixels(width, height):
    """Uncompressed label pixels that spell out identifiers, as a real label photo would."""
    raw = (LABEL_TEXT * (width * height * 3 // len(LABEL_TEXT) + 1))[: width * height * 3]
    return raw


def _rgb(width, height, compression):
    return {Tag.NEW_SUBFILE_TYPE: (Type.LONG, 0), Tag.IMAGE_WIDTH: (Type.LONG, width),
            Tag.IMAGE_LENGTH: (Type.LONG, height), Tag.BITS_PER_SAMPLE: (Type.SHORT, [8, 8, 8]),
            Tag.COMPRESSION: (Type.SHORT, compression), Tag.PHOTOMETRIC: (Type.SHORT, RGB),
            Tag.SAMPLES_PER_PIXEL: (Type.SHORT, 3), Tag.PLANAR_CONFIGURATION: (Type.SHORT, CHUNKY)}


def tiled(tags, width, height, level=0, sparse=False):
    """A tiled RGB directory with `tags` added; deflate tiles, or uncompressed holes if sparse."""
    from .tiffwriter import Image
    tags = {**_rgb(width, height, NONE if sparse else DEFLATE),
            Tag.TILE_WIDTH: (Type.SHORT, TILE), Tag.TILE_LENGTH: (Type.SHORT, TILE), **tags}
    count = -(-width // TILE) * -(-height // TILE)
    if sparse:
        return Image(tags, tiled=True, sparse=(count, TILE * TILE * 3))
    return Image(tags, [tile_bytes(i, TILE, level) for i in range(count)], tiled=True)


def stripped(tags, width, height, data=None, compression=NONE):
    """A one-strip RGB directory (label, macro, thumbnail); label pixels unless `data` is given."""
    from .tiffwriter import Image
    tags = {**_rgb(width, height, compression), Tag.ROWS_PER_STRIP: (Type.LONG, height), **tags}
    return Image(tags, [label_pixels(width, height) if data is None else data])
