"""Quarantine reasons a technician can act on: one line, distinct per cause, never a text taken
from the file. A file that is no slide is named by its first bytes; a copy cut short is called
incomplete, with its size and the vendor; a name that does not fit says the pattern; a bug in
paw says so without quoting what it choked on."""

import io
import os
import re
import zipfile

import pytest

from conftest import shared_fixture
from synth import aperio, czi, dicom, generic, leica, mrxs, ndpi, philips, ventana

from paw.errors import Unsupported
from paw.formats import identify, prepare


def _zip(*names):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return buffer.getvalue()


NOT_SLIDES = [
    ("consent.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not a slide (PDF document)"),
    ("request.docx", _zip("[Content_Types].xml", "word/document.xml"), "not a slide (Word document, .docx)"),
    ("list.xlsx", _zip("[Content_Types].xml", "xl/workbook.xml"), "not a slide (Excel workbook, .xlsx)"),
    ("talk.pptx", _zip("[Content_Types].xml", "ppt/presentation.xml"),
     "not a slide (PowerPoint presentation, .pptx)"),
    ("form.odt", b"PK\x03\x04" + b"\0" * 26 + b"mimetypeapplication/vnd.oasis.opendocument.text",
     "not a slide (OpenDocument file, .odt, .ods or .odp)"),
    ("slides.zip", _zip("a.svs"), "not a slide (ZIP archive)"),
    ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500, "not a slide (older Office document, .doc, .xls or .ppt)"),
    ("letter.rtf", b"{\\rtf1\\ansi Patient", "not a slide (RTF document)"),
    ("photo.jpg", b"\xff\xd8\xff\xe0\0\x10JFIF\0", "not a slide (JPEG image)"),
    ("shot.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not a slide (PNG image)"),
    ("anim.gif", b"GIF89a\x01\0\x01\0", "not a slide (GIF image)"),
    ("scan.jp2", b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 ", "not a slide (JPEG 2000 image)"),
    ("backup.gz", b"\x1f\x8b\x08\0" + b"\0" * 20, "not a slide (gzip archive)"),
    ("backup.7z", b"7z\xbc\xaf\x27\x1c\0\x04", "not a slide (7-Zip archive)"),
    ("backup.rar", b"Rar!\x1a\x07\x01\0", "not a slide (RAR archive)"),
    ("tool", b"\x7fELF\x02\x01\x01", "not a slide (program, ELF executable)"),
    ("setup.exe", b"MZ\x90\0\x03\0\0\0", "not a slide (Windows program or library)"),
    ("clip.mp4", b"\0\0\0\x18ftypmp42\0\0\0\0", "not a slide (video or HEIF image)"),
    ("pic.webp", b"RIFF\x24\0\0\0WEBPVP8 ", "not a slide (WebP image)"),
    ("notes.txt", "Patient Jane Doe, S26-047119, re-scan please\n".encode(), "not a slide (text file)"),
    ("notes-utf16.txt", "\ufeffRequest: Müller\r\n".encode("utf-16-le"), "not a slide (text file)"),
    ("latin1.txt", "Anfrage Müller".encode("latin-1") + b"\n", None),  # not UTF-8: the parser's reason
    ("export.xml", b"<?xml version='1.0'?><patient>Jane</patient>", "not a slide (XML document)"),
    ("page.html", b"<!DOCTYPE html><html><body>Jane</body></html>", "not a slide (HTML page)"),
    ("empty.svs", b"", "empty file (0 bytes): was it saved or copied completely?"),
    ("noise.svs", b"\x80\x81\x82" + bytes(range(256)) * 4, "cannot parse: not a TIFF file"),
]


