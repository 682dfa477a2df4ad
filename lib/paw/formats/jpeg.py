"""JPEG marker segments (ITU-T T.81 annex B), read without decoding anything.

A JPEG stream is SOI, then marker segments (0xFF, marker, 2-byte big-endian length counting
itself, payload) up to SOS, after which entropy-coded data runs to the next marker: RSTn inside
the scan, another table or scan segment (progressive and multi-scan streams; DNL), or EOI.
Inside entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed data byte); in JPEG-LS
(ITU-T T.87) by a byte below 0x80 (bit stuffing). Any other byte after 0xFF is a marker, so a
walk over the whole stream (`walk`) finds every segment, COM and APPn included, wherever it
stands - before the first scan, between scans, just before EOI. Text can hide in the
header: COM segments (0xFE) are free text by definition; APPn (0xE0-0xEF) carry application
data: APP0 JFIF and APP14 Adobe have fixed binary layouts, anything else (EXIF, XMP, ICC,
vendor blocks) may carry names. TIFF JPEGTables (tag 347) is an abbreviated stream of the same
segments (SOI, DQT/DHT, EOI) without SOS.

`whole` reads a tile as a whole stream, the way a sampled tile of a Zeiss CZI or Olympus VSI
slide is checked: every marker segment, also those between the scans of a progressive or
multi-scan stream, through the entropy-coded data (where only stuffed 0xFF00 and RSTn may
stand) to EOI; after EOI, up to the tile's recorded length, only NUL padding (decoders stop at
EOI, so text appended there is invisible to them and readable in the file).
"""

import struct

from ..errors import FormatError

SOI, EOI, SOS, COM, DRI, DQT, DHT, DNL = 0xD8, 0xD9, 0xDA, 0xFE, 0xDD, 0xDB, 0xC4, 0xDC
APP0, APP14, APP15 = 0xE0, 0xEE, 0xEF
TEM = 0x01
RST = range(0xD0, 0xD8)
SOF = frozenset(range(0xC0, 0xD0)) - {DHT, 0xC8, 0xCC}  # 0xC8 is reserved (JPG), 0xCC is DAC
DAC = 0xCC
# Segments whose payload is tables or frame/scan parameters: numbers, never text.
TABLES = frozenset(SOF | {DHT, DAC, DQT, DRI, SOS, 0xDC, 0xDE, 0xDF})  # 0xDC DNL, 0xDE DHP, 0xDF EXP

JFIF_ID, JFXX_ID, ADOBE_ID = b"JFIF\0", b"JFXX\0", b"Adobe"
JFIF_LENGTH = 14    # identifier, version, units, densities, thumbnail size: no thumbnail pixels
ADOBE_LENGTH = 12   # identifier, version, flags0, flags1, colour transform


def segments(data, offset=0):
    """(marker, payload offset, payload length) of every segment from SOI up to and including
    SOS (or EOI in an abbreviated tables-only stream). FormatError on anything else."""
    if data[offset:offset + 2] != b"\xff\xd8":
        raise FormatError("JPEG data does not start with SOI")
    position, found = offset + 2, []
    while True:
        while position < len(data) and data[position] == 0xFF and \
                position + 1 < len(data) and data[position + 1] == 0xFF:
            position += 1  # fill bytes before a marker
        if position + 2 > len(data) or data[position] != 0xFF:
            raise FormatError("JPEG header ends before its scan")
        marker = data[position + 1]
        if marker == EOI:
            return found
        if marker == TEM or marker in RST:
            raise FormatError("JPEG header holds a marker that belongs in scan data")
        if position + 4 > len(data):
            raise FormatError("JPEG segment length runs past the data")
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2 or position + 2 + length > len(data):
            raise FormatError("JPEG segment length runs past the data")
        found.append((marker, position + 4, length - 2))
        if marker == SOS:
            return found
        position += 2 + length


