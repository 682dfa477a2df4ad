"""The residual audit of an anonymized CZI: every text and every byte left outside pixel data
must be explained by what may stay (czi.XML_KEEP, SUBBLOCK_KEEP, KEPT_ATTACHMENTS), or the slide
is refused, naming the field (never its value).

Written against those tables and the ZISRAW layout, not against the scrubber: the segments are
walked again with this module's own reader, the XML is read with expat (the scrubber uses
ElementTree) so comments, processing instructions, CDATA and DOCTYPEs are seen, and every byte
of every segment must be one of: a header field (a number or a known Id), a directory entry, an
explained XML text, a kept attachment's numbers, or subblock pixel data. Every other byte —
spare fields, padding, the slack after each segment's content, deleted segments — must be zero.

Numbers are typed by what they are: the Size<D> elements must equal the subblock directory's
extent of D (the audit computes it from its own reading of the directory), the TimeStamps a
non-decreasing list starting at 0, rounded to the microsecond; the file GUIDs and the kept
attachment's ContentGuid must be random (version 4) GUIDs, as paw writes them.

Pixel data is not decoded, but JPEG and JPEG XR subblocks are sampled (the first, the last and
up to SAMPLE in between of each codec; all with verify.full_scan) and read whole: every JPEG
marker segment through the scan data to EOI and nothing but NUL padding after it (jpeg.whole),
every JPEG XR directory entry and byte (jpegxr.whole). A COM or APPn segment, EXIF or an image
description there may carry text.
"""

import os
import re
import struct
import xml.parsers.expat

import math
import uuid

from .. import ranges
from ..errors import FormatError
from ..sparse import first_nonzero
from . import jpeg, jpegxr
from .allow import Residual, unexplained
from .czi import (ALIGN, ATTACH, ATTACH_DATA, ATTACH_ENTRY, ATTDIR, ATTDIR_DATA, CONTAINER, DELETED,
                  DIMENSION, DIMENSION_LETTERS, DIRECTORY, DIRECTORY_DATA, DIRECTORY_SIZES, DV_FIXED,
                  DV_SPARE, DV_SPARE_LENGTH, FILE, FILE_FIELDS, FILE_USED, HEADER, JPEG_COMPRESSION,
                  KEPT_ATTACHMENTS, KNOWN_IDS, MAX_DIMENSIONS, METADATA, METADATA_DATA, PIXEL_TYPES,
                  REQUIRED, ROOT, SUBBLOCK, SUBBLOCK_DATA, SUBBLOCK_KEEP, SUBBLOCK_ROOT, TIMESTAMP_DIGITS,
                  TIMESTAMP_SPAN, TIMESTAMPS, VERSION, XML_KEEP)

SAMPLE = 8             # subblocks read whole between the first and the last of each codec
JPEG_XR_COMPRESSION = 4
WALKED = {JPEG_COMPRESSION: jpeg.whole, JPEG_XR_COMPRESSION: jpegxr.whole}


class _Audit:
    def __init__(self, fd, size):
        self.fd, self.size = fd, size
        self.problems, self.residuals = [], []
        self.explained = []      # (offset, length) that may hold non-zero bytes
        self.pixels = []         # (offset, length, compression) of subblock pixel data
        self.extents = {}        # dimension letter -> extent, from the subblock directory
        self.sizes = []          # (element path, text) of the metadata's Size<D> elements
        self.listed = {}         # attachment segment offset -> its directory entry
        self.timestamps = 0      # TimeStamps attachments met

    def read(self, offset, length):
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise FormatError("a CZI segment runs past the end of the file")
        return data

    def allow(self, offset, length):
        if length > 0:
            self.explained.append((offset, length))


