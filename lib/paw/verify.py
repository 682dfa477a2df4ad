"""Independent verification of an anonymized file, before it may leave for the outbox.

Independent of the writer: the file is re-read with tifffile (not paw's parser), the format is
re-detected, the vendor module's checks run on tifffile's view, the kept image payload must be
exactly where it was, every byte that tifffile does not see referenced (header, directories, tag
values, kept payload) must be zero — that is where destroyed label and macro pixels were — and
every byte outside the kept payload (or the whole file with full_scan) is searched for every
removed value, as ASCII and as UTF-16LE.
"""

import os
import re

import numpy as np

from . import ranges
from .formats.tiff import data_segments, nonzero_blocks

MIN_SEARCH_LENGTH = 4   # shorter values ("1", "12") match by chance and identify nobody
CHUNK = 8 << 20


def name_values(stem):
    """What of the original file name verification searches for: the stem, when it looks like
    an identifier (has a digit or a separator). A plain word ("slide", "macro") occurs in
    legitimate metadata and would quarantine good slides."""
    return [stem] if re.search(r"[\d\s_.,^-]", stem) else []


class VerificationFailed(Exception):
    """The anonymized file must not reach the outbox; the message is the one-line reason."""


def verify(path, module, plan, options, extra_values=()):
    if hasattr(module, "check_file"):  # not a TIFF: the module re-reads it its own way
        problems = module.check_file(path, plan, options)
        if problems:
            raise VerificationFailed(problems[0])
        for searched, skip in module.searched_files(path, plan):
            _search(searched, plan, options, extra_values, skip)
        return
    import tifffile

    try:
        with tifffile.TiffFile(path, is_ndpi=module.NAME == "ndpi") as tf:
            allowed = module.ALLOWED_TAGS
            payload, drawn, problems = [], set(), []
            for i, page in enumerate(tf.pages):
                for tag in page.tags:
                    if tag.code not in allowed:
                        problems.append(f"tag {tag.code} ({tag.name}) left in directory {i}")
                payload.append(_payload(tf, page, i))
                if plan.added and ranges.covers(plan.added, payload[-1]):
                    drawn.add(i)
            problems = module.check(tf, options, drawn) + problems
            structure, layout = _structure(tf)
    except VerificationFailed:
        raise
    except Exception as exc:  # the independent reader disagrees with paw's parser: fail closed
        reason = " ".join(str(exc).split())[:160]
        raise VerificationFailed(f"the independent reader cannot read the result ({type(exc).__name__}: {reason})") from None
    expected = ranges.merge(plan.kept_data, plan.blanked, plan.added)
    if not np.array_equal(ranges.merge(*payload), expected):
        problems.append("kept image data is not where it was")
    if problems:
        raise VerificationFailed(problems[0])
    # Blanked pixels must read as zeros; the drawn label is referenced, but searched like
    # everything else that is not a kept tile.
    kept = ranges.from_spans(ranges.merge(plan.kept_data))
    stray = first_nonzero(path, ranges.merge(structure, layout, kept, plan.added))
    if stray is not None:
        raise VerificationFailed(f"unreferenced bytes at {stray} are not cleared")
    _search(path, plan, options, extra_values, ranges.merge(layout, kept))


def _search(path, plan, options, extra_values, skip_spans):
    """Every removed value, outside the kept image payload (or everywhere, with full_scan)."""
    values = {v for v in list(plan.removed) + list(extra_values) if len(v.strip()) >= MIN_SEARCH_LENGTH}
    hit = find_any(path, values, None if options.full_scan else skip_spans)
    if hit is not None:
        raise VerificationFailed(f"a removed value is still in the file at byte {hit}")


def _payload(tf, page, index):
    """(offset, length) of a page's strips or tiles as stored in the file.

    tifffile shows an NDPI strip that has MCU starts (65426) as virtual tiles after the strip's
    JPEG header; the stored strip starts McuStarts[0] bytes before the first of them.
    """
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) != len(counts):
        raise VerificationFailed(f"directory {index}: tifffile sees {len(offsets)} image data "
                                 f"offsets but {len(counts)} byte counts")
    if tf.is_ndpi and 65426 in page.tags and len(offsets):
        start = int(offsets[0]) - int(page.tags[65426].value[0])
        return [(start, int(offsets[-1]) + int(counts[-1]) - start)]
    return ranges.array(np.column_stack((np.asarray(offsets, np.int64), np.asarray(counts, np.int64))))


LAYOUT_TAGS = (273, 279, 324, 325)  # strip/tile offsets and byte counts


def _structure(tf):
    """(offset, length) of the header, every directory and every out-of-line tag value; and,
    separately, of the strip/tile offset and byte-count arrays.

    Those arrays are binary positions that must equal the kept payload's (checked above), so
    the value search skips them: at 20 GB they are megabytes of numbers.
    """
    fmt = tf.tiff
    ndpi = tf.is_ndpi  # 8-byte header pointer and next pointers, then 4 high bytes per entry
    structure, layout = [(0, 16 if fmt.version == 43 else 12 if ndpi else 8)], []
    for page in tf.pages:
        n = len(page.tags)
        structure.append((page.offset, fmt.tagnosize + n * fmt.tagsize + (8 + 4 * n if ndpi else fmt.offsetsize)))
        for tag in page.tags:
            if tag.valuebytecount > fmt.tagoffsetthreshold:
                where = layout if tag.code in LAYOUT_TAGS else structure
                where.append((tag.valueoffset, tag.valuebytecount))
    return structure, layout


def first_nonzero(path, spans):
    """The offset of the first non-zero byte outside the merged spans, or None (holes skipped)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        for start, length in ranges.complement(spans, size):
            for position, block in nonzero_blocks(fh.fileno(), start, length):
                return position + len(block) - len(block.lstrip(b"\0"))
    return None


def needles(values):
    """Every removed value as UTF-8 and as UTF-16LE bytes, longest first."""
    found = set()
    for value in values:  # an undecodable file-name byte is searched for as that byte
        found.add(value.encode("utf-8", "surrogateescape"))
        found.add(value.encode("utf-16-le", "surrogatepass"))
    return sorted(found, key=len, reverse=True)


def find_any(path, values, skip_spans=None):
    """The offset of the first removed value found outside the merged `skip_spans`, or None."""
    if not values:
        return None
    wanted = needles(values)  # one bytes.find per value beats a regex alternation 1.6x
    longest = len(wanted[0])
    with open(path, "rb") as fh:
        fd = fh.fileno()
        skip = skip_spans if skip_spans is not None else ranges.merge()
        for start, length in ranges.complement(skip, os.fstat(fd).st_size):
            for position, end in data_segments(fd, start, length):
                while position < end:  # blocks overlap by the longest value
                    block = os.pread(fd, min(CHUNK + longest, end - position), position)
                    hits = [i for i in (block.find(n) for n in wanted) if i >= 0]
                    if hits:
                        return position + min(hits)
                    position += CHUNK
    return None
