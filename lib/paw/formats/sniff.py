"""What a file that is not a slide is, and what an incomplete slide was: reasons a technician can
act on, decided in this one place.

A scan folder collects consent forms, request sheets and photos beside the slides; each is
quarantined, and "cannot parse: not a TIFF file" for a PDF, a .docx and an empty file alike says
nothing. `what_is(path)` names the common non-slide files by their first bytes (never by their
name): "not a slide (PDF document)". `incomplete(path, size, title)` words a truncated copy: the
parsers of every format say "... runs past the end of the file" when a structure lies beyond
the end, which for a real scanner's file means the copy stopped short.

The reasons name a kind of file, a format and a size, never a text taken from the file.
"""

import os

SNIFF_BYTES = 4096
# The parsers' words for a structure beyond the end of a file (a loop or an impossible size is
# worded otherwise: damage, not a copy cut short).
TRUNCATED = ("past the end of the file", "past the end of its data file", "past its end")
ZIP_PEEK = 64 << 10   # an Office file's part names are in its first local headers

# (offset, magic, what it is), most specific first. Only kinds a lab's scan folder plausibly
# holds; anything else a TIFF parser refuses keeps the parser's own reason.
MAGIC = (
    (0, b"%PDF-", "PDF document"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "older Office document, .doc, .xls or .ppt"),
    (0, b"{\\rtf", "RTF document"),
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (0, b"\x1f\x8b", "gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"\x7fELF", "program, ELF executable"),
    (0, b"MZ", "Windows program or library"),
    (4, b"ftyp", "video or HEIF image"),
    (8, b"WEBP", "WebP image"),
)
# Part names that tell which kind of ZIP container an Office or OpenDocument file is.
ZIP_KINDS = (
    (b"word/", "Word document, .docx"),
    (b"xl/", "Excel workbook, .xlsx"),
    (b"ppt/", "PowerPoint presentation, .pptx"),
    (b"mimetypeapplication/vnd.oasis.opendocument", "OpenDocument file, .odt, .ods or .odp"),
)
# The vendor a truncated file was a slide of, when its first bytes do not say (an Aperio SVS
# keeps its directories at the end): by extension, only to word the reason.
BY_EXTENSION = {
    ".svs": "Aperio SVS", ".ndpi": "Hamamatsu NDPI", ".scn": "Leica SCN", ".bif": "Ventana BIF",
    ".tif": "TIFF", ".tiff": "TIFF", ".dcm": "DICOM", ".czi": "Zeiss CZI", ".vsi": "Olympus VSI",
    ".isyntax": "Philips iSyntax", ".mrxs": "3DHistech MRXS",
}
# Marks a vendor writes near the start of its files (descriptions in the first directory).
BY_CONTENT = (
    (b"Aperio", "Aperio SVS"), (b"Hamamatsu", "Hamamatsu NDPI"), (b"DPUfsImport", "Philips TIFF"),
    (b"iScan", "Ventana BIF"), (b"leica-microsystems", "Leica SCN"), (b"ZISRAWFILE", "Zeiss CZI"),
)


def unreadable(path, exc, title=None):
    """The one-line reason for a slide a parser could not read (`exc`, a FormatError): an
    incomplete copy, a file that is no slide (only asked when no format recognised it: `title`
    is None; an MRXS slide's .mrxs file is a JPEG), or the parser's own words."""
    if any(words in str(exc) for words in TRUNCATED):
        return incomplete(path, _size(path), title)
    kind = what_is(path) if title is None and not os.path.isdir(path) else None
    return kind or f"cannot parse: {exc}"


def what_is(path):
    """'not a slide (PDF document)', 'empty file (0 bytes) ...', or None when the first bytes
    are none of the kinds above (the parser's own reason then stands)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(ZIP_PEEK)
    except OSError:
        return None
    if not head:
        return "empty file (0 bytes): was it saved or copied completely?"
    if head.startswith(b"PK\x03\x04"):
        for part, kind in ZIP_KINDS:
            if part in head:
                return f"not a slide ({kind})"
        return "not a slide (ZIP archive)"
    for offset, magic, kind in MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return f"not a slide ({kind})"
    text = _text_kind(head[:SNIFF_BYTES])
    return f"not a slide ({text})" if text else None


def _text_kind(head):
    """'text file', 'XML document', 'HTML page' when the bytes are text, else None."""
    for encoding, bom in (("utf-16", b"\xff\xfe"), ("utf-16", b"\xfe\xff"), ("utf-8-sig", b"\xef\xbb\xbf")):
        if head.startswith(bom):
            break
    else:
        encoding = "utf-8"
    try:
        text = head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the 4 KiB boundary
            return None
        text = head[:exc.start].decode(encoding)
    if not text or any(not c.isprintable() and c not in "\t\r\n\f" for c in text):
        return None
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith("<!doctype html") or start.startswith("<html"):
        return "HTML page"
    if start.startswith("<?xml") or start.startswith("<"):
        return "XML document"
    return "text file"


def incomplete(path, size, title=None):
    """The reason for a slide whose structures run past its end: a copy that stopped short."""
    kind = title or _vendor(path)
    article = "an" if kind[0].lower() in "aeio" else "a"
    return f"incomplete file: {human_size(size)} of {article} {kind} slide; was it still being copied?"


def _size(path):
    """Bytes of the slide at `path`: its file, or every file of its folder (DICOM) or of the
    data folder beside it (MRXS, VSI)."""
    from ..bundle import at
    total = 0
    for member in at(path).members:
        if os.path.isdir(member):
            total += sum(os.lstat(os.path.join(root, n)).st_size
                         for root, _, names in os.walk(member) for n in names)
        elif os.path.lexists(member):
            total += os.lstat(member).st_size
    return total


def _vendor(path):
    try:
        with open(path, "rb") as fh:
            head = fh.read(ZIP_PEEK)
    except OSError:
        head = b""
    for mark, vendor in BY_CONTENT:
        if mark in head:
            return vendor
    if head[128:132] == b"DICM":
        return "DICOM"
    return BY_EXTENSION.get(os.path.splitext(path)[1].lower(), "TIFF" if head[:2] in (b"II", b"MM") else "")\
        or "whole-slide image"


def human_size(size):
    """1.2 MB, 340 kB, 12 bytes: decimal units, as file managers show them."""
    if size < 1000:
        return f"{size} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.5 or unit == "TB":
            return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"
    raise AssertionError("unreachable")