def walk(data, ls=False, padding=False):
    """(marker, payload offset, payload length) of every marker segment of a whole JPEG stream
    `data` (SOI first, EOI its last two bytes, or followed only by NUL bytes with `padding`: a
    tile's recorded length may round the stream up), through the entropy-coded data of every
    scan (`ls`: JPEG-LS stuffing). FormatError when the stream is not exactly that: a marker
    that cannot stand where it does, a segment running past the data, data after EOI."""
    if data[:2] != b"\xff\xd8":
        raise FormatError("JPEG data does not start with SOI")
    end, position, found, scan = len(data), 2, [], False
    while True:
        if scan:  # entropy-coded data: find the next marker
            position = data.find(b"\xff", position)
            while position >= 0 and position + 1 < end:
                following = data[position + 1]
                if (following < 0x80 if ls else following == 0) or following in RST:
                    position = data.find(b"\xff", position + 2)
                elif following == 0xFF:
                    position += 1  # fill byte before a marker
                else:
                    break
            else:
                raise FormatError("JPEG data ends without EOI")
        elif position + 2 > end or data[position] != 0xFF:
            raise FormatError("JPEG data holds bytes where a marker must be")
        while data[position + 1] == 0xFF and position + 2 < end:
            position += 1  # fill bytes
        marker = data[position + 1]
        if marker == EOI:
            if position + 2 != end and not (padding and not data[position + 2:].strip(b"\0")):
                raise FormatError("JPEG stream holds data after EOI")
            return found
        if marker in (SOI, TEM) or marker in RST:
            raise FormatError(f"JPEG data holds a marker 0x{marker:02X} where it cannot stand")
        if position + 4 > end:
            raise FormatError("JPEG segment length runs past the data")
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2 or position + 2 + length > end:
            raise FormatError("JPEG segment length runs past the data")
        found.append((marker, position + 4, length - 2))
        position += 2 + length
        scan = marker == SOS  # entropy-coded data follows a scan header, nothing else


def explained(marker, payload):
    """Whether a header segment holds nothing a person could read: tables and parameters, and
    the fixed JFIF (without thumbnail) and Adobe blocks. COM and every other APPn do not."""
    if marker in TABLES:
        return True
    if marker == APP0:
        return len(payload) == JFIF_LENGTH and payload.startswith(JFIF_ID)
    if marker == APP14:
        return len(payload) == ADOBE_LENGTH and payload.startswith(ADOBE_ID)
    return False


def unexplained(data, offset=0):
    """Names of the header segments of a JPEG stream that may carry text ("COM", "APP1", ...)."""
    names = []
    for marker, at, length in segments(data, offset):
        if not explained(marker, data[at:at + length]):
            names.append("COM" if marker == COM else f"APP{marker - APP0}"
                         if APP0 <= marker <= APP15 else f"marker 0x{marker:02X}")
    return names


def segment_name(marker):
    """How a reason names a segment: "COM segment", "APP1 segment", "marker 0xC8 segment"."""
    return ("COM" if marker == COM else f"APP{marker - APP0}" if APP0 <= marker <= APP15
            else f"marker 0x{marker:02X}") + " segment"


def whole(data, comment_explained=None):
    """What paw cannot explain in `data` read as one whole JPEG stream (a tile's recorded bytes,
    NUL padding after EOI allowed), one phrase each ("COM segment", "APP1 segment", or why the
    stream is not a plain JPEG stream, e.g. "data after EOI"). Empty when the tile is plain.
    A COM segment whose text (Latin-1) `comment_explained` accepts is explained (NDPI strips
    carry the vendor's library name)."""
    def plain(marker, payload):
        if marker == COM and comment_explained is not None:
            return comment_explained(bytes(payload).decode("latin-1"))
        return explained(marker, payload)

    try:
        found = walk(data, padding=True)
    except FormatError as exc:  # name what the header holds too: "COM segment" says most
        try:
            header = [segment_name(m) for m, at, length in segments(data) if not plain(m, data[at:at + length])]
        except FormatError:
            header = []
        return header + [str(exc)]
    return [segment_name(m) for m, at, length in found if not plain(m, data[at:at + length])]
