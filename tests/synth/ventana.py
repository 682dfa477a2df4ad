"""Synthetic Ventana BIF (iScan/DP scanners): BigTIFF whose directory 0 is the label photo.

As in real files, directory 0 is `Label_Image` and carries the `iScan` XMP that OpenSlide
detects the format by; then `Thumbnail` (the whole slide, label included), then the tiled
levels described `level=N mag=M quality=Q`.
"""

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, BARCODE, DATETIME, OPERATOR, PATIENT, SERIAL, stripped, tiled
from .tiffwriter import write_tiff
BUILD_DATE = "11/20/2026 2:32:07 PM"


def xmp():
    return (f'<?xml version="1.0" encoding="utf-8"?><Metadata><iScan BaseName="{ACCESSION}" '
            f'BuildDate="{BUILD_DATE}" BuildVersion="3.3.1.1" Barcode1D="{BARCODE}" '
            f'Barcode2D="{PATIENT}" JP2FileName="{ACCESSION}.jp2" Magnification="40" '
            f'ScanRes="0.25" UnitNumber="{SERIAL}" UserName="{OPERATOR}" ScanMode="1" '
            f'ShowLabel="1" SlideAnnotation="{PATIENT}"/></Metadata>').encode()


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, BARCODE, BUILD_DATE, DATETIME]


def write(path, width=1024, height=768, label_description="Label_Image", bigtiff=True,
          sparse=False):
    date = {Tag.DATE_TIME: (Type.ASCII, DATETIME)}
    images = [stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, label_description), **date,
                        Tag.XMP: (Type.BYTE, xmp())}, 96, 64),
              stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "Thumbnail"), **date}, 128, 96),
              tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "level=0 mag=40 quality=90"), **date}, width, height,
                    0, sparse),
              tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "level=1 mag=10 quality=90"), **date}, width // 4,
                    height // 4, 1, sparse)]
    write_tiff(path, images, bigtiff=bigtiff)
    return planted()
