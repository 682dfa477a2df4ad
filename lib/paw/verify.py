"""Verification of an anonymized slide before it may leave for the outbox; format-neutral.

Two halves: the format's handler re-reads the result independently of the code that wrote it
(`Handler.check`: for TIFF, tifffile instead of paw's parser, the vendor re-detected, kept
payload where it was, unreferenced bytes zero, and the residual audit that explains every text
left), and this module searches every file of the slide for every removed value and for the
identifier-like parts of the original name, outside the kept image payload (or everywhere,
with `verify.full_scan`), in UTF-8, Latin-1, UTF-16LE and UTF-16BE, whatever the case of its
ASCII and Latin-1 letters (a removed `JSMITH4711` is found as `jsmith4711`, a file named
`S24-0471D5` as `s24-0471d5`, `MÜLLER` as `müller`; values of FOLDED_LENGTH characters or
more, shorter ones as written).
"""

import os
import re

from . import ranges
from .errors import VerificationFailed
from .sparse import data_segments

MIN_SEARCH_LENGTH = 4   # shorter values ("1", "12") match by chance and identify nobody
# Values this long or longer are found whatever the case of their letters; shorter ones only as
# they were written: a four-letter value in any case matches the formats' own four-letter codes
# (a removed DICOM code "TEXT" is an ICC profile's "text" tag type, "DESC" its "desc").
FOLDED_LENGTH = 6
CHUNK = 8 << 20


NAME_PART = 5      # a part of the name with a digit, this long, is searched ("S26-047119")
NAME_SUBPART = 6   # a piece of such a part between - . / with a digit ("047119")
NAME_NUMBER = 5    # a digit group of the name this long (without leading zeros) is also
                   # searched for as a number; four digits are a year, a tile size, a
                   # StripeWidth: kept values hold them by chance, and they identify nobody


def name_values(stem):
    """What of the original file name verification searches for: the stem, when it looks like
    an identifier (has a digit or a separator), and its identifier-like parts — the accession
    inside a longer name ("S26-047119" of "S26-047119 A1 HE") is what a scanner copies into a
    field. A plain word ("slide", "macro") occurs in legitimate metadata and would quarantine
    good slides, so only parts with a digit count, and short ones ("A1") match by chance."""
    found = [stem] if re.search(r"[\d\s_.,^-]", stem) else []
    for part in re.split(r"[\s_,;^()\[\]+]+", stem):
        part = part.strip(".-")
        if len(part) >= NAME_PART and re.search(r"\d", part):
            found.append(part)
        for piece in re.split(r"[-./]+", part):
            if len(piece) >= NAME_SUBPART and re.search(r"\d", piece):
                found.append(piece)
    return list(dict.fromkeys(found))


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
    numbers = name_numbers(extra_values)
    for searched, skip in handler.searched(path, plan) if numbers else ():
        hit = find_number(searched, numbers, skip)
        if hit is not None:
            raise VerificationFailed(f"a number from the file name is in the file at byte {hit}")


def name_numbers(values):
    """The digit groups of the name's values without their leading zeros, NAME_NUMBER digits
    or more: a scanner or LIS writes the accession "047120" as the number 47120 (an Aperio
    `OriginalWidth = 47120`), which a search for "047120" never finds."""
    found = []
    for value in values:
        for group in re.findall(r"\d+", value):
            number = group.lstrip("0")
            if len(number) >= NAME_NUMBER:
                found.append(number)
    return list(dict.fromkeys(found))


def _number_patterns(numbers):
    """Each number written as a whole number (leading zeros allowed, no digit before or after)
    in ASCII/Latin-1/UTF-8 and in UTF-16LE and BE."""
    numbers = sorted(numbers, key=len, reverse=True)
    patterns = []
    for wide in (lambda t: t, lambda t: b"".join(bytes([c]) + b"\0" for c in t),
                 lambda t: b"".join(b"\0" + bytes([c]) for c in t)):
        digit = b"(?:" + b"|".join(re.escape(wide(bytes([d]))) for d in b"0123456789") + b")"
        alternatives = b"|".join(re.escape(wide(n.encode())) for n in numbers)
        patterns.append(re.compile(b"(?<!" + digit + b")(?:" + re.escape(wide(b"0")) + b")*(?:"
                                   + alternatives + b")(?!" + digit + b")"))
    return patterns


