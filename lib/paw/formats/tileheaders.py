"""Text in the headers of image tiles and strips, found without decoding them.

paw never decodes or changes tiles, but a JPEG tile is a JPEG stream whose header may hold COM
(free text) and APPn segments (EXIF, XMP, vendor blocks), and a JPEG 2000 codestream may hold
COM segments in its main header and in every tile-part header; decoders skip them, so the
pixels tell nothing (verified: a COM or APP1 with a name decodes to identical pixels). They are
read here by walking markers, never the entropy-coded data.

Cost is kept flat in slide size: per image, the first and the last tile and SPREAD more evenly
between them are walked (a JPEG header is 20-700 bytes; each walk reads one WINDOW, more only
if the header is longer), so a slide costs at most (SPREAD + 2) reads per directory whatever
its size — about 10 reads of 4 KiB per level, well under a millisecond from cache. With
`verify.full_scan` every tile is walked, and JPEG entropy data is searched for markers that
carry text (and the bytes after EOI for printable runs): that reads the whole image, as the
full scan's value search does anyway.

What is explained: table and frame segments; APP0 JFIF without thumbnail and APP14 Adobe
(fixed binary layouts); COM segments whose text the vendor's kind accepts (NDPI writes its
library name in every strip); JPEG 2000 COM with an encoder's own string (ENCODER_COMMENTS).
Everything else is reported, naming the directory, the tile and the segment — never its text.

A header that does not parse (the real unreadable.svs has a tile whose SOS marker was damaged)
is not refused for that alone: its bytes from where the walk stopped are compressed data like
any tile payload, which paw never reads; they are searched for text (a run of ten identifier
characters, or UTF-16 text: random data holds such a run in under 1 % of 4 KiB windows, the
plain printable-run rule in most) and reported like a COM segment if they hold any.
"""

import os
import re
import struct

import numpy as np

from . import j2k
from ..errors import FormatError
from .allow import Pattern
from .jpeg import ADOBE_ID, ADOBE_LENGTH, APP0, APP14, APP15, COM, EOI, JFIF_ID, JFIF_LENGTH, RST, SOS, TABLES
from .tiffallow import JPEG, JPEG2000, NO_CONTAINER

SPREAD = 8           # tiles walked between the first and the last of each image
WINDOW = 4096        # bytes read per tile header at first
MOST = 1 << 20       # a header longer than this is refused
CHUNK = 8 << 20      # full-scan reads of entropy data
# COM strings JPEG 2000 encoders write by default: OpenJPEG's banner (j2k.ENCODER_BANNER, the
# one rule every format shares; verified with 2.5.4) and Kakadu's version.
ENCODER_COMMENTS = j2k.ENCODER_BANNER | Pattern(r"Kakadu-v\d+(?:\.\d+)*[A-Za-z]?")
J2K_WINDOW = 64 << 10  # a sampled JPEG 2000 tile: its main and first tile-part headers
# What counts as text in compressed bytes a header walk could not explain (see _looks_like_text).
_WORDY = re.compile(rb"[A-Za-z0-9 ^_.,:/-]{10,}")
_UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){6,}|(?:\x00[\x20-\x7e]){6,}")


class Short(FormatError):
    """The header runs past the end of the tile (or past MOST bytes)."""


class _Tile:
    """Lazy reads of one tile: the header walkers ask for byte ranges; each miss reads one
    WINDOW (or what was asked) from the file."""

    def __init__(self, fd, offset, length):
        self.fd, self.offset, self.length = fd, offset, length
        self.start, self.data = 0, b""

    def get(self, position, size):
        end = position + size
        if position < 0 or end > self.length or end > MOST:
            raise Short
        if not (self.start <= position and end <= self.start + len(self.data)):
            self.start = position
            self.data = os.pread(self.fd, min(self.length - position, max(size, WINDOW)),
                                 self.offset + position)
        return self.data[position - self.start:end - self.start]

    def window(self, position):
        """Up to WINDOW bytes from `position` (for the printable-run fallback)."""
        return os.pread(self.fd, max(0, min(self.length - position, WINDOW)), self.offset + position)


def sample(count, full):
    """Indexes of the tiles to walk: all with `full`, else first, last and SPREAD between."""
    if full or count <= SPREAD + 2:
        return range(count)
    step = (count - 1) / (SPREAD + 1)
    return sorted({0, count - 1, *(round(step * (i + 1)) for i in range(SPREAD))})


def problems(fd, images, full=False):
    """One reason per header segment paw cannot explain. `images` yields (where, compression,
    spans, comments): `where` names the directory ("directory 3"), `spans` is an (N, 2) array of
    (offset, length) of its tiles or strips, `comments` a kind for the COM text the vendor
    writes (None: no COM allowed)."""
    found = []
    for where, compression, spans, comments in images:
        if compression in NO_CONTAINER:
            continue
        if compression not in JPEG and compression not in JPEG2000:
            found.append(f"{where}: tile compression {compression} is not one paw can check for text")
            continue
        spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        for index in sample(len(spans), full):
            offset, length = (int(x) for x in spans[index])
            if length <= 0:
                continue
            walk = _jpeg if compression in JPEG else _j2k
            for reason in walk(fd, offset, length, comments, full):
                found.append(f"{where} tile {index}: {reason}")
                break
    return found


