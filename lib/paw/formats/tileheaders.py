"""Text in the tiles and strips of kept images, found without decoding them: each walked whole.

paw never decodes or changes tiles, but a JPEG tile is a JPEG stream whose header may hold COM
(free text) and APPn segments (EXIF, XMP, vendor blocks), a JPEG 2000 codestream may hold COM
segments in its main header and in every tile-part header, and any tile's recorded byte count
may run past the end of its stream (JPEG EOI, JPEG 2000 EOC, the deflate end block): decoders
skip all of that, so the pixels tell nothing (verified: a COM, an APP1 or bytes after EOI decode
to identical pixels), while `strings` and exiftool on a cut-out tile show it.

So a walked tile is read WHOLE and must be a plain stream that ends exactly where its byte
count ends (jpeg.whole, j2k.whole; the walks the CZI and VSI audits use):
- JPEG: every marker segment (also between scans) is a table, frame or scan header, a JFIF or
  Adobe block of fixed layout, or a COM whose text the vendor's kind accepts (NDPI's library
  name); the entropy-coded data holds only stuffed 0xFF00 and RSTn; EOI; then nothing.
- JPEG 2000: COM only with an encoder's own banner (ENCODER_COMMENTS); the tile-part chain
  (Psot) reaches EOC; then nothing.
- Deflate: the zlib stream must reach its end block exactly at the byte count. Only zlib can
  find that end, so the sampled tile is inflated (output discarded, at most INFLATE_LIMIT
  bytes) — the one place paw runs a decoder over a tile, in verification only; nothing is
  rewritten.
- NDPI level strips are one JPEG stream of up to gigabytes, cut into restart intervals whose
  starts the McuStarts tag lists (tifffile shows them as tiles): the strip's header is walked,
  then each sampled interval is read whole and must be entropy-coded data ending with its own
  restart marker (RST0..7 in turn; the last with EOI at the strip's end).
"Then nothing" allows NUL padding (it carries no text, and jpeg.whole/j2k.whole accept it for
CZI and VSI); the real fixtures have none — every tile and strip ends exactly with its EOI, and
boxes.tiff's deflate tiles end exactly at their byte count.

Which tiles: per image the first, the last and DRAWN more drawn at random (`secrets`: a file
writer cannot predict them, and the plan and the verification draw apart), each read whole — a
slide costs at most (DRAWN + 2) tile reads per image whatever its size. With `verify.full_scan`
every tile of every kept image is walked. A writer who plants text in k of a level's n tiles is
missed by one draw with probability C(n-k, DRAWN) / C(n, DRAWN), about (1 - k/n) ** DRAWN:
a planted segment in every tenth tile is found (1 - 0.9**32 > 96 %), one in a single tile of
100 000 is not (0.03 %): that needs full_scan (README).

A JPEG header that does not parse (the real unreadable.svs has a tile whose SOS marker was
damaged) is not refused for that alone: no decoder shows that tile. It must still start with
SOI, end with EOI, hold no marker but tables, RSTn and a fixed JFIF/Adobe block (no COM, no
other APPn) and no run of text (ten identifier characters, or UTF-16: see _looks_like_text).

LZW, PackBits and uncompressed tiles have no header and no end marker (their end is where the
decoded size is reached); they are not walked (README: what is left).
"""

import errno
import os
import re
import secrets
import zlib
from typing import NamedTuple

import numpy as np

from . import j2k, jpeg
from ..errors import FormatError
from .allow import Pattern
from .tiffallow import DEFLATE, JPEG, JPEG2000, NO_CONTAINER

DRAWN = 64                 # tiles drawn at random per image, besides the first and the last
WHOLE_LIMIT = 256 << 20    # a tile or strip read whole is at most this long; a longer one refuses
INFLATE_LIMIT = 64 << 20   # a deflate tile inflating to more is refused (a 4096² RGBA tile)
CHUNK = 8 << 20            # restart intervals read together, at most this much at once
# COM strings JPEG 2000 encoders write by default: OpenJPEG's banner (j2k.ENCODER_BANNER, the
# one rule every format shares; verified with 2.5.4) and Kakadu's version.
ENCODER_COMMENTS = j2k.ENCODER_BANNER | Pattern(r"Kakadu-v\d+(?:\.\d+)*[A-Za-z]?")
# What counts as text in the bytes of a tile whose header does not parse (see _looks_like_text).
_WORDY = re.compile(rb"[A-Za-z0-9 ^_.,:/-]{10,}")
_UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){6,}|(?:\x00[\x20-\x7e]){6,}")