def find_number(path, numbers, skip_spans):
    """The offset of the first of `numbers` written as a number outside `skip_spans` (the kept
    tiles: their bytes hold digits by chance), or None."""
    patterns = _number_patterns(numbers)
    margin = 2 * (max(len(n) for n in numbers) + 64)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        for start, length in ranges.complement(skip_spans, os.fstat(fd).st_size):
            for position, end in data_segments(fd, start, length):
                while position < end:
                    before = min(2, position - start)  # context for the look-behind
                    block = os.pread(fd, min(CHUNK + margin, end - position) + before, position - before)
                    last = position + CHUNK >= end
                    for pattern in patterns:
                        for match in pattern.finditer(block, before):
                            if match.end() < len(block) or last:
                                return position - before + match.start()
                    position += CHUNK
    return None


def needles(values):
    """Every removed value as UTF-8, Latin-1, UTF-16LE and UTF-16BE bytes, longest first.

    A value read from a file as Latin-1 (paw reads TIFF text one byte per character) that is
    really UTF-8 is also searched as the text those bytes spell, so a non-ASCII name is found
    whichever encoding the scanner and the reader each assumed. A needle that contains another
    is left out (the shorter one finds it)."""
    found = set()
    for value in values:  # an undecodable file-name byte is searched for as that byte
        texts = {value}
        try:
            texts.add(value.encode("latin-1").decode("utf-8"))
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        for text in texts:
            found.add(text.encode("utf-8", "surrogateescape"))
            found.add(text.encode("utf-16-le", "surrogatepass"))
            found.add(text.encode("utf-16-be", "surrogatepass"))
            try:
                found.add(text.encode("latin-1"))
            except UnicodeEncodeError:
                pass
    return _minimal(found)


def _minimal(found):
    """Longest first, without a needle that holds a shorter one (that one finds it too)."""
    minimal = []
    for needle in sorted(found, key=len):
        if not any(shorter in needle for shorter in minimal):
            minimal.append(needle)
    return minimal[::-1]


def _case_fold_table():
    """One byte table that folds the case of ASCII and Latin-1 letters in every encoding the
    search uses, applied alike to the file's bytes and to the needles:

    - A-Z (0x41-0x5A) to a-z: ASCII letters in UTF-8 and Latin-1, and the low byte of their
      UTF-16 code units (the other byte, 0x00, is unchanged);
    - 0xC0-0xDE to 0xE0-0xFE: Latin-1 capitals (À..Þ) as Latin-1 bytes and as UTF-16 code
      units; in UTF-8 this maps the lead byte 0xC3 to 0xE3 in both, harmlessly;
    - 0x80-0x9E to 0xA0-0xBE: the UTF-8 continuation byte of À..Þ (0xC3 0x80-0x9E), so that
      UTF-8 "É" (C3 89) and "é" (C3 A9) fold alike.

    Bytes that are not those letters may fold together too (× with ÷, a UTF-8 continuation
    byte of another script): that can only add a match, never lose one, and a match needs a
    whole removed value of at least MIN_SEARCH_LENGTH characters. One bytes.translate per block
    keeps the search one pass over the file."""
    table = bytearray(range(256))
    for low, high in ((0x41, 0x5A), (0xC0, 0xDE), (0x80, 0x9E)):
        for byte in range(low, high + 1):
            table[byte] = byte + 0x20
    return bytes(table)


CASE_FOLD = _case_fold_table()


def find_any(path, values, skip_spans=None):
    """The offset of the first removed value found outside the merged `skip_spans`, or None.
    Values of FOLDED_LENGTH characters or more are found in letters of any case (CASE_FOLD
    applied to their needles and to every block read), shorter ones as written."""
    if not values:
        return None
    folded = _minimal({n.translate(CASE_FOLD) for n in needles(v for v in values if len(v) >= FOLDED_LENGTH)})
    exact = needles([v for v in values if len(v) < FOLDED_LENGTH])
    # one bytes.find per value beats a regex alternation 1.6x
    longest = max(len(n) for n in folded + exact)
    zeros = bytes(CHUNK + longest)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        skip = skip_spans if skip_spans is not None else ranges.merge()
        for start, length in ranges.complement(skip, os.fstat(fd).st_size):
            for position, end in data_segments(fd, start, length):
                while position < end:  # blocks overlap by the longest value
                    block = os.pread(fd, min(CHUNK + longest, end - position), position)
                    if block[:1] == b"\0" and (block == zeros if len(block) == len(zeros)
                                                else not block.strip(b"\0")):   # zeros hold no value
                        position += CHUNK
                        continue
                    hits = [i for i in (block.find(n) for n in exact) if i >= 0]
                    if folded:
                        block = block.translate(CASE_FOLD)
                        hits += [i for i in (block.find(n) for n in folded) if i >= 0]
                    if hits:
                        return position + min(hits)
                    position += CHUNK
    return None
