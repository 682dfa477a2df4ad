"""The residual audit of an anonymized TIFF-family slide: every text left must be explained.

Verification used to search the output only for the values paw had removed, so whatever paw
*kept* was never questioned. This audit is written separately from the scrubber (surgery.py and
the vendor `plan` functions): it reads the output with tifffile and its own reads of the file,
shares with the scrubber only the tables of what may stay (tiffallow.STRUCTURE and each vendor's
typed TAGS, KEYS, PROPERTY_TYPES, ATTRIBUTES, ELEMENTS), and never its tables of what to remove.
It collects what a reader or a person could see outside the tile payload —

- every tag (one not on the vendor's table is a problem); every ASCII/BYTE/UNDEFINED value, all
  of its bytes (text after a NUL included); numeric tags must have a numeric type and count;
- the vendor texts: the Aperio description item by item, NDPI's properties line by line, the
  Philips/Ventana/Leica/OME XML element by element and attribute by attribute (parsed with expat,
  comments and processing instructions kept so they can be refused), level descriptions;
- JPEGTables segment by segment, ICC profiles field by field and text tag by text tag;
- printable runs (six or more ASCII or UTF-16 characters) in every other referenced byte that is
  not tile payload: the header, the directory tables with their inline values, numeric values
  (tile offset tables excepted: they are numbers of a size that spells text by chance);
- a sample of tiles per image read whole (every tile with verify.full_scan): plain JPEG,
  JPEG 2000 and deflate streams that end where their byte counts end (tileheaders.py);

— and each must be explained by the allow-list; anything unexplained refuses the slide with a
reason that names the field, never its text.
"""

import os
import re
import struct
import xml.etree.ElementTree as ET

import numpy as np

from . import icc, jpeg, tileheaders
from ..errors import FormatError
from .allow import c_string, element_rule, printable_runs
from .tiffallow import Blob, Numbers, Text, Vendor, rule_name
from .tifftags import Tag, tag_name

_ASCII_RUN = re.compile(rb"[\x20-\x7e]{6,}")
_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){6,}|(?:\x00[\x20-\x7e]){6,}")
_XMLNS = re.compile(r"""\bxmlns(?::([-\w.]+))?\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def binary_text(data):
    """Printable runs in binary structure: ASCII and UTF-16. (Latin-1 letters are common bytes
    of negative and floating-point numbers; a run of them is not a sign of text there.)"""
    return [m.start() for m in _ASCII_RUN.finditer(data)] + [m.start() for m in _UTF16_RUN.finditer(data)]


def audit(tf, vendor, options, drawn, pages, payload, blanked=()):
    """Problems with what is left in the TIFF `tf` (a tifffile.TiffFile of the output; one line
    each), empty if all is explained. `pages` are (where, page) for every directory, SubIFDs
    included (tiffhandler.every_page: where is the index in the main chain, or "0 SubIFD 1"),
    `drawn` the directories paw appended (the drawn label), `payload` each page's (offset,
    length) image data spans as stored, `blanked` the directories whose pixels paw zeroed (not
    walked: they must read as zeros, which the placement check requires)."""
    problems = []
    with open(tf.filehandle.path, "rb") as fh:
        fd = fh.fileno()
        for index, page in pages:
            problems += _directory(fd, tf, vendor, page, index, options, index in drawn)
        comments = getattr(vendor, "STRIP_COMMENTS", None)
        images = (_walked(f"directory {index}", page, spans, comments)
                  for (index, page), spans in zip(pages, payload) if index not in blanked)
        problems += tileheaders.problems(fd, images, options.full_scan)
    return problems


def _walked(where, page, spans, comments):
    """tifffile's view of one image for the tile walks: an NDPI strip with MCU starts is shown
    by tifffile as tiles that are its restart intervals, after the strip's JPEG header."""
    if page.parent.is_ndpi and Tag.NDPI_MCU_STARTS in page.tags and len(spans) == 1:
        intervals = np.column_stack((np.asarray(page.dataoffsets, np.int64),
                                     np.asarray(page.databytecounts, np.int64)))
        start = int(spans[0][0])
        return tileheaders.Image(where, int(page.compression), intervals, comments,
                                 (start, int(intervals[0, 0]) - start))
    return tileheaders.Image(where, int(page.compression), spans, comments)


def _read(fd, offset, length):
    return os.pread(fd, length, offset)


