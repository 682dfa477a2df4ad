"""The demo's sample slide: a small Aperio SVS carrying fake identifiers where scanners put real ones.

Only `paw.py demo` uses it (the tests have their own generators under tests/, written with their
own TIFF writer). Layout as Aperio Image Library files have it: tiled level 0, a stripped
thumbnail, the label (NewSubfileType 1, raw pixels that spell the identifiers) and the macro
(NewSubfileType 9); the identifying description is repeated in every directory.
"""

import zlib

from .formats.tifftags import Tag, Type
from .formats.tiffwrite import directory_size, pack_directory

PATIENT = "DOE^JANE-PAWDEMO"
ACCESSION = "S26-047119"
OPERATOR = "jsmith-paw-demo"
SERIAL = "SN-PAW-DEMO-7731"
BARCODE = "BC-S26-047119-A1"
DATETIME = "2026:11:20 14:32:07"
TILE = 256
ADOBE_DEFLATE, NO_COMPRESSION, RGB = 8, 1, 2


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, BARCODE, DATETIME]


def _description(first_line):
    fields = [("AppMag", "20"), ("MPP", "0.4990"), ("ScanScope ID", SERIAL),
              ("Filename", f"{ACCESSION} A1 HE"), ("Date", "11/20/26"), ("Time", "14:32:07"),
              ("User", OPERATOR), ("Patient", PATIENT), ("Barcode", BARCODE)]
    return f"Aperio Image Library v12.0.15 \r\n{first_line}|" + "|".join(f"{k} = {v}" for k, v in fields)


def _label_pixels(width, height):
    text = f"LABEL {PATIENT} {ACCESSION} ".encode()
    return (text * (width * height * 3 // len(text) + 1))[:width * height * 3]


def write(path, width=1024, height=768):
    """Write the sample slide; returns the identifiers planted in it."""
    tiles = -(-width // TILE) * -(-height // TILE)
    images = [  # (fields of its own, payload chunks, width, height, compression, NewSubfileType, tiled)
        ([(Tag.IMAGE_DESCRIPTION, Type.ASCII, _description(f"{width}x{height} ({TILE}x{TILE}) JPEG/RGB Q=70")),
          (Tag.ARTIST, Type.ASCII, OPERATOR), (Tag.DATE_TIME, Type.ASCII, DATETIME),
          (Tag.TILE_WIDTH, Type.SHORT, TILE), (Tag.TILE_LENGTH, Type.SHORT, TILE)],
         [zlib.compress(bytes([(i * 37) % 251]) * TILE * TILE * 3) for i in range(tiles)], width, height,
         ADOBE_DEFLATE, 0, True),
        ([(Tag.IMAGE_DESCRIPTION, Type.ASCII, _description(f"{width}x{height} -> 128x96 - "))],
         [bytes(128 * 96 * 3)], 128, 96, NO_COMPRESSION, 0, False),
        ([(Tag.IMAGE_DESCRIPTION, Type.ASCII, "Aperio Image Library v12.0.15 \nlabel 96x64")],
         [_label_pixels(96, 64)], 96, 64, NO_COMPRESSION, 1, False),
        ([(Tag.IMAGE_DESCRIPTION, Type.ASCII, "Aperio Image Library v12.0.15 \nmacro 160x60")],
         [zlib.compress(_label_pixels(160, 60)[::-1])], 160, 60, ADOBE_DEFLATE, 9, False),
    ]
    out = bytearray(b"II*\0" + bytes(4))
    previous_next_at = 4
    for fields, chunks, w, h, compression, subfile, tiled in images:
        layout = (Tag.TILE_OFFSETS, Tag.TILE_BYTE_COUNTS) if tiled else (Tag.STRIP_OFFSETS, Tag.STRIP_BYTE_COUNTS)
        common = [(Tag.NEW_SUBFILE_TYPE, Type.LONG, subfile), (Tag.IMAGE_WIDTH, Type.LONG, w),
                  (Tag.IMAGE_LENGTH, Type.LONG, h), (Tag.BITS_PER_SAMPLE, Type.SHORT, [8, 8, 8]),
                  (Tag.COMPRESSION, Type.SHORT, compression), (Tag.PHOTOMETRIC, Type.SHORT, RGB),
                  (Tag.SAMPLES_PER_PIXEL, Type.SHORT, 3), (Tag.PLANAR_CONFIGURATION, Type.SHORT, 1),
                  (Tag.IMAGE_DEPTH, Type.LONG, 1)] + ([] if tiled else [(Tag.ROWS_PER_STRIP, Type.LONG, h)])

        def directory(offsets):
            return fields + common + [(layout[0], Type.LONG, offsets),
                                      (layout[1], Type.LONG, [len(c) for c in chunks])]

        at = len(out) + len(out) % 2
        payload_at = at + directory_size(False, directory([0] * len(chunks)))
        offsets = [payload_at + sum(len(c) for c in chunks[:i]) for i in range(len(chunks))]
        out += bytes(at - len(out))
        out[previous_next_at:previous_next_at + 4] = at.to_bytes(4, "little")
        table = pack_directory("<", False, directory(offsets), at)
        previous_next_at = at + 2 + 12 * len(directory(offsets))
        out += table + b"".join(chunks)
    with open(path, "wb") as fh:
        fh.write(out)
    return planted()
