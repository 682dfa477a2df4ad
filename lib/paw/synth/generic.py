"""Synthetic generic tiled TIFF with identifiers in every baseline place a writer might put one.

Level 0 and a reduced level are tiled (what OpenSlide's generic reader shows); a stripped image
with label pixels follows (OpenSlide ignores it, paw must destroy it). Directory 0 carries
DateTime, Artist, HostComputer, DocumentName, PageName, a free-text description, XMP, IPTC, and
EXIF and GPS sub-directories (DateTimeOriginal, BodySerialNumber, a GPS date stamp).
"""

import struct

from . import ACCESSION, DATETIME, HOST, OPERATOR, PATIENT, SERIAL, stripped, tiled
from .tiffwriter import write_tiff
XMP = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
       f'creator="{OPERATOR}" title="{ACCESSION}"/></rdf:RDF></x:xmpmeta>').encode()


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, DATETIME, HOST]


def write(path, width=1024, height=768, byteorder="<"):
    level0 = {
        269: (2, f"{ACCESSION}.tif"), 270: (2, f"Patient {PATIENT}, case {ACCESSION}"),
        285: (2, PATIENT), 306: (2, DATETIME), 315: (2, OPERATOR), 316: (2, HOST),
        305: (2, "paw synthetic writer"), 700: (1, XMP), 33723: (7, f"IPTC {PATIENT}".encode()),
        34665: (4, 0), 34853: (4, 0),
    }
    write_tiff(path, [tiled(level0, width, height, 0),
                      tiled({254: (4, 1), 306: (2, DATETIME)}, width // 2, height // 2, 1),
                      stripped({270: (2, f"label {PATIENT}")}, 96, 64)], byteorder=byteorder)
    _append_subdirectory(path, 34665, {36867: DATETIME, 42033: SERIAL}, byteorder)
    _append_subdirectory(path, 34853, {29: DATETIME[:10]}, byteorder)
    return planted()


def _append_subdirectory(path, pointer_tag, ascii_tags, bo):
    """Append a classic-TIFF sub-directory of ASCII tags at EOF and point `pointer_tag` at it."""
    from ..formats.tiff import Tiff

    with open(path, "rb") as fh:
        entry_value_at = Tiff(fh).directories[0].entries[pointer_tag].value_offset
    with open(path, "r+b") as fh:
        fh.seek(0, 2)
        start = fh.tell() + fh.tell() % 2
        values_at = start + 2 + 12 * len(ascii_tags) + 4
        table, values = struct.pack(bo + "H", len(ascii_tags)), b""
        for tag in sorted(ascii_tags):
            data = ascii_tags[tag].encode() + b"\0"
            table += struct.pack(bo + "HHII", tag, 2, len(data), values_at + len(values))
            values += data + b"\0" * (len(data) % 2)
        fh.seek(start)
        fh.write(table + struct.pack(bo + "I", 0) + values)
        fh.seek(entry_value_at)
        fh.write(struct.pack(bo + "I", start))
