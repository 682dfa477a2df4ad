"""JPEG 2000 codestream marker segments (ITU-T T.800 annex A; HTJ2K T.814), read without decoding.

A codestream starts with SOC (FF4F), then the main header's marker segments (FF xx, a 2-byte
big-endian length counting itself, the parameters) up to the first tile-part's SOT (FF90); each
tile-part is SOT (whose Psot gives the tile-part's length), the tile-part header's segments, SOD
and the coded data; EOC ends the stream. COM (FF64) is free text by definition (Registration 1
is Latin-1 text) and may stand in the main header or in any tile-part header; every other
segment holds numbers (image and tile size, coding style, quantisation, pointers). A JP2 file
(boxes: signature, ftyp, jp2h, xml, uuid ...) around a codestream may carry text in its boxes:
it is not a bare codestream and is named as such.

Callers may pass only the first bytes of a tile or frame (`unexplained`): the main header must
be complete in them; tile-part headers are read as far as the bytes go. `whole` reads a tile as
a whole codestream, the way a sampled tile of a Zeiss CZI or Olympus VSI slide is checked: the
tile-part chain (by Psot) must reach EOC, and the bytes after EOC, up to the tile's recorded
length, may only be NUL padding (text appended after EOC is skipped by every decoder).

ENCODER_BANNER is the one COM text an encoder writes by default that paw explains, shared by
every format (DICOM frames, TIFF tiles, VSI tiles): OpenJPEG's "Created by OpenJPEG version
2.5.2" (Pillow and OpenJPEG 2.5 write it; checked with 2.5.4).
"""

import struct

from ..errors import FormatError
from .allow import Pattern

ENCODER_BANNER = Pattern(r"Created by OpenJPEG version [0-9]{1,3}(?:\.[0-9]{1,3}){1,3}")

SOC, SOT, SOD, EOC, COM = 0x4F, 0x90, 0x93, 0xD9, 0x64
# Segments whose parameters are numbers: CAP, SIZ, COD, COC, TLM, PRF, PLM, PLT, CPF, QCD, QCC,
# RGN, POC, PPM, PPT, CRG.
NUMBERS = frozenset({0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5C, 0x5D, 0x5E, 0x5F,
                     0x60, 0x61, 0x63})
JP2_SIGNATURE = b"\0\0\0\x0cjP  \r\n\x87\n"
MAX_TILE_PARTS = 1 << 16


def _segments(data, position, stop, complete):
    """(marker, payload offset, payload length) from `position` up to a marker in `stop`:
    (segments, offset of that marker, or None where the bytes ran out and `complete` is False)."""
    found = []
    while True:
        if position + 4 > len(data):
            if complete:
                raise FormatError("JPEG 2000 main header ends before its first tile")
            return found, None
        if data[position] != 0xFF:
            raise FormatError("JPEG 2000 header holds something that is not a marker segment")
        marker = data[position + 1]
        if marker in stop:
            return found, position
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2:
            raise FormatError("JPEG 2000 marker segment has an impossible length")
        found.append((marker, position + 4, length - 2))
        position += 2 + length


def segments(data, offset=0):
    """Every marker segment of the main header and of the tile-part headers within `data`."""
    if data[offset:offset + 2] != b"\xff\x4f":
        raise FormatError("JPEG 2000 data does not start with SOC")
    found, position = _segments(data, offset + 2, (SOT, EOC), complete=True)
    for _ in range(MAX_TILE_PARTS):
        if position is None or position + 12 > len(data) or data[position + 1] != SOT:
            return found  # EOC, or the end of the bytes given
        (psot,) = struct.unpack_from(">I", data, position + 6)
        header, _ = _segments(data, position + 12, (SOD,), complete=False)
        found += header
        if psot == 0:  # the last tile-part runs to EOC
            return found
        position += psot
        if position + 2 > len(data) or data[position] != 0xFF:
            return found
    raise FormatError("JPEG 2000 codestream has an implausible number of tile-parts")


def walk(data):
    """Every marker segment of a whole codestream `data` (SOC first, EOC its last two bytes):
    the main header, then each tile-part's header (SOT, whose Psot gives the tile-part's
    length, the segments up to SOD), the tile-parts following each other exactly up to EOC.
    The coded data between SOD and the next tile-part is skipped by its length, never read.
    FormatError when the codestream is not exactly that (bytes after EOC, a tile-part that
    does not end where the next begins)."""
    if data[:2] != b"\xff\x4f":
        raise FormatError("JPEG 2000 data does not start with SOC")
    end = len(data)
    found, position = _segments(data, 2, (SOT, EOC), complete=True)
    for _ in range(MAX_TILE_PARTS):
        if data[position + 1] == EOC:
            if position + 2 != end:
                raise FormatError("JPEG 2000 codestream holds data after EOC")
            return found
        if position + 12 > end:
            raise FormatError("JPEG 2000 tile-part header runs past the data")
        (lsot,) = struct.unpack_from(">H", data, position + 2)
        (psot,) = struct.unpack_from(">I", data, position + 6)
        if lsot != 10:
            raise FormatError("JPEG 2000 SOT segment has an impossible length")
        header, sod = _segments(data, position + 12, (SOD,), complete=False)
        if sod is None:
            raise FormatError("JPEG 2000 tile-part header has no SOD")
        found += header
        following = end - 2 if psot == 0 else position + psot
        if following <= sod or following + 2 > end or data[following] != 0xFF or \
                data[following + 1] not in (SOT, EOC) or (psot == 0 and data[following + 1] != EOC):
            raise FormatError("JPEG 2000 tile-part does not end where the next part or EOC begins")
        position = following
    raise FormatError("JPEG 2000 codestream has an implausible number of tile-parts")


def unexplained(data, offset=0, comment_explained=ENCODER_BANNER.accepts):
    """Names of the segments of a codestream that may carry text ("COM", an unknown marker, or
    "JP2 boxes" for a JP2 file). A COM segment of Latin-1 text (Registration 1) that
    `comment_explained(text)` accepts is explained: encoders write their banner there
    (ENCODER_BANNER, unless the caller says otherwise)."""
    if data[offset:offset + len(JP2_SIGNATURE)] == JP2_SIGNATURE:
        return ["JP2 boxes"]
    return _unexplained(data, segments(data, offset), comment_explained)


def _unexplained(data, found, comment_explained):
    names = []
    for marker, at, length in found:
        if marker == COM:
            latin = length >= 2 and data[at:at + 2] == b"\x00\x01"
            if not (latin and comment_explained(bytes(data[at + 2:at + length]).decode("latin-1"))):
                names.append("COM")
        elif marker not in NUMBERS:
            names.append(f"marker 0xFF{marker:02X}")
    return names


def whole(data, comment_explained=ENCODER_BANNER.accepts):
    """What paw cannot explain in `data` read as one whole codestream (a tile's recorded bytes;
    NUL padding after EOC allowed, EOC ends in a non-NUL byte), one phrase each ("COM segment",
    or why it is not a plain codestream, e.g. "data after EOC"). Empty when the tile is plain."""
    try:
        found = walk(data.rstrip(b"\0"))
    except FormatError as exc:  # name what the header holds too: "COM segment" says most
        return [f"{name} segment" for name in _header_names(data, comment_explained)] + [str(exc)]
    return [f"{name} segment" for name in _unexplained(data, found, comment_explained)]


def _header_names(data, comment_explained):
    try:
        return unexplained(data, 0, comment_explained)
    except FormatError:
        return []