def _directory(fd, tf, vendor, page, index, options, drawn):
    """The problems of one directory: its tags, then printable runs in what no rule explained."""
    problems, explained = [], []
    fmt = tf.tiff
    ndpi = tf.is_ndpi
    for tag in page.tags:
        where = f"directory {index} {tag_name(tag.code)}"
        rule = vendor.TAGS.get(tag.code)
        if rule is None:
            problems.append(f"{where}: a tag the allow-list does not keep")
            continue
        span = (tag.valueoffset, tag.valuebytecount)
        if isinstance(rule, Numbers):  # typed by TIFF type and count; its bytes are scanned below
            if rule.only_with and (rule.only_with[0] not in page.tags
                                   or page.tags[rule.only_with[0]].value != rule.only_with[1]):
                problems.append(f"{where}: kept where it means nothing")
            elif not rule.accepts(int(tag.dtype), tag.count):
                problems.append(f"{where}: not {rule.label}")
            elif not rule.scan:
                explained.append(span)
            continue
        explained.append(span)
        raw = _read(fd, tag.valueoffset, tag.valuebytecount)
        if isinstance(rule, Text):
            text = c_string(raw) if int(tag.dtype) == 2 else None
            if text is None or not rule.kind.accepts(text):
                problems.append(f"{where}: not {rule_name(rule)}")
        elif isinstance(rule, Blob) and rule.what == "jpeg-tables":
            problems += _jpeg_tables(raw, where)
        elif isinstance(rule, Blob) and rule.what == "icc":
            problems += icc_problems(raw, where)
        elif isinstance(rule, Vendor):
            explain = EXPLAINERS.get(rule.what)
            problems += explain(vendor, raw, where, index, page, options, drawn) if explain else \
                [f"{where}: no audit for this vendor text"]
        else:
            problems.append(f"{where}: a value the audit cannot read")
    # Printable runs in the directory table (inline values included) and in numeric values.
    n = len(page.tags)
    table = (page.offset, fmt.tagnosize + n * fmt.tagsize + (8 + 4 * n if ndpi else fmt.offsetsize))
    spans = [table] + [(t.valueoffset, t.valuebytecount) for t in page.tags
                       if t.valuebytecount > fmt.tagoffsetthreshold]
    if index == 0:
        spans.append((0, 16 if fmt.version == 43 else 12 if ndpi else 8))
    for offset, length in spans:
        if (offset, length) in explained:
            continue
        data = bytearray(_read(fd, offset, length))
        for start, size in explained:  # inline values a rule explained
            if offset <= start and start + size <= offset + length:
                data[start - offset:start - offset + size] = bytes(size)
        for at in binary_text(bytes(data)):
            problems.append(f"directory {index}: printable text in its structure at byte {offset + at}")
            break
    return problems


def _jpeg_tables(raw, where):
    try:
        found = jpeg.segments(raw)
    except FormatError:
        return [f"{where}: not a JPEG table stream"]
    if any(marker not in jpeg.TABLES for marker, _, _ in found):
        return [f"{where}: a segment that is not a table"]
    end = found[-1][1] + found[-1][2] if found else 2
    if raw[end:] != b"\xff\xd9":
        return [f"{where}: bytes after the tables"]
    return []


def icc_problems(profile, where):
    """Every field of an ICC profile a person could read, against icc's allow-list (header
    signatures, the ICC tag table, typed numbers, KNOWN_TEXTS), read here on its own: every
    byte of a text tag must be a known text in its declared place or a count, every other byte
    no tag covers zero."""
    try:
        return _icc(profile, where)
    except (FormatError, ValueError, IndexError, struct.error):
        return [f"{where}: not an ICC profile paw can read"]