def audit(path, plan, options):
    """Problems found in the anonymized CZI at `path` (empty when it may leave)."""
    with open(path, "rb") as fh:
        fd = fh.fileno()
        audit = _Audit(fd, os.fstat(fd).st_size)
        try:
            _walk(audit)
        except (FormatError, UnicodeDecodeError, struct.error) as exc:
            return [f"the anonymized CZI does not read back: {exc}"]
        problems = list(audit.problems)
        for element, text in audit.sizes:
            if text.strip() != str(audit.extents.get(DIRECTORY_SIZES[element], 1)):
                problems.append(f"CZI metadata {element} is not the directory's size")
        for keep in (XML_KEEP, SUBBLOCK_KEEP, None):
            problems += unexplained([r for k, r in audit.residuals if k is keep], _explainer(keep))
        pixels = ranges.merge([(o, n) for o, n, _ in audit.pixels])
        if not _same(pixels, ranges.merge(plan.kept_data)):
            problems.append("CZI subblock pixel data is not where it was")
        problems += _sample_tiles(audit, options.full_scan)
    if not problems:
        stray = first_nonzero(path, ranges.complement(ranges.merge(audit.explained), audit.size))
        if stray is not None:
            problems.append(f"CZI bytes at {stray} (padding, spare fields or a removed segment) "
                            "are not cleared")
    return problems


def _same(a, b):
    return len(a) == len(b) and bool((a == b).all()) if len(a) else not len(b)


def _walk(audit):
    position, seen = 0, {}
    while position < audit.size:
        head = audit.read(position, HEADER)
        name = head[:16].split(b"\0", 1)[0]
        allocated, used = struct.unpack_from("<qq", head, 16)
        if name not in KNOWN_IDS or head[:16] != name.ljust(16, b"\0") or position % ALIGN:
            raise FormatError(f"segment at byte {position} has an unknown Id")
        if allocated < 0 or not 0 <= used <= allocated or position + HEADER + allocated > audit.size:
            raise FormatError(f"segment at byte {position} has an impossible size")
        audit.allow(position, HEADER)
        seen.setdefault(name, []).append(position)
        data = position + HEADER
        {FILE: _file, DIRECTORY: _directory, METADATA: _metadata, SUBBLOCK: _subblock,
         ATTDIR: _attdir, ATTACH: _attach, DELETED: lambda *a: None}[name](audit, data, allocated)
        position = data + allocated
    for name in (FILE, DIRECTORY, METADATA):
        if len(seen.get(name, ())) != 1:
            audit.problems.append(f"CZI has {len(seen.get(name, ()))} {name.decode()} segments")
    if len(seen.get(ATTDIR, ())) > 1:
        audit.problems.append("CZI has more than one attachment directory")
    for offset in seen.get(ATTACH, ()):
        if offset not in audit.listed:
            audit.problems.append(f"CZI attachment segment at byte {offset} is not in the directory")
    if audit.timestamps > 1:
        audit.problems.append("CZI keeps more than one TimeStamps attachment")


def _random_guid(raw):
    """A version 4 (random) GUID, stored as libCZI stores GUIDs (little-endian fields)."""
    guid = uuid.UUID(bytes_le=bytes(raw))
    return guid.version == 4 and guid.variant == uuid.RFC_4122


def _file(audit, data, allocated):
    fields = struct.unpack_from(FILE_FIELDS, audit.read(data, FILE_USED))
    if (fields[0], fields[1]) != VERSION:
        audit.problems.append("CZI file header version changed")
    if fields[4] != fields[5] or not _random_guid(fields[5]):
        audit.problems.append("CZI file GUIDs are not one fresh random GUID")
    audit.allow(data, 8)                    # Major, Minor; then two reserved int32 (zero)
    audit.allow(data + 16, FILE_USED - 16)


def _dv_entry(audit, raw, where):
    """A directory entry (or a subblock's copy of it) holds numbers and dimension letters."""
    if raw[:2] != b"DV" or struct.unpack_from("<i", raw, 2)[0] not in PIXEL_TYPES:
        audit.problems.append(f"{where}: not a DV entry of a known pixel type")
    dims = struct.unpack_from("<i", raw, 28)[0]
    for i in range(dims):
        letter = raw[DV_FIXED + DIMENSION * i:DV_FIXED + DIMENSION * i + 4].rstrip(b"\0")
        if len(letter) != 1 or chr(letter[0]) not in DIMENSION_LETTERS:
            audit.problems.append(f"{where}: dimension {i} is not a known dimension letter")


