"""Synthetic generic tiled TIFF with identifiers in every baseline place a writer might put one.

Level 0 and a reduced level are tiled (what OpenSlide's generic reader shows); a stripped image
with label pixels follows (OpenSlide ignores it, paw must destroy it). Directory 0 carries
DateTime, Artist, HostComputer, DocumentName, PageName, Software, XMP, IPTC, and EXIF and GPS
sub-directories (DateTimeOriginal, BodySerialNumber, a GPS date stamp); its description is
tifffile's shape line (a free-text description is a vendor paw does not know: refused).
"""

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, DATETIME, HOST, OPERATOR, PATIENT, SERIAL, stripped, tiled
from .tiffwriter import write_tiff

XMP = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
       f'creator="{OPERATOR}" title="{ACCESSION}"/></rdf:RDF></x:xmpmeta>').encode()


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, DATETIME, HOST]


# EXIF and GPS tags (EXIF 2.3 section 4.6): not paw's business beyond being dropped.
DATE_TIME_ORIGINAL, BODY_SERIAL_NUMBER, GPS_DATE_STAMP = 36867, 42033, 29


def write(path, width=1024, height=768, byteorder="<", extra_tags=None, later_tags=None,
          extra_images=()):
    """Write a synthetic generic TIFF and return the identifiers planted in it; `extra_tags`
    go into directory 0, `later_tags` into the reduced level, `extra_images` are appended."""
    level0 = tiled({
        Tag.DOCUMENT_NAME: (Type.ASCII, f"{ACCESSION}.tif"),
        Tag.IMAGE_DESCRIPTION: (Type.ASCII, f'{{"shape": [{height}, {width}, 3]}}'),
        Tag.PAGE_NAME: (Type.ASCII, PATIENT), Tag.DATE_TIME: (Type.ASCII, DATETIME),
        Tag.ARTIST: (Type.ASCII, OPERATOR), Tag.HOST_COMPUTER: (Type.ASCII, HOST),
        Tag.SOFTWARE: (Type.ASCII, f"tifffile.py {PATIENT}"), Tag.XMP: (Type.BYTE, XMP),
        Tag.IPTC: (Type.UNDEFINED, f"IPTC {PATIENT}".encode()),
    }, width, height, 0)
    level0.children = {
        Tag.EXIF_IFD: {DATE_TIME_ORIGINAL: (Type.ASCII, DATETIME), BODY_SERIAL_NUMBER: (Type.ASCII, SERIAL)},
        Tag.GPS_IFD: {GPS_DATE_STAMP: (Type.ASCII, DATETIME[:10])},
    }
    level0.tags.update(extra_tags or {})
    write_tiff(path, [level0,
                      tiled({Tag.NEW_SUBFILE_TYPE: (Type.LONG, 1), Tag.DATE_TIME: (Type.ASCII, DATETIME),
                             **(later_tags or {})}, width // 2, height // 2, 1),
                      stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, f"label {PATIENT}")}, 96, 64),
                      *extra_images],
               byteorder=byteorder)
    return planted()