class Image(NamedTuple):
    """One kept image as the walks see it. `spans` is an (N, 2) array of (offset, length) of
    its tiles or strips — for an NDPI strip with a restart table, of its restart intervals, and
    `header` is then the (offset, length) of the strip's JPEG header before the first one.
    `comments`: the kind of COM text the vendor writes in its JPEG streams (None: no COM)."""
    where: str
    compression: int
    spans: object
    comments: object = None
    header: tuple = None


def sample(count, full, drawn=None):
    """Indexes of the tiles to walk: all with `full`, else the first, the last and `drawn`
    (DRAWN) others drawn from a secret random source (so a file's writer cannot know which)."""
    drawn = DRAWN if drawn is None else drawn
    if full or count <= drawn + 2:
        return range(count)
    return sorted({0, count - 1, *secrets.SystemRandom().sample(range(1, count - 1), drawn)})


def restart_layout(where, offset, length, starts):
    """(header, intervals) of an NDPI JPEG strip at `offset` whose restart intervals start at
    `starts` (McuStarts: offsets from the strip's start, just after each restart marker):
    FormatError unless they rise strictly inside the strip."""
    starts = np.asarray(starts, dtype=np.int64)
    if not len(starts) or starts[0] <= 0 or starts[-1] >= length or np.any(np.diff(starts) <= 0):
        raise FormatError(f"{where}: its MCU starts do not lie in rising order inside its strip")
    ends = np.append(starts[1:], length)
    return (offset, int(starts[0])), np.column_stack((offset + starts, ends - starts))


def problems(fd, images, full=False):
    """One reason for the first tile of each image that is not a plain stream (naming the
    directory, the tile and what is wrong — never its text). `images` yields Image."""
    found = []
    for image in images:
        reason = _image(fd, image, full)
        if reason:
            found.append(f"{image.where}{reason}")
    return found


def sampled_spans(images, full=False):
    """(offset, length) of the tiles a fresh draw picks in every image (the value search reads
    them too): an (N, 2) array."""
    picked = [np.asarray(image.spans, dtype=np.int64).reshape(-1, 2)[list(sample(len(image.spans), full))]
              for image in images if len(image.spans)]
    return np.concatenate(picked) if picked else np.zeros((0, 2), dtype=np.int64)


def _image(fd, image, full):
    compression = image.compression
    spans = np.asarray(image.spans, dtype=np.int64).reshape(-1, 2)
    if compression in JPEG and image.header is not None:
        return _restart_strip(fd, image, spans, full)
    if compression in JPEG:
        def walk(data):
            return _jpeg(data, image.comments)
    elif compression in JPEG2000:
        def walk(data):
            return [f"JPEG 2000 {name}" for name in
                    j2k.whole(data, lambda text: ENCODER_COMMENTS.accepts(text.rstrip("\0")))]
    elif compression in DEFLATE:
        walk = _deflate
    elif compression in NO_CONTAINER:
        return None
    else:
        return f": tile compression {compression} is not one paw can check for text"
    for index in sample(len(spans), full):
        offset, length = (int(x) for x in spans[index])
        if length <= 0:
            continue
        if length > WHOLE_LIMIT:
            return f" tile {index}: longer than paw reads whole"
        try:
            data = os.pread(fd, length, offset) if offset >= 0 else b""
        except OSError as exc:  # an offset no file can have; a failing disk is not the file's fault
            if exc.errno not in (errno.EINVAL, errno.EOVERFLOW):
                raise
            data = b""
        names = walk(data) if len(data) == length else ["runs past the end of the file"]
        if names:
            return f" tile {index}: {names[0]}"
    return None


def _jpeg(data, comments):
    """jpeg.whole, but a header that does not parse gets the damaged-tile rule."""
    explained = comments.accepts if comments is not None else None
    try:
        jpeg.segments(data)
    except FormatError:
        return _damaged(data)
    return [f"JPEG {name}" if not name.startswith("JPEG") else name
            for name in jpeg.whole(data, explained)]


