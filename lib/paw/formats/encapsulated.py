"""DICOM encapsulated pixel data (PS3.5 A.4): what paw proves about a structure it never decodes.

The PixelData element of a compressed transfer syntax has undefined length and holds items: the
Basic Offset Table first (empty, or one 32-bit offset per frame), then the fragments, then a
sequence delimiter. Offsets count from the first fragment's item tag. The Extended Offset Table
(7FE0,0001) and its lengths (7FE0,0002), top-level elements before PixelData, give 64-bit offsets
and frame lengths instead; the Basic Offset Table is then empty (PS3.3 C.7.6.3.1.6).

paw keeps the pixel data byte for byte, so every byte of it must belong to a frame a reader
shows, and every frame must be a codestream whose text-carrying segments can be looked at:

- exactly one fragment per frame: libdicom, OpenSlide's reader, reads a frame as the one item
  an offset points at (a single frame split over two fragments does not decode there), and no
  transfer syntax paw keeps needs more (a fragment holds up to 4 GiB);
- an offset table, when there is one, points exactly at the frames' fragments, in order
  (zeros, duplicates, a skipped fragment, a frame mapped to another fragment are refused: they
  would show a reader one image and keep another); without one, there are exactly as many
  fragments as frames;
- every frame begins with its codec's start marker (SOI, or SOC for JPEG 2000) and ends with
  its end marker (EOI / EOC), followed by at most the one zero byte that pads an odd length:
  nothing before the start marker, nothing after the end.

These are checked for every frame: the first and last bytes of a fragment sit next to the item
headers the walk reads anyway, so the cost is that of the item walk. The whole codestream of a
frame - every marker segment, between progressive scans and just before EOI, found by walking
through the entropy-coded data (jpeg.walk) or the tile-parts (j2k.walk) - is read for a sample
(`sample`: the first, the last and SAMPLE spread frames; all with verify.full_scan).

What a frame outside the sample can still hide: a segment after its first scan (a COM between
progressive scans or before EOI), and anything inside its entropy-coded data or JPEG 2000 packet
data (bytes a decoder turns into pixels, or skips), including a whole image of text in place of
a tile. paw never decodes pixels; verify.full_scan walks every frame's codestream and searches
every byte for the removed values.
"""

import struct

from ..errors import FormatError
from . import j2k, jpeg

ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
MAX_FRAGMENTS = 1 << 24
SAMPLE = 8
START = {"jpeg": b"\xff\xd8", "jpeg-ls": b"\xff\xd8", "j2k": b"\xff\x4f"}
END = b"\xff\xd9"   # EOI, and EOC for JPEG 2000
NAMES = {"jpeg": ("SOI", "EOI"), "jpeg-ls": ("SOI", "EOI"), "j2k": ("SOC", "EOC")}


def _tag(data, at):
    group, number = struct.unpack_from("<HH", data, at)
    return group << 16 | number


def items(data, start):
    """(Basic Offset Table bytes, [(fragment value offset, length)], offset after the sequence
    delimiter) of encapsulated pixel data whose first item starts at `start`."""
    found, position = [], start
    for _ in range(MAX_FRAGMENTS):
        if position + 8 > len(data):
            raise FormatError("PixelData: the fragments run past the end of the file")
        tag, (length,) = _tag(data, position), struct.unpack_from("<I", data, position + 4)
        if tag == SEQUENCE_END:
            if length != 0:
                raise FormatError("PixelData: the sequence delimiter has a length")
            if not found:
                raise FormatError("PixelData: encapsulated without its offset table item")
            return bytes(data[found[0][0]:found[0][0] + found[0][1]]), found[1:], position + 8
        if tag != ITEM or length == UNDEFINED or position + 8 + length > len(data):
            raise FormatError("PixelData: the fragments are not in the encapsulated layout")
        found.append((position + 8, length))
        position += 8 + length
    raise FormatError("PixelData: implausibly many fragments")


def frames(data, table, fragments, count, codec, extended=None, lengths=None):
    """Prove that the fragments are exactly the frames, one each, as the offset tables say;
    FormatError with a one-line reason for a layout paw cannot prove. `table` is the Basic
    Offset Table, `extended` / `lengths` the raw Extended Offset Table values (None when
    absent), `count` NumberOfFrames."""
    if count < 1:
        raise FormatError("PixelData: NumberOfFrames is not a positive number")
    if len(fragments) != count:
        raise FormatError(f"PixelData holds {len(fragments)} fragments for {count} frames "
                          "(paw keeps exactly one fragment per frame)")
    first = fragments[0][0] - 8
    expected = [at - 8 - first for at, _ in fragments]
    if table:
        if len(table) != 4 * count or list(struct.unpack(f"<{count}I", table)) != expected:
            raise FormatError("PixelData: the basic offset table does not point at the frames")
    if extended is not None or lengths is not None:
        if table:
            raise FormatError("PixelData: both a basic and an extended offset table")
        if extended is None or len(extended) != 8 * count or \
                list(struct.unpack(f"<{count}Q", extended)) != expected:
            raise FormatError("ExtendedOffsetTable does not point at the frames")
        if lengths is not None and (len(lengths) != 8 * count or any(
                n not in (size, size - 1) for n, (_, size) in zip(struct.unpack(f"<{count}Q", lengths), fragments))):
            raise FormatError("ExtendedOffsetTableLengths are not the frames' lengths")
    start = START[codec]
    for number, (at, length) in enumerate(fragments, 1):
        if bytes(data[at:at + 2]) != start:
            raise FormatError(f"PixelData frame {number} does not begin with {NAMES[codec][0]}")
        tail = bytes(data[max(at, at + length - 3):at + length])
        if not (tail.endswith(END) or (tail[-1:] == b"\0" and tail[:2] == END)):
            raise FormatError(f"PixelData frame {number} does not end with {NAMES[codec][1]}")


def stream(data, fragment):
    """A frame's codestream: its fragment without the pad byte after the end marker."""
    at, length = fragment
    whole = bytes(data[at:at + length])
    return whole[:-1] if whole[-3:-1] == END and whole[-1:] == b"\0" else whole


def segments(codestream, codec):
    """Every marker segment of a whole frame: (marker, payload offset, payload length)."""
    if codec == "j2k":
        return j2k.walk(codestream)
    return jpeg.walk(codestream, ls=codec == "jpeg-ls")


def sample(count, full):
    """Indexes of the frames whose whole codestream is walked."""
    if full or count <= SAMPLE + 2:
        return range(count)
    return sorted({0, count - 1} | {i * count // SAMPLE for i in range(SAMPLE)})
