"""Synthetic slides with fake identifiers planted where real scanners put real ones.

Used by `paw.py demo`, the tests and the benchmarks; one module per vendor. Every generator
returns the planted values so a caller can prove none of them survives anonymization.
"""

import zlib

TILE = 256

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


def tiled(tags, width, height, level=0, sparse=False):
    """A tiled RGB directory with `tags` added; deflate tiles, or uncompressed holes if sparse."""
    from .tiffwriter import Image
    tags = {254: (4, 0), 256: (4, width), 257: (4, height), 258: (3, [8, 8, 8]),
            259: (3, 1 if sparse else 8), 262: (3, 2), 277: (3, 3), 284: (3, 1),
            322: (3, TILE), 323: (3, TILE), **tags}
    count = -(-width // TILE) * -(-height // TILE)
    if sparse:
        return Image(tags, tiled=True, sparse=(count, TILE * TILE * 3))
    return Image(tags, [tile_bytes(i, TILE, level) for i in range(count)], tiled=True)


def stripped(tags, width, height, data=None, compression=1):
    """A one-strip RGB directory (label, macro, thumbnail); label pixels unless `data` is given."""
    from .tiffwriter import Image
    tags = {254: (4, 0), **tags, 256: (4, width), 257: (4, height), 258: (3, [8, 8, 8]),
            259: (3, compression), 262: (3, 2), 277: (3, 3), 278: (4, height), 284: (3, 1)}
    return Image(tags, [label_pixels(width, height) if data is None else data])