def _icc(profile, where):
    size = len(profile)
    if size < 132 or struct.unpack_from(">I", profile)[0] != size or profile[36:40] != b"acsp":
        return [f"{where}: not an ICC profile paw can read"]
    problems = []
    if profile[12:16] not in icc.CLASSES or profile[16:20] not in icc.SPACES \
            or profile[20:24] not in icc.SPACES:
        problems.append(f"{where}: ICC header fields paw does not know")
    for at, name in icc.SIGNATURE_FIELDS:
        if profile[at:at + 4] not in icc.SIGNATURES:
            problems.append(f"{where}: ICC header {name} is not a known signature")
    flags, attributes, intent = (int.from_bytes(profile[a:b], "big") for a, b in (icc.FLAGS, icc.ATTRIBUTES, icc.INTENT))
    if flags & ~icc.FLAG_BITS or attributes & ~icc.ATTRIBUTE_BITS or intent > icc.LAST_INTENT \
            or profile[icc.ILLUMINANT[0]:icc.ILLUMINANT[1]] != icc.D50:
        problems.append(f"{where}: ICC header numbers hold what the ICC does not define")
    (count,) = struct.unpack_from(">I", profile, 128)
    if count > 256 or 132 + 12 * count > size:
        return [f"{where}: not an ICC profile paw can read"]
    explained = np.zeros(size, bool)  # a GT450 profile is 13 MB: no per-byte Python loop
    explained[:132 + 12 * count] = True
    for start, end in (icc.DATE, icc.PROFILE_ID, icc.RESERVED, icc.VERSION_RESERVED):
        explained[start:end] = False  # must be zero
    for n in range(count):
        signature, offset, length = struct.unpack_from(">4sII", profile, 132 + 12 * n)
        name = signature.decode("latin-1")
        if offset < 132 + 12 * count or offset + length > size or length < 8:
            return [f"{where}: not an ICC profile paw can read"]
        data, kind = profile[offset:offset + length], profile[offset:offset + 4]
        allowed = icc.SIGNATURE_TYPES.get(signature)
        if allowed is None or icc.out_of_place(signature, profile[16:20]) or kind not in allowed:
            problems.append(f"{where}: an ICC tag the ICC tag table does not list for this profile")
            continue
        if kind in icc.TEXTS:
            marks = _icc_text_marks(kind, data)
            if marks is None:
                problems.append(f"{where}: ICC {name} text the allow-list does not explain")
                continue
            for at, span in marks:
                explained[offset + at:offset + at + span] = True
            continue
        reason = icc.plausible(signature, kind, data)
        if reason or (kind == b"dtim" and data[8:].strip(b"\0")):
            problems.append(f"{where}: ICC {name} holds a value paw does not keep")
            continue
        explained[offset:offset + length] = True
    if np.any((np.frombuffer(profile, np.uint8) != 0) & ~explained):
        problems.append(f"{where}: ICC bytes no tag explains are not zero")
    return problems


def _icc_known(raw, codec):
    """Whether a declared text field is a known text and then only zero bytes (per character)."""
    width = 2 if codec == "utf-16-be" else 1
    chars = [raw[i:i + width] for i in range(0, len(raw) - len(raw) % width, width)]
    end = next((i for i, c in enumerate(chars) if not c.strip(b"\0")), len(chars))
    if len(raw) % width or any(c.strip(b"\0") for c in chars[end:]):
        return False
    return b"".join(chars[:end]).decode(codec, "replace").strip() in icc.KNOWN_TEXTS


def _icc_text_marks(kind, data):
    """(offset, length) of the bytes of a text tag that are explained (type, counts, known
    texts), or None when a declared text is not a known one."""
    marks, size = [(0, 4)], len(data)
    if kind == b"text":
        return marks + [(8, size - 8)] if _icc_known(data[8:], "latin-1") else None
    if kind == b"desc":
        (n,) = struct.unpack_from(">I", data, 8)
        if 12 + n > size or not _icc_known(data[12:12 + n], "latin-1"):
            return None
        marks += [(8, 4), (12, n)]
        at = 12 + n
        if at + 8 <= size:
            language, units = data[at:at + 4], struct.unpack_from(">I", data, at + 4)[0]
            if (language.strip(b"\0") and not re.fullmatch(rb"[a-z]{2}[A-Z]{2}", language)) or \
                    at + 8 + 2 * units > size or not _icc_known(data[at + 8:at + 8 + 2 * units], "utf-16-be"):
                return None
            marks += [(at, 8), (at + 8, 2 * units)]
            at += 8 + 2 * units
            if at + 70 <= size:
                if data[at] or data[at + 2] > 67 or not _icc_known(data[at + 3:at + 70], "latin-1"):
                    return None
                marks += [(at, 70)]
        return marks
    if kind == b"mluc":
        records, record_size = struct.unpack_from(">II", data, 8)
        if record_size != 12 or 16 + 12 * records > size:
            return None
        marks.append((8, 8))
        for r in range(records):
            at = 16 + 12 * r
            length, where = struct.unpack_from(">II", data, at + 4)
            if not re.fullmatch(rb"[a-z]{2}[A-Z]{2}", data[at:at + 4]) or where + length > size \
                    or not _icc_known(data[where:where + length], "utf-16-be"):
                return None
            marks += [(at, 12), (where, length)]
        return marks
    return None


# --- vendor texts -------------------------------------------------------------------------------

def _text(raw, where):
    text = c_string(raw)
    if text is None:
        raise _Unexplained(f"{where}: text after its end (NUL)")
    return text


class _Unexplained(FormatError):
    pass


