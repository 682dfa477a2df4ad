"""Verification of an anonymized slide before it may leave for the outbox; format-neutral.

Two halves: the format's handler re-reads the result independently of the code that wrote it
(`Handler.check`: for TIFF, tifffile instead of paw's parser, the vendor re-detected, no tag
outside the vendor's set, kept payload where it was, unreferenced bytes zero), and this module
searches every file of the slide for every removed value, outside the kept image payload (or
everywhere, with `verify.full_scan`).
"""

import os
import re

from . import ranges
from .errors import VerificationFailed
from .sparse import data_segments

MIN_SEARCH_LENGTH = 4   # shorter values ("1", "12") match by chance and identify nobody
CHUNK = 8 << 20


def name_values(stem):
    """What of the original file name verification searches for: the stem, when it looks like
    an identifier (has a digit or a separator). A plain word ("slide", "macro") occurs in
    legitimate metadata and would quarantine good slides."""
    return [stem] if re.search(r"[\d\s_.,^-]", stem) else []


def verify(path, handler, plan, options, extra_values=()):
    """Raise VerificationFailed with the first problem found; return when the slide may leave."""
    problems = handler.check(path, plan, options)
    if problems:
        raise VerificationFailed(problems[0])
    values = {v for v in list(plan.removed) + list(extra_values) if len(v.strip()) >= MIN_SEARCH_LENGTH}
    for searched, skip in handler.searched(path, plan):
        hit = find_any(searched, values, None if options.full_scan else skip)
        if hit is not None:
            raise VerificationFailed(f"a removed value is still in the file at byte {hit}")


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
