"""Synthetic Ventana BIF (iScan/DP scanners): BigTIFF whose directory 0 is the label photo.

As in real files, directory 0 is `Label_Image` and carries the `iScan` XMP that OpenSlide
detects the format by; then `Thumbnail` (the whole slide, label included), then the tiled
levels described `level=N mag=M quality=Q`.
"""

from . import (ACCESSION, BARCODE, DATETIME, OPERATOR, PATIENT, SERIAL, label_pixels, tile_bytes)
from .tiffwriter import Image, write_tiff

TILE = 256
BUILD_DATE = "11/20/2026 2:32:07 PM"


def xmp():
    return (f'<?xml version="1.0" encoding="utf-8"?><Metadata><iScan BaseName="{ACCESSION}" '
            f'BuildDate="{BUILD_DATE}" BuildVersion="3.3.1.1" Barcode1D="{BARCODE}" '
            f'Barcode2D="{PATIENT}" JP2FileName="{ACCESSION}.jp2" Magnification="40" '
            f'ScanRes="0.25" UnitNumber="{SERIAL}" UserName="{OPERATOR}" ScanMode="1" '
            f'ShowLabel="1" SlideAnnotation="{PATIENT}"/></Metadata>').encode()


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, BARCODE, BUILD_DATE, DATETIME]


def _stripped(description, width, height, extra=None):
    tags = {254: (4, 0), 256: (4, width), 257: (4, height), 258: (3, [8, 8, 8]), 259: (3, 1),
            262: (3, 2), 277: (3, 3), 278: (4, height), 284: (3, 1), 270: (2, description),
            306: (2, DATETIME)}
    tags.update(extra or {})
    return Image(tags, [label_pixels(width, height)])


def _level(level, width, height, mag):
    tags = {254: (4, 0), 256: (4, width), 257: (4, height), 258: (3, [8, 8, 8]), 259: (3, 8),
            262: (3, 2), 277: (3, 3), 284: (3, 1), 322: (3, TILE), 323: (3, TILE),
            270: (2, f"level={level} mag={mag} quality=90"), 306: (2, DATETIME)}
    tiles = [tile_bytes(i, TILE, level) for i in range(-(-width // TILE) * -(-height // TILE))]
    return Image(tags, tiles, tiled=True)


def write(path, width=1024, height=768, label_description="Label_Image", bigtiff=True):
    images = [_stripped(label_description, 96, 64, {700: (1, xmp())}),
              _stripped("Thumbnail", 128, 96),
              _level(0, width, height, 40), _level(1, width // 4, height // 4, 10)]
    write_tiff(path, images, bigtiff=bigtiff)
    return planted()