def _aperio_description(vendor, raw, where, index, page, options, drawn):
    try:
        text = _text(raw, where)
    except _Unexplained as exc:
        return [str(exc)]
    if drawn:
        return [] if vendor.DRAWN.accepts(text) else [f"{where}: not paw's drawn-label description"]
    items = text.split("|")
    problems = []
    if not (vendor.FIRST_ITEM.accepts(items[0]) or items[0] == vendor.BARE_FIRST_ITEM):
        problems.append(f"{where}: the first item is not a known product and geometry line")
    for number, item in enumerate(items[1:], 1):
        key, sep, value = item.partition("=")
        kind = vendor.KEYS.get(key.strip())
        if not sep or kind is None:
            problems.append(f"{where} item {number}: a key the allow-list does not know")
        elif not kind.accepts(value.strip()):
            problems.append(f"{where} key '{key.strip()}': value is not {kind.label}")
    return problems


def _ndpi_properties(vendor, raw, where, index, page, options, drawn):
    try:
        text = _text(raw, where)
    except _Unexplained as exc:
        return [str(exc)]
    problems = []
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        key, sep, value = line.partition("=")
        kind = next((k for pattern, k in vendor.PROPERTY_TYPES if re.fullmatch(pattern, key)), None) \
            if sep else None
        if kind is None:
            problems.append(f"{where} line {number}: a key the allow-list does not know")
        elif not kind.accepts(value):
            problems.append(f"{where} line {number}: value is not {kind.label}")
        elif key.startswith("AHEX") and printable_runs(bytes.fromhex(value)):
            problems.append(f"{where} line {number}: hex that spells text")
    return problems


def _exact(allowed):
    def explain(vendor, raw, where, index, page, options, drawn):
        try:
            text = _text(raw, where)
        except _Unexplained as exc:
            return [str(exc)]
        return [] if any(a.accepts(text) for a in allowed(vendor, index, options, drawn)) else \
            [f"{where}: text the allow-list does not explain"]
    return explain


def _philips_description(vendor, raw, where, index, page, options, drawn):
    if index == 0:
        try:
            text = _text(raw, where)
        except _Unexplained as exc:
            return [str(exc)]
        return philips_xml(text, where, options.keep_macro, vendor.ATTRIBUTES, vendor.OBJECT_TYPES)
    from .allow import OneOf
    allowed = OneOf("Label") if drawn else OneOf("Macro") if options.keep_macro else OneOf()
    return _exact(lambda *a: [allowed])(vendor, raw, where, index, page, options, drawn)


def _ventana_description(vendor, raw, where, index, page, options, drawn):
    from .allow import OneOf
    allowed = OneOf(vendor.LABEL_DESCRIPTIONS[1]) if drawn else vendor.LEVEL
    return _exact(lambda *a: [allowed])(vendor, raw, where, index, page, options, drawn)


def _ventana_xmp(vendor, raw, where, index, page, options, drawn):
    try:
        text = _text(raw, where)
    except _Unexplained as exc:
        return [str(exc)]
    return xml_problems(text, where, vendor.ELEMENTS, vendor.DECLARATION, namespaces={})


def _leica_description(vendor, raw, where, index, page, options, drawn):
    return _namespaced_xml(vendor, raw, where, index, vendor.NAMESPACES)


def _ome_description(vendor, raw, where, index, page, options, drawn):
    return _namespaced_xml(vendor, raw, where, index, (vendor.SCHEMA,))


def _namespaced_xml(vendor, raw, where, index, namespaces):
    """Directory 0's description as XML in one of the vendor's `namespaces` (Leica SCN, OME)."""
    if index != 0:
        return [f"{where}: only directory 0 may have a description"]
    try:
        text = _text(raw, where)
    except _Unexplained as exc:
        return [str(exc)]
    return xml_problems(text, where, vendor.ELEMENTS, vendor.DECLARATION,
                        namespaces={None: namespaces, "xsi": (vendor.XSI,)},
                        element_namespaces=namespaces)


EXPLAINERS = {
    "aperio description": _aperio_description,
    "ndpi properties": _ndpi_properties,
    "philips description": _philips_description,
    "ventana description": _ventana_description,
    "ventana xmp": _ventana_xmp,
    "leica description": _leica_description,
    "ome description": _ome_description,
}


# --- XML ----------------------------------------------------------------------------------------