def _allow_entry(audit, offset, length):
    """A DV entry: its numbers and letters, but not the spare bytes after the pyramid type."""
    audit.allow(offset, DV_SPARE)
    audit.allow(offset + DV_SPARE + DV_SPARE_LENGTH, length - DV_SPARE - DV_SPARE_LENGTH)


def _directory(audit, data, allocated):
    body = audit.read(data, allocated)
    (count,) = struct.unpack_from("<i", body, 0)
    audit.allow(data, 4)
    position = DIRECTORY_DATA
    low, high = {}, {}
    for i in range(count):
        for d in range(max(0, min(struct.unpack_from("<i", body, position + 28)[0], MAX_DIMENSIONS))):
            letter, start, size = struct.unpack_from("<4sii", body, position + DV_FIXED + DIMENSION * d)
            letter = letter.rstrip(b"\0").decode("latin-1")
            low[letter] = min(low.get(letter, start), start)
            high[letter] = max(high.get(letter, start + size), start + size)
        dims = struct.unpack_from("<i", body, position + 28)[0]
        if not 0 < dims <= MAX_DIMENSIONS:
            raise FormatError(f"directory entry {i} has an impossible dimension count")
        length = DV_FIXED + DIMENSION * dims
        _dv_entry(audit, body[position:position + length], f"CZI directory entry {i}")
        _allow_entry(audit, data + position, length)
        position += length
    audit.extents = {letter: high[letter] - low[letter] for letter in low}


def _metadata(audit, data, allocated):
    xml_size, attachment = struct.unpack_from("<ii", audit.read(data, 8))
    if attachment:
        audit.problems.append("CZI metadata segment still has a binary attachment")
    audit.allow(data, 8)
    _xml(audit, audit.read(data + METADATA_DATA, xml_size), ROOT, XML_KEEP, "CZI metadata")
    audit.allow(data + METADATA_DATA, xml_size)


def _subblock(audit, data, allocated):
    head = audit.read(data, min(allocated, SUBBLOCK_DATA))
    meta, attachment, size = struct.unpack_from("<iiq", head, 0)
    dims = struct.unpack_from("<i", head, 16 + 28)[0]
    if not 0 < dims <= MAX_DIMENSIONS or meta < 0 or size < 0:
        raise FormatError(f"subblock at byte {data - HEADER} has impossible sizes")
    entry = DV_FIXED + DIMENSION * dims
    fixed = max(SUBBLOCK_DATA, 16 + entry)
    if fixed + meta + size > allocated:
        raise FormatError(f"subblock at byte {data - HEADER} runs past its segment")
    head = audit.read(data, fixed + meta)
    _dv_entry(audit, head[16:16 + entry], f"CZI subblock at byte {data - HEADER}")
    if attachment:
        audit.problems.append(f"CZI subblock at byte {data - HEADER} has an attachment")
    spare = head[16 + DV_SPARE:16 + DV_SPARE + DV_SPARE_LENGTH] + head[16 + entry:fixed]
    if spare.count(0) != len(spare):   # checked here: 10^4 subblocks, no gap search for each
        audit.problems.append(f"CZI subblock at byte {data - HEADER}: spare bytes or padding not cleared")
    audit.allow(data, fixed)
    if meta:
        raw = head[fixed:]
        if not _plain_subblock_xml(raw):
            _xml(audit, raw, SUBBLOCK_ROOT, SUBBLOCK_KEEP, f"CZI subblock metadata at byte {data - HEADER}")
        audit.allow(data + fixed, meta)
    compression = struct.unpack_from("<i", head, 16 + 18)[0]
    if size:
        audit.pixels.append((data + fixed + meta, size, compression))
        audit.allow(data + fixed + meta, size)


