"""Synthetic Aperio SVS: the directory order and description layout of Aperio Image Library files.

Real files (OpenSlide's CMU-1 family) have: level 0 tiled; directory 1 a stripped thumbnail; more
tiled levels; then the label (NewSubfileType 1, LZW, description line `label WxH`) and the macro
(NewSubfileType 9, JPEG, `macro WxH`). The identifying description is repeated in directory 0,
the thumbnail and each level. Payload here is deflate (tiles, macro) or raw (label) so the
generator needs no codec.
"""

import zlib

from paw.formats.tifftags import Tag, Type

from . import (ACCESSION, BARCODE, DATE, DATETIME, HOST, OPERATOR, PATIENT, SERIAL, TILE, TIME,
               label_pixels, stripped, tiled)
from .tiffwriter import write_tiff


def description(first_line, gt450=False, barcode_last=True):
    fields = [
        ("AppMag", "40"), ("StripeWidth", "1000"), ("ScanScope ID", SERIAL),
        ("Filename", f"{ACCESSION} A1 HE"), ("Date", DATE), ("Time", TIME),
        ("Time Zone", "GMT+01:00"), ("User", OPERATOR), ("MPP", "0.2520"), ("Left", "25.691574"),
        ("Top", "23.449873"), ("Slide", "1"), ("Rack", "12"), ("Patient", PATIENT),
    ]
    if gt450:
        fields += [("Title", ACCESSION), ("ScannerType", "GT450"), ("Slot", "7")]
    fields.append(("Barcode", BARCODE))
    if not barcode_last:
        fields.append(("Exposure Time", "109"))
    library = "Aperio Leica Biosystems GT450 v1.0.1" if gt450 else "Aperio Image Library v12.0.15"
    return f"{library} \r\n{first_line}|" + "|".join(f"{k} = {v}" for k, v in fields)


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, DATE, TIME, DATETIME, BARCODE, HOST]


def _level(width, height, level, desc, sparse, compression=None):
    tags = {Tag.IMAGE_DESCRIPTION: (Type.ASCII, desc), Tag.IMAGE_DEPTH: (Type.LONG, 1),
            Tag.DATE_TIME: (Type.ASCII, DATETIME)}
    if compression:
        tags[259] = (3, compression)
    return tiled(tags, width, height, level, sparse)


def _strip_image(width, height, desc, subfile, raw, compression):
    return stripped({Tag.NEW_SUBFILE_TYPE: (Type.LONG, subfile), Tag.IMAGE_DESCRIPTION: (Type.ASCII, desc),
                     Tag.IMAGE_DEPTH: (Type.LONG, 1), Tag.DATE_TIME: (Type.ASCII, DATETIME)},
                    width, height, raw, compression)


def write(path, width=2048, height=1536, *, sparse=False, bigtiff=False, byteorder="<",
          gt450=False, label_line=True, label_subfile=1, barcode_last=True, extra_tags=None,
          tile_compression=None):
    """Write a synthetic SVS and return the identifiers planted in it."""
    head = f"{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE}) RAW/RGB Q=70"
    desc0 = description(head, gt450, barcode_last)
    images = [_level(width, height, 0, desc0, sparse, tile_compression)]
    images[0].tags[315] = (2, OPERATOR)
    images[0].tags[316] = (2, HOST)
    images[0].tags.update(extra_tags or {})
    thumb_w, thumb_h = 128, max(1, 128 * height // width)
    thumb = bytes(thumb_w * thumb_h * 3)
    images.append(_strip_image(thumb_w, thumb_h, description(
        f"{width}x{height} -> {thumb_w}x{thumb_h} - ", gt450, barcode_last), 0, thumb, 1))
    w, h = width // 4, height // 4
    if w >= TILE:
        images.append(_level(w, h, 1, description(
            f"{width}x{height} -> {w}x{h} - ", gt450, barcode_last), sparse, tile_compression))
    label_w, label_h = 96, 64
    label_desc = "Aperio Image Library v12.0.15 \n" + (f"label {label_w}x{label_h}" if label_line else "")
    images.append(_strip_image(label_w, label_h, label_desc, label_subfile,
                               label_pixels(label_w, label_h), 1))
    macro_w, macro_h = 320, 108
    macro = zlib.compress(label_pixels(macro_w, macro_h)[::-1], 1)  # deflate, as a pitfall asks
    images.append(_strip_image(macro_w, macro_h, "Aperio Image Library v12.0.15 \n"
                               f"macro {macro_w}x{macro_h}", 9, macro, 8))
    write_tiff(path, images, bigtiff=bigtiff, byteorder=byteorder)
    return planted()