def _parse(text, where, declaration):
    """The element tree (comments and PIs kept as nodes), or a problem."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise _Unexplained(f"{where}: XML with a DOCTYPE")
    if "<![CDATA[" in text:
        raise _Unexplained(f"{where}: a CDATA section")
    head = text.lstrip()
    if head.startswith("<?xml"):
        end = head.find("?>") + 2
        if not declaration.accepts(head[:end]):
            raise _Unexplained(f"{where}: an XML declaration the allow-list does not explain")
        head = head[end:]
    if "<?" in head or "<!--" in head:
        raise _Unexplained(f"{where}: a comment or processing instruction")
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    try:
        return ET.fromstring(text, parser=parser)
    except ET.ParseError:
        raise _Unexplained(f"{where}: XML that does not parse (text after the root?)") from None


def _split(tag):
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def xml_problems(text, where, elements, declaration, namespaces, element_namespaces=(None,),
                 text_kind=None):
    """Every element, attribute and text of an XML document against `elements` (XmlElement
    per local name). `namespaces` maps each allowed prefix (None: the default) to the URIs it
    may declare; `text_kind(element, rule)` overrides an element's text kind (Philips)."""
    try:
        root = _parse(text, where, declaration)
    except _Unexplained as exc:
        return [str(exc)]
    problems = []
    for match in _XMLNS.finditer(text):
        prefix, uri = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        if uri not in namespaces.get(prefix, ()):
            problems.append(f"{where}: a namespace declaration the allow-list does not explain")
    aliases = {uri: prefix for prefix, uris in namespaces.items() if prefix for uri in uris}
    for element in root.iter():
        if not isinstance(element.tag, str):
            problems.append(f"{where}: a comment or processing instruction")
            continue
        namespace, name = _split(element.tag)
        rule = element_rule(elements, name)
        if rule is None or namespace not in element_namespaces:
            problems.append(f"{where}: an element the allow-list does not know")
            continue
        for key, value in element.attrib.items():
            attribute_namespace, attribute = _split(key)
            if attribute_namespace is not None:
                attribute = f"{aliases.get(attribute_namespace, '?')}:{attribute}"
            kind = rule.attribute(attribute)
            if kind is None:
                problems.append(f"{where} {name}: an attribute the allow-list does not know")
            elif not kind.accepts(value):
                problems.append(f"{where} {name}@{attribute}: value is not {kind.label}")
        kind = text_kind(element, rule) if text_kind else rule.text
        content = (element.text or "").strip()
        if content and (kind is None or not kind.accepts(content)):
            problems.append(f"{where} {name}: text the allow-list does not explain")
        if (element.tail or "").strip():
            problems.append(f"{where}: text between elements")
    return problems


def philips_xml(text, where, keep_macro, attributes, object_types, padded=False):
    """A DPUfsImport document (Philips TIFF description, iSyntax header) against the Philips
    allow-list: elements, typed Attribute values by Name, no label or macro image."""
    from . import philips
    from .allow import OneOf, XmlElement
    attribute = philips.ELEMENTS["Attribute"]
    elements = {**philips.ELEMENTS, "DataObject": XmlElement({"ObjectType": object_types}),
                "Attribute": XmlElement({**attribute.attributes, "Name": OneOf(*attributes)},
                                        text=attribute.text)}

    def text_kind(element, rule):
        if element.tag != "Attribute":
            return rule.text
        return attributes.get(element.get("Name", ""))

    problems = xml_problems(text.rstrip(" ") if padded else text, where, elements,
                            philips.DECLARATION, namespaces={}, text_kind=text_kind)
    if problems:
        return problems
    root = ET.fromstring(text)
    if root.tag != "DataObject" or root.get("ObjectType") != "DPUfsImport":
        problems.append(f"{where}: not a DPUfsImport DataObject")
    for attribute in root.iter("Attribute"):
        name = attribute.get("Name", "")
        kind = attributes.get(name)
        if kind is None:
            problems.append(f"{where}: an Attribute name the allow-list does not know")
        elif kind is philips.SEQUENCE and any(child.tag != "Array" for child in attribute):
            problems.append(f"{where}: a sequence Attribute holding something else")
        elif kind is not philips.SEQUENCE and len(attribute):
            problems.append(f"{where}: a value Attribute holding elements")
    for data_object in root.iter("DataObject"):
        kinds = [a.text for a in data_object.findall("Attribute") if a.get("Name") == "PIM_DP_IMAGE_TYPE"]
        kind = kinds[0] if kinds else None
        if kind in philips.ASSOCIATED and not (kind == "MACROIMAGE" and keep_macro):
            problems.append(f"{where}: a {kind} is still in the XML")
        if not (kind == "MACROIMAGE" and keep_macro) and any(
                a.get("Name") == philips.IMAGE_DATA for a in data_object.findall("Attribute")):
            problems.append(f"{where}: base64 image data outside a kept macro")
    return problems
