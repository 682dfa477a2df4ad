"""JPEG 2000 codestream main headers (ITU-T T.800 annex A), read without decoding anything.

A codestream starts with SOC (FF4F), then marker segments (FF xx, a 2-byte big-endian length
counting itself, the parameters) up to the first tile-part's SOT (FF90). COM (FF64) is free
text by definition (Registration 1 is Latin-1 text); every other main-header marker holds
numbers. A JP2 file (boxes: signature, ftyp, jp2h, xml, uuid ...) around a codestream may carry
text in its boxes: it is not a bare codestream and is named as such.
"""

import struct

from ..errors import FormatError

SOC, SOT, COM = 0x4F, 0x90, 0x64
# Main-header markers whose parameters are numbers: CAP, SIZ, COD, COC, TLM, PLM, CPF, QCD, QCC,
# RGN, POC, PPM, CRG.
NUMBERS = frozenset({0x50, 0x51, 0x52, 0x53, 0x55, 0x57, 0x59, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x63})
JP2_SIGNATURE = b"\0\0\0\x0cjP  \r\n\x87\n"


def unexplained(data, offset=0):
    """Names of the main-header segments of a codestream that may carry text ("COM", ...)."""
    if data[offset:offset + len(JP2_SIGNATURE)] == JP2_SIGNATURE:
        return ["JP2 boxes"]
    if data[offset:offset + 2] != b"\xff\x4f":
        raise FormatError("JPEG 2000 data does not start with SOC")
    position, names = offset + 2, []
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise FormatError("JPEG 2000 main header ends before its first tile")
        marker = data[position + 1]
        if marker == SOT:
            return names
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2:
            raise FormatError("JPEG 2000 marker segment has an impossible length")
        if marker == COM:
            names.append("COM")
        elif marker not in NUMBERS:
            names.append(f"marker 0xFF{marker:02X}")
        position += 2 + length