def _explained_jpeg(marker, payload, comments):
    if marker in TABLES:
        return True
    if marker == APP0:
        return len(payload) == JFIF_LENGTH and payload.startswith(JFIF_ID)
    if marker == APP14:
        return len(payload) == ADOBE_LENGTH and payload.startswith(ADOBE_ID)
    if marker == COM:
        return comments is not None and comments.accepts(payload.decode("latin-1"))
    return False


def _segment_name(marker):
    if marker == COM:
        return "COM"
    if APP0 <= marker <= APP15:
        return f"APP{marker - APP0}"
    return f"marker 0x{marker:02X}"


def _jpeg(fd, offset, length, comments, full):
    tile = _Tile(fd, offset, length)
    try:
        if tile.get(0, 2) != b"\xff\xd8":
            return _unparsed(tile, 0)
    except Short:
        return _unparsed(tile, 0)
    position = 2
    try:
        while True:
            while tile.get(position, 2) == b"\xff\xff":  # fill bytes before a marker
                position += 1
            head = tile.get(position, 4)
            marker = head[1]
            if head[0] != 0xFF or marker == EOI or marker in RST or marker in (0x00, 0x01):
                return _unparsed(tile, position)
            (seglen,) = struct.unpack_from(">H", head, 2)
            if seglen < 2:
                return _unparsed(tile, position)
            payload = tile.get(position + 4, seglen - 2)
            if not _explained_jpeg(marker, payload, comments):
                return [f"JPEG header has a {_segment_name(marker)} segment paw cannot explain"]
            position += 2 + seglen
            if marker == SOS:
                break
    except Short:
        if length > MOST and position + 4 <= MOST:
            return ["JPEG header is longer than paw reads"]
        return _unparsed(tile, position)
    if full:
        return _entropy(fd, offset, length, position)
    return []


def _looks_like_text(data):
    """Text in bytes that are otherwise compressed data: a run of WORDY identifier characters
    (random data has one in under 1 % of 4 KiB windows) or UTF-16 text."""
    return bool(_WORDY.search(data) or _UTF16.search(data))


def _unparsed(tile, position):
    """A header that does not parse: text in the bytes that could not be walked is reported."""
    if _looks_like_text(tile.window(position)):
        return ["header does not parse and holds text"]
    return []


def _entropy(fd, offset, length, start):
    """Markers inside the entropy-coded data (another scan's COM/APPn) and text after EOI, read
    in CHUNK pieces (an NDPI level strip can be gigabytes)."""
    position = start
    while position < length - 1:
        size = min(CHUNK, length - position)
        data = os.pread(fd, min(size + 1, length - position), offset + position)  # +1: a marker's second byte
        a = np.frombuffer(data, dtype=np.uint8)
        ff = np.flatnonzero(a[:-1] == 0xFF)
        following = a[ff + 1]
        markers = ff[(following != 0) & (following != 0xFF) & ((following < 0xD0) | (following > 0xD7))]
        for at in markers:
            marker = int(a[at + 1])
            if marker == COM or APP0 <= marker <= APP15:
                return [f"JPEG data holds a {_segment_name(marker)} segment"]
            if marker == EOI:
                return _text_after(fd, offset, position + int(at) + 2, length, "JPEG")
        position += size
    return []


def _text_after(fd, offset, position, length, what):
    """Text in the bytes after a codestream's end (a tile's length may run past it)."""
    while position < length:
        size = min(CHUNK, length - position)
        if _looks_like_text(os.pread(fd, size, offset + position)):
            return [f"text after the end of the {what} stream"]
        position += size - 32 if size == CHUNK else size
    return []


def _j2k(fd, offset, length, comments, full):
    """A raw JPEG 2000 codestream (ITU-T T.800 annex A), walked by j2k.py: the main header and
    the tile-part headers within the bytes read (J2K_WINDOW; the whole tile with full_scan)."""
    data = os.pread(fd, min(length, 64 * MOST if full else J2K_WINDOW), offset)
    try:
        names = j2k.unexplained(data, comment_explained=lambda text: ENCODER_COMMENTS.accepts(text.rstrip("\0")))
    except FormatError:
        return _unparsed(_Tile(fd, offset, length), 0)
    if names:
        return [f"JPEG 2000 header has a {names[0]} segment paw cannot explain"]
    end = data.rfind(b"\xff\xd9")
    if full and end >= 0:
        return _text_after(fd, offset, end + 2, length, "JPEG 2000")
    return []