_PLAIN = re.compile(rb"<METADATA><Tags>((?:<(\w+)>[^<&]*</\2>)*)</Tags></METADATA> *")
_PLAIN_TAG = re.compile(rb"<(\w+)>([^<&]*)</\1>")


def _plain_subblock_xml(raw):
    """The shape paw writes, every tag kept by SUBBLOCK_KEEP with a value its kind accepts (the
    fast way for the 10^4 subblocks of a slide); anything else goes through expat."""
    match = _PLAIN.fullmatch(raw)
    if match is None:
        return False
    for name, text in _PLAIN_TAG.findall(match.group(1)):
        kind = SUBBLOCK_KEEP.get("Tags/" + name.decode("ascii", "replace"))
        if kind is None or kind is CONTAINER or not kind.accepts(text.decode("ascii", "replace")):
            return False
    return True


def _attdir(audit, data, allocated):
    body = audit.read(data, allocated)
    (count,) = struct.unpack_from("<i", body, 0)
    audit.allow(data, 4)
    for i in range(count):
        entry = body[ATTDIR_DATA + ATTACH_ENTRY * i:ATTDIR_DATA + ATTACH_ENTRY * (i + 1)]
        _attachment_entry(audit, entry, f"CZI attachment entry {i}")
        audit.listed[struct.unpack_from("<q", entry, 12)[0]] = entry
        audit.allow(data + ATTDIR_DATA + ATTACH_ENTRY * i, ATTACH_ENTRY)


def _attachment_entry(audit, entry, where):
    """Only the attachments that may stay, named exactly, with NUL padding."""
    kind, name = entry[40:48], entry[48:128]
    if entry[:2] != b"A1" or entry[2:12].strip(b"\0"):
        audit.problems.append(f"{where}: not an A1 entry with cleared spare bytes")
    if (kind.rstrip(b"\0"), name.rstrip(b"\0")) not in KEPT_ATTACHMENTS or \
            b"\0" in kind.rstrip(b"\0") or b"\0" in name.rstrip(b"\0"):
        audit.problems.append(f"{where}: an attachment the allow-list does not keep")
    if not _random_guid(entry[24:40]):
        audit.problems.append(f"{where}: its ContentGuid is not a fresh random GUID")


def _attach(audit, data, allocated):
    head = audit.read(data, ATTACH_DATA)
    (size,) = struct.unpack_from("<q", head, 0)
    _attachment_entry(audit, head[16:16 + ATTACH_ENTRY], f"CZI attachment at byte {data - HEADER}")
    audit.allow(data, 8)
    audit.allow(data + 16, ATTACH_ENTRY)
    listed = audit.listed.get(data - HEADER)
    if listed is not None and listed[24:40] != head[16 + 24:16 + 40]:
        audit.problems.append(f"CZI attachment at byte {data - HEADER}: GUID differs from its directory entry")
    if (head[56:64].rstrip(b"\0"), head[64:144].rstrip(b"\0")) == TIMESTAMPS:
        audit.timestamps += 1
        payload = audit.read(data + ATTACH_DATA, min(size, allocated - ATTACH_DATA))
        length = _timestamps(payload)
        if length is None:
            audit.problems.append("CZI TimeStamps attachment is not a list of relative times")
        else:
            audit.allow(data + ATTACH_DATA, length)   # int32 size, count, float64 times


def _timestamps(payload):
    """The length of a TimeStamps payload as paw writes it (int32 size, int32 count, count
    float64 seconds from the first plane: 0 first, non-decreasing, finite, at most
    TIMESTAMP_SPAN, whole microseconds), or None."""
    if len(payload) < 8:
        return None
    size, count = struct.unpack_from("<ii", payload, 0)
    if count < 0 or 8 + 8 * count > len(payload) or size not in (8 + 8 * count, 8 * count + 4):
        return None
    times = struct.unpack_from(f"<{count}d", payload, 8)
    if times and (times[0] != 0 or times[-1] > TIMESTAMP_SPAN):
        return None
    if any(not math.isfinite(t) or round(t, TIMESTAMP_DIGITS) != t for t in times) or \
            any(b < a for a, b in zip(times, times[1:])):
        return None
    return 8 + 8 * count


