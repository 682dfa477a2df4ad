"""Philips iSyntax: a DPUfsImport XML header ended by `\\r\\n\\x04`, then the wavelet-coded image.

There is no public iSyntax reader in OpenSlide; the layout is Philips' (the header is the same
DataObject XML as in Philips TIFF, and the readers published for iSyntax locate the binary part
by the end-of-text byte 0x04 after the header). The header carries the same identifying
attributes as Philips TIFF, the base64 LABELIMAGE/MACROIMAGE JPEGs, and the codec's own tables
(`UFS_*` block headers, `DP_*` colour and wavelet settings) that a reader needs.

What paw does: the header is scrubbed like Philips TIFF's XML (attributes outside the allow-list
emptied, LABELIMAGE/MACROIMAGE removed), keeping in addition every `UFS_*` and `DP_*` attribute
(codec structure); the new header is padded with XML whitespace to exactly the old length, so
`\\r\\n\\x04` and the binary data stay where they were. The binary part is never read or written.
A file without the end-of-text byte within the first 256 MiB is refused.
"""

import os

from .. import ranges
from ..errors import FormatError
from . import philips, xmltext
from .base import Handler, Prepared
from .edits import EditPlan

END = b"\r\n\x04"
MAX_HEADER = 256 << 20


def detect(path):
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        head = fh.read(512)
    return head[:2] not in (b"II", b"MM") and b"<DataObject" in head and b"DPUfsImport" in head


def kept(name):
    return philips.kept(name) or name.startswith(("UFS_", "DP_"))


def _header(path):
    """(header text, offset of the end-of-text marker, file size)."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER)
        fh.seek(0, 2)
        size = fh.tell()
    end = head.find(END)
    if end < 0:
        raise FormatError("iSyntax header has no end-of-text marker (\\r\\n\\x04)")
    return head[:end].decode("latin-1"), end, size


class IsyntaxHandler(Handler):
    name = "isyntax"
    title = "Philips iSyntax"
    # The label is base64 in the header, which may not grow, and no reader here shows it: none drawn.
    label_place = None
    plan_type = EditPlan

    def _plan(self, path, options, pseudonym, label):
        text, end, size = _header(path)
        new, removed, names = philips.scrub_xml(text, options.keep_macro, keep=kept)
        data = new.encode("latin-1", "xmlcharrefreplace")
        if len(data) > end:
            raise FormatError("scrubbed iSyntax header would be longer than the original")
        plan = EditPlan(writes=[(0, data + b" " * (end - len(data)))], removed=removed, actions=names,
                        kept_data=[[end, size - end]] if size > end else [])
        return Prepared(plan, {"header": 1})

    def check(self, path, plan, options):
        """Independent re-read: the marker where it was, the XML parses and holds nothing to remove."""
        try:
            text, end, size = _header(path)
            root = xmltext.parse(text, "iSyntax header")
        except FormatError as exc:
            return [str(exc)]
        binary = [[end, size - end]] if size > end else []
        if [list(k) for k in plan.kept_data] != binary:
            return ["the iSyntax binary data is not where it was"]
        problems = []
        for data_object in root.iter("DataObject"):
            kind = philips.image_type(data_object)
            if kind in philips.ASSOCIATED and not (kind == "MACROIMAGE" and options.keep_macro):
                problems.append(f"{kind} is still in the header")
        for attribute in root.iter("Attribute"):
            if not len(attribute) and not kept(attribute.get("Name", "")) and (attribute.text or "").strip():
                problems.append(f"{attribute.get('Name')} still has a value")
        return problems

    def searched(self, path, plan):
        yield path, ranges.merge(plan.kept_data)
