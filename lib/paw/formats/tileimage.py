"""Whole tile images stored as files of their own (MRXS data files): what they may carry besides pixels.

A 3DHistech zoom level stores each camera image as a complete JPEG, PNG or BMP (Slidedat.ini's
IMAGE_FORMAT, OpenSlide's openslide-vendor-mirax.c reads the three). paw never decodes them, but
each format has places for text a decoder skips:

  JPEG  COM and APPn segments anywhere in the stream (before the first scan, between
        progressive scans, before EOI), bytes after EOI: the whole stream is walked through its
        entropy-coded data (jpeg.walk); table and frame segments, JFIF without a thumbnail and
        Adobe APP14 are explained, nothing else
  PNG   ancillary chunks: tEXt, zTXt, iTXt, eXIf, iCCP (a profile name), tIME (a date), private
        chunks; only the image's own chunks (IHDR, PLTE, IDAT, IEND) and the numeric ones
        (tRNS, gAMA, cHRM, sRGB, sBIT, bKGD, pHYs) are explained, and nothing after IEND
  BMP   only the file header and a plain BITMAPINFOHEADER (24-bit, uncompressed, no palette
        counts, reserved bytes zero), the pixel rows, nothing after them

`unexplained(data, kind)` names what is not explained (a segment or chunk by its name, never
its content); FormatError when the image is not in its format's layout at all. `problems` walks
the first, the last and SAMPLE spread tiles of each level (all of them with verify.full_scan):
a tile outside the sample can still hold such a segment; the full scan finds it.
"""

import struct

from ..errors import FormatError
from . import jpeg

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_EXPLAINED = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
                           b"sBIT", b"bKGD", b"pHYs"})
BMP_HEADER, BMP_INFO = 14, 40
SAMPLE = 8          # tiles walked between the first and the last of each level


def problems(files, levels, full=False):
    """One line per sampled tile image that holds something besides its pixels. `files` are
    the data files' paths by number, `levels` (image format, [(file number, offset, length)])
    per zoom level. Names the level and the tile's number, never a file's own name."""
    found, handles = [], {}
    try:
        for level, (kind, tiles) in enumerate(levels):
            for n in sample(len(tiles), full):
                fileno, offset, length = tiles[n]
                if fileno not in handles:
                    handles[fileno] = open(files[fileno], "rb")
                handles[fileno].seek(offset)
                try:
                    bad = unexplained(handles[fileno].read(length), kind)
                except FormatError as exc:
                    bad = [str(exc)]
                if bad:
                    found.append(f"zoom level {level} tile {n}: {bad[0]}")
    finally:
        for handle in handles.values():
            handle.close()
    return found


def sample(count, full):
    if full or count <= SAMPLE + 2:
        return range(count)
    return sorted({0, count - 1} | {i * count // SAMPLE for i in range(SAMPLE)})


def unexplained(data, kind):
    """Names of what an image of `kind` ("JPEG", "PNG", "BMP24") holds besides its pixels."""
    if kind == "JPEG":
        return [_jpeg_name(marker) for marker, at, length in jpeg.walk(data)
                if not jpeg.explained(marker, data[at:at + length])]
    if kind == "PNG":
        return _png(data)
    if kind == "BMP24":
        return _bmp(data)
    raise FormatError("tile image format is not one paw can check")


def _jpeg_name(marker):
    if marker == jpeg.COM:
        return "COM segment"
    if jpeg.APP0 <= marker <= jpeg.APP15:
        return f"APP{marker - jpeg.APP0} segment"
    return f"marker 0x{marker:02X}"


def _png(data):
    if not data.startswith(PNG_SIGNATURE):
        raise FormatError("PNG tile does not start with the PNG signature")
    found, position = [], len(PNG_SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise FormatError("PNG tile ends before IEND")
        length, name = struct.unpack_from(">I4s", data, position)
        if position + 12 + length > len(data):
            raise FormatError("PNG chunk runs past the tile")
        if name not in PNG_EXPLAINED:
            found.append(f"{name.decode('latin-1')!r} chunk" if name.isalpha() else "an unnamed chunk")
        position += 12 + length
        if name == b"IEND":
            if position != len(data):
                found.append("bytes after IEND")
            return found


def _bmp(data):
    if len(data) < BMP_HEADER + BMP_INFO or data[:2] != b"BM":
        raise FormatError("BMP tile does not start with a BMP header")
    size, offset = struct.unpack_from("<I", data, 2)[0], struct.unpack_from("<I", data, 10)[0]
    reserved = struct.unpack_from("<I", data, 6)[0]
    info, width, height, planes, bits, compression, _, _, _, used, important = \
        struct.unpack_from("<IiiHHIIiiII", data, BMP_HEADER)
    row = (width * bits + 31) // 32 * 4
    if info != BMP_INFO or offset != BMP_HEADER + BMP_INFO or planes != 1 or bits != 24 or \
            width <= 0 or height == 0 or reserved or compression or used or important:
        return ["a header that is not a plain 24-bit BITMAPINFOHEADER"]
    if size != len(data) or offset + row * abs(height) != len(data):
        return ["bytes beside the pixel rows"]
    return []