@pytest.mark.parametrize("name, data, reason", NOT_SLIDES, ids=[n for n, _, _ in NOT_SLIDES])
def test_a_file_that_is_no_slide_is_named_by_its_first_bytes(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(Unsupported) as caught:
        identify(str(path))
    assert str(caught.value) == (reason or "cannot parse: not a TIFF file")
    for text in ("Jane", "Müller", "S26", "Patient", "Request"):
        assert text not in str(caught.value)  # a reason never quotes the file's text


def test_non_slides_reach_the_quarantine_each_with_its_own_reason(lab):
    for name, data, _ in NOT_SLIDES[:3] + NOT_SLIDES[-2:]:
        with open(os.path.join(lab.inbox, name), "wb") as fh:
            fh.write(data)
    assert lab.run() == 3
    reasons = {r["original"]: r["error"] for r in lab.rows()}
    assert reasons == {name: reason or "cannot parse: not a TIFF file" for name, _, reason in
                       NOT_SLIDES[:3] + NOT_SLIDES[-2:]}
    assert len(set(reasons.values())) == len(reasons)  # distinct per cause
    for name in reasons:
        with open(os.path.join(lab.quarantine, name + ".reason.txt")) as fh:
            assert fh.read() == reasons[name] + "\n"


# --- incomplete copies, every vendor ------------------------------------------------------------

def _file(module, ext):
    def make(folder):
        path = os.path.join(folder, "S26-1 A1 HE" + ext)
        module.write(path)
        return path, path
    return make


def _dicom(folder):
    slide = os.path.join(folder, "S26-1 A1 HE")
    dicom.write(slide)
    volume = sorted(n for n in os.listdir(slide) if "volume0" in n)[0]
    return slide, os.path.join(slide, volume)


def _mrxs(folder):
    path = os.path.join(folder, "S26-1 A1 HE.mrxs")
    mrxs.write(path)
    return path, os.path.join(folder, "S26-1 A1 HE", "Data0000.dat")


def _vsi(folder):
    from synth import vsi
    vsi.copy_slide(shared_fixture("olympus-vsi", "vsi-ets-test-jpg2k.vsi"), folder, "S26-1 A1 HE")
    return os.path.join(folder, "S26-1 A1 HE.vsi"), \
        os.path.join(folder, "_S26-1 A1 HE_", "stack1", "frame_t_0.ets")


VENDORS = [
    ("aperio", _file(aperio, ".svs"), "an Aperio SVS"),
    ("ndpi", _file(ndpi, ".ndpi"), "a Hamamatsu NDPI"),
    ("philips", _file(philips, ".tiff"), "a Philips TIFF"),
    ("ventana", _file(ventana, ".bif"), "a Ventana BIF"),
    ("leica", _file(leica, ".scn"), "a Leica SCN"),
    ("generic", _file(generic, ".tif"), "a generic tiled TIFF"),
    ("czi", _file(czi, ".czi"), "a Zeiss CZI"),
    ("dicom", _dicom, "a DICOM WSI"),
    ("mrxs", _mrxs, "a 3DHistech MRXS"),
    ("vsi", _vsi, "an Olympus VSI"),
]


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
@pytest.mark.parametrize("name, make, vendor", VENDORS, ids=[v[0] for v in VENDORS])
def test_a_copy_cut_short_is_an_incomplete_file_of_its_vendor(tmp_path, name, make, vendor, fraction):
    slide, cut = make(str(tmp_path))
    size = os.path.getsize(cut)
    with open(cut, "r+b") as fh:
        fh.truncate(int(size * fraction))
    with pytest.raises(Unsupported) as caught:
        prepare(slide, _options(tmp_path))
    reason = str(caught.value)
    assert reason.startswith("incomplete file: ") and f" of {vendor} slide; was it still being copied?" in reason


def test_an_aperio_copy_cut_before_its_directories_is_named_by_its_extension(tmp_path):
    """An Aperio SVS keeps its directories at the end: the first half says nothing about the
    vendor, so the reason falls back on the extension (only to word it)."""
    real = shared_fixture("aperio", "cmu-1-small-region.svs")
    path = tmp_path / "S26-9 A1 HE.svs"
    with open(real, "rb") as fh:
        path.write_bytes(fh.read(1_200_000))
    with pytest.raises(Unsupported, match=r"^incomplete file: 1\.2 MB of an Aperio SVS slide; was it still"):
        identify(str(path))


def _options(tmp_path):
    from paw.config import embedded
    return embedded(str(tmp_path))


# --- names, and paw's own failures ---------------------------------------------------------------

def test_a_name_that_does_not_fit_shows_the_pattern_on_one_line(lab):
    lab.write_config(extra="naming: {pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*)'}\n")
    aperio.write(os.path.join(lab.inbox, "scan\nof monday.svs"))
    assert lab.run() == 3
    [row] = lab.rows()
    assert row["error"] == ("name 'scan\\nof monday' does not match naming.pattern "
                            "'(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*)'")
    with open(os.path.join(lab.quarantine, "scan\nof monday.svs.reason.txt")) as fh:
        assert fh.read().count("\n") == 1


def test_an_unexpected_error_is_reported_without_what_it_quoted(lab, monkeypatch):
    from paw.formats import tiffhandler

    def choke(self, path, options, pseudonym, label):
        raise ValueError("invalid literal for int() with base 10: 'Jane Doe 1958-03-01'")

    monkeypatch.setattr(tiffhandler.TiffHandler, "_plan", choke)
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    assert lab.run() == 3
    [row] = lab.rows()
    assert re.fullmatch(r"paw failed on it: unexpected ValueError in formats/base\.py line \d+ \(please "
                        r"report it; 'paw.py -v' logs the details\)", row["error"]), row["error"]



def test_a_library_in_a_checkout_called_paw_is_not_taken_for_paws_own_code():
    """A checkout in /opt/paw holds its venv's libraries and its tests: only lib/paw/ is paw's."""
    from paw import slide as slide_module
    namespace = {}
    exec(compile("def choke():\n    raise ValueError('x')\n",
                 "/opt/paw/.venv/lib/python3.11/site-packages/tifffile/tifffile.py", "exec"), namespace)
    try:
        namespace["choke"]()
    except ValueError as exc:
        assert slide_module._where(exc) == ""

def test_a_missing_package_stops_the_run_with_the_command_and_keeps_the_slide(lab, monkeypatch, capsys):
    from paw import slide as slide_module
    planted = aperio.write(os.path.join(lab.inbox, "a.svs"))

    def missing(path):
        raise ModuleNotFoundError("No module named 'tifffile'", name="tifffile")

    monkeypatch.setattr(slide_module.formats, "identify", missing)
    assert lab.run() == 2
    err = capsys.readouterr().err
    assert "the Python package that provides 'tifffile' is not installed" in err
    assert "-m pip install -r " + os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                               "requirements.txt") in err
    assert lab.rows() == [] and lab.quarantined() == [] and len(lab.staging()) == 1  # waits in staging
    monkeypatch.undo()
    assert lab.run() == 0 and len(lab.outbox_files()) == 1 and lab.staging() == []
    from checks import leaked
    assert leaked(os.path.join(lab.outbox, lab.outbox_files()[0]), planted) == []


def test_a_lone_mrxs_file_is_an_mrxs_without_its_folder_not_a_jpeg(tmp_path):
    """A scanner's .mrxs file is a JPEG preview: without its data folder it is an MRXS slide
    missing a part, not "a JPEG image"."""
    lone = tmp_path / "S26-1.mrxs"
    lone.write_bytes(b"\xff\xd8\xff\xe0\0\x10JFIF\0")
    with pytest.raises(Unsupported, match="MRXS without its data folder"):
        identify(str(lone))