# --- XML, read with expat ---------------------------------------------------------------------

def _xml(audit, raw, root, keep, where):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        audit.problems.append(f"{where}: XML is not UTF-8")
        return
    path, texts, children = [], [], []
    note = lambda residual: audit.residuals.append((keep, residual))  # noqa: E731
    parser = xml.parsers.expat.ParserCreate()

    def start(name, attributes):
        if path and texts[-1].strip():
            note(Residual(f"{where} text before <{name}>", texts[-1]))
        path.append(name)
        texts.append("")
        children.append(set())
        relative = "/".join(path[1:])
        if not path[1:]:
            if name != root:
                audit.problems.append(f"{where}: root element is not <{root}>")
        elif relative not in keep:
            audit.problems.append(f"{where}: element {relative} is not on the allow-list")
        for attribute, value in attributes.items():
            note(Residual(f"{where} {relative or name}/@{attribute}", value))

    def end(name):
        text = texts.pop()
        relative = "/".join(path[1:])
        kind = keep.get(relative, CONTAINER) if relative else CONTAINER
        if text.strip():
            note(Residual(f"{where} {relative or name}", text))
        elif kind is not CONTAINER:
            audit.problems.append(f"{where}: element {relative} is empty")
        if keep is XML_KEEP and relative in DIRECTORY_SIZES:
            audit.sizes.append((relative, text))
        missing = [c for c in REQUIRED.get(relative, ()) if c not in children[-1]] if keep is XML_KEEP else []
        if missing:
            audit.problems.append(f"{where}: element {relative} lacks its {missing[0]}")
        children.pop()
        if children:
            children[-1].add(name)
        path.pop()
        if texts:
            texts[-1] = ""   # text after a child (its tail) must be whitespace too

    def characters(data):
        if texts:
            texts[-1] += data
        elif data.strip():
            audit.residuals.append((None, Residual(f"{where} text outside the root", data)))

    def refused(what):
        return lambda *args: audit.problems.append(f"{where}: XML holds {what}")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = characters
    parser.CommentHandler = refused("a comment")
    parser.ProcessingInstructionHandler = refused("a processing instruction")
    parser.StartDoctypeDeclHandler = refused("a DOCTYPE")
    parser.EntityDeclHandler = refused("an entity declaration")
    parser.StartCdataSectionHandler = refused("a CDATA section")
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        audit.problems.append(f"{where}: XML does not parse ({xml.parsers.expat.ErrorString(exc.code)})")


def _explainer(keep):
    """Whether the allow-list `keep` accepts a text at its place: the last word of `where`, an
    element path or path/@attribute relative to the root."""
    def explains(residual):
        kind = keep.get(residual.where.rsplit(" ", 1)[-1]) if keep else None
        return kind is not None and kind.accepts(residual.text)
    return explains


def _sample_tiles(audit, full_scan):
    """JPEG and JPEG XR subblocks read whole (the first, the last and SAMPLE between of each
    codec; every one with verify.full_scan): what jpeg.whole / jpegxr.whole cannot explain."""
    problems = []
    for compression, walk in WALKED.items():
        tiles = [p for p in audit.pixels if p[2] == compression]
        if not full_scan and len(tiles) > SAMPLE + 2:
            step = (len(tiles) - 1) / (SAMPLE + 1)
            tiles = [tiles[round(i * step)] for i in range(SAMPLE + 2)]
        for offset, size, _ in tiles:
            names = walk(audit.read(offset, size))
            if names:
                problems.append(f"CZI {'JPEG XR' if compression == JPEG_XR_COMPRESSION else 'JPEG'} "
                                f"subblock at byte {offset}: {names[0]}")
    return problems