def _damaged(data):
    """A JPEG tile whose header does not parse: SOI first, EOI last (NUL padding after it), no
    marker but tables between, no run of text."""
    end = len(data.rstrip(b"\0"))
    if data[:2] != b"\xff\xd8" or end < 4 or data[end - 2:end] != b"\xff\xd9":
        return ["JPEG data that does not parse and does not end with EOI"]
    a = np.frombuffer(data, dtype=np.uint8)[:end - 2]
    ff = np.flatnonzero(a[2:-1] == 0xFF) + 2
    following = a[ff + 1]
    for at in ff[(following != 0) & (following != 0xFF)].tolist():
        marker = data[at + 1]
        if marker in jpeg.TABLES or marker in jpeg.RST:
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker not in (jpeg.APP0, jpeg.APP14) or not jpeg.explained(marker, data[at + 4:at + 2 + length]):
            return ["JPEG data that does not parse holds a segment that may carry text"]
    if _looks_like_text(data):
        return ["JPEG data that does not parse holds text"]
    return []


def _looks_like_text(data):
    """Text in bytes that are otherwise compressed data: a run of WORDY identifier characters
    (random data has one in under 1 % of 4 KiB windows) or UTF-16 text."""
    return bool(_WORDY.search(data) or _UTF16.search(data))


def _deflate(data):
    """The zlib stream must end exactly where the tile ends (NUL padding allowed)."""
    stream, rest, total = zlib.decompressobj(), data, 0
    try:
        while not stream.eof:
            total += len(stream.decompress(rest, 1 << 20))
            rest = stream.unconsumed_tail
            if total > INFLATE_LIMIT:
                return ["deflate data inflates past any tile"]
            if not rest and not stream.eof and not stream.decompress(b"", 1):
                return ["deflate stream has no end"]
    except zlib.error:
        return ["deflate data does not parse"]
    if stream.unused_data.strip(b"\0"):
        return ["data after the end of the deflate stream"]
    return []


def _restart_strip(fd, image, spans, full):
    """An NDPI strip: its header, then the sampled restart intervals (all with `full`)."""
    offset, length = image.header
    head = os.pread(fd, length, offset)
    explained = image.comments.accepts if image.comments is not None else None
    try:
        found = jpeg.segments(head + b"\xff\xd9")   # an EOI so that a header without SOS stops
    except FormatError as exc:
        return f" strip header: {exc}"
    for marker, at, size in found:
        plain = explained(head[at:at + size].decode("latin-1")) if marker == jpeg.COM and explained \
            else jpeg.explained(marker, head[at:at + size])
        if not plain:
            return f" strip header: JPEG {jpeg.segment_name(marker)}"
    if not found or found[-1][0] != jpeg.SOS or found[-1][1] + found[-1][2] != length:
        return " strip header: the JPEG scan does not start where the first restart interval does"
    if len(spans) and (spans[0, 0] != offset + length or
                       np.any(spans[1:, 0] != spans[:-1, 0] + spans[:-1, 1])):
        return " strip: its restart intervals do not follow each other"
    picks = np.asarray(list(sample(len(spans), full)), dtype=np.int64)
    last = len(spans) - 1
    # Contiguous picks are read together, up to CHUNK bytes at once.
    start = 0
    while start < len(picks):
        stop, first = start + 1, spans[picks[start], 0]
        while stop < len(picks) and picks[stop] == picks[stop - 1] + 1 and \
                spans[picks[stop], 0] + spans[picks[stop], 1] - first <= CHUNK:
            stop += 1
        group = picks[start:stop]
        reason = _intervals(fd, spans, group, last)
        if reason:
            return reason
        start = stop
    return None


def _intervals(fd, spans, group, last):
    """Contiguous restart intervals `group`: entropy-coded data (0xFF only as stuffed 0xFF00 or
    fill before a marker), each ending with its restart marker RST(i mod 8), the last with EOI."""
    first = int(spans[group[0], 0])
    size = int(spans[group[-1], 0] + spans[group[-1], 1]) - first
    data = os.pread(fd, size, first)
    if len(data) != size:
        return f" restart interval {int(group[0])}: runs past the end of the file"
    a = np.frombuffer(data, dtype=np.uint8)
    ff = np.flatnonzero(a[:-1] == 0xFF)
    following = a[ff + 1]
    markers = ff[(following != 0) & (following != 0xFF)]
    ends = spans[group, 0] + spans[group, 1] - 2 - first
    codes = np.where(group == last, jpeg.EOI, 0xD0 + group % 8)
    if len(markers) == len(ends) and np.array_equal(markers, ends) and np.array_equal(a[ends + 1], codes):
        return None
    wrong = next((i for i, end in enumerate(ends) if
                  not np.array_equal(markers[(markers > (ends[i - 1] if i else -1)) & (markers <= end)], [end])
                  or a[end + 1] != codes[i]), 0)
    return f" restart interval {int(group[wrong])}: not entropy data ending with its restart marker"
