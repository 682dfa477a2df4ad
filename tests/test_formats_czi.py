"""Zeiss CZI: real ZEN files and synthetic slide scans through the job, read back with
independent readers (pylibCZIrw for pixels and metadata, czifile for attachments, slideio for
what a viewer lists), and hostile variants that must be delivered clean or quarantined."""

import hashlib
import io
import os
import shutil
import struct

import pytest

from checks import leaked
from conftest import shared_fixture
from synth import czi as synth

pyczi = pytest.importorskip("pylibCZIrw.czi", reason="pylibCZIrw (requirements-dev.txt) not installed")
czifile = pytest.importorskip("czifile", reason="czifile (requirements-dev.txt) not installed")

FIXTURES = ["DAPI_GFP.czi", "S3_1Pos_2Mosaic_T1_Z1_CH1.czi", "WellD6-7_S2.czi"]
# What each real file says about who made it, when and where (public test data), read from
# the files themselves: UserName, dates, the audit trail's paths, scene and session names.
IDENTIFYING = {
    "DAPI_GFP.czi": ["M1SRH", "2016-12-01T16:13:46", "C:\\Users\\M1SRH", "Channel2-01-A-01.tif",
                     "12/01/2016 15:19:55"],
    "S3_1Pos_2Mosaic_T1_Z1_CH1.czi": ["F:\\Github\\czitools", "2021-06-15T06:09:43", "m1srh"],
    "WellD6-7_S2.czi": ["Castor Simulation", "2023-01-06T10:42:50", "IncubationRecording",
                        "LSM - 20230106_113955", "638085984862790509"],
}


def pixels(path):
    """SHA-1 of every plane of every scene, read by pylibCZIrw (libCZI)."""
    digests = []
    with pyczi.open_czi(path) as doc:
        box = doc.total_bounding_box
        for scene in sorted(doc.scenes_bounding_rectangle) or [None]:
            for c in range(*box["C"]):
                for t in range(*box.get("T", (0, 1))):
                    for z in range(*box.get("Z", (0, 1))):
                        plane = {"C": c, "T": t, "Z": z}
                        image = doc.read(plane=plane, scene=scene) if scene is not None else doc.read(plane=plane)
                        digests.append(hashlib.sha1(image.tobytes()).hexdigest())
    return digests


def metadata(path):
    with pyczi.open_czi(path) as doc:
        return doc.raw_metadata


def attachments(path):
    with czifile.CziFile(path) as f:
        return sorted(a.attachment_entry.name for a in f.attachments())


def slideio_aux(path):
    """slideio's auxiliary images (in a child process: slideio crashes on some malformed CZIs)."""
    import subprocess
    import sys
    pytest.importorskip("slideio")
    code = "import sys, slideio; print(sorted(slideio.open_slide(sys.argv[1], 'CZI').get_aux_image_names()))"
    view = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120)
    assert view.returncode == 0, view.stderr[-300:]
    return eval(view.stdout)  # a printed list of names


def only_output(lab):
    [name] = lab.outbox_files()
    return os.path.join(lab.outbox, name)


@pytest.mark.parametrize("name", FIXTURES)
def test_real_czi_reaches_the_outbox_with_identical_pixels(lab, name):
    source = shared_fixture("zeiss-czi", name)
    shutil.copyfile(source, os.path.join(lab.inbox, name))
    before = metadata(source)
    for value in IDENTIFYING[name]:
        assert value.lower() in before.lower() or value.encode() in open(source, "rb").read(), value
    assert lab.run() == 0, lab.rows()
    output = only_output(lab)
    assert output.endswith(".czi") and lab.rows()[0]["format"] == "czi"
    assert pixels(output) == pixels(source)
    after = metadata(output)
    assert "UserName" not in after and "AcquisitionDateAndTime" not in after and "AuditTrail" not in after
    assert "<Scaling>" in after and "<Channels>" in after and "PixelType" in after
    assert leaked(output, IDENTIFYING[name]) == [] and leaked(output, [v.upper() for v in IDENTIFYING[name]]) == []
    assert "Thumbnail" not in attachments(output) and "EventList" not in attachments(output)
    assert set(attachments(output)) <= {"TimeStamps"}
    present = [path for path in KEPT if _values(before, path)]
    assert len(present) >= 5, present
    for path in KEPT:   # optics and geometry stay, value for value
        assert _values(after, path) == _values(before, path), path


KEPT = ["Metadata/Information/Image/SizeX", "Metadata/Information/Image/PixelType",
        "Metadata/Information/Image/Dimensions/Channels/Channel/@Name",
        "Metadata/Information/Image/Dimensions/Channels/Channel/EmissionWavelength",
        "Metadata/Information/Instrument/Objectives/Objective/@Name",
        "Metadata/Information/Instrument/Objectives/Objective/LensNA",
        "Metadata/Scaling/Items/*/Value", "Metadata/DisplaySetting/Channels/Channel/Color"]


def _values(xml, path):
    import xml.etree.ElementTree as ET
    root = ET.fromstring(xml)
    element_path, _, attribute = path.partition("/@")
    found = root.findall(element_path)
    return sorted(str(e.get(attribute)) if attribute else (e.text or "").strip() for e in found)


@pytest.mark.parametrize("name", ["DAPI_GFP.czi", "WellD6-7_S2.czi"])   # slideio has no zstd
def test_slideio_reads_the_same_scenes(tmp_path, name):
    """slideio crashes (SIGSEGV) on a CZI without Scaling/Items or Dimensions/Channels: it runs
    in a child process so such a regression fails this test instead of the whole run."""
    import subprocess
    import sys
    pytest.importorskip("slideio")
    from paw import formats
    source = shared_fixture("zeiss-czi", name)
    output = str(tmp_path / name)
    shutil.copyfile(source, output)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    handler = formats.identify(output)
    plan = handler.plan(output, options).plan
    plan.apply(output)
    assert handler.check(output, plan, options) == []
    code = ("import hashlib, sys, slideio\n"
            "s = slideio.open_slide(sys.argv[1], 'CZI')\n"
            "print([hashlib.sha1(s.get_scene(i).read_block().tobytes()).hexdigest() "
            "for i in range(s.num_scenes)], s.get_scene(0).resolution)")
    views = [subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True, timeout=120)
             for p in (source, output)]
    assert views[1].returncode == 0, views[1].stderr[-300:]
    assert views[0].stdout == views[1].stdout


def test_synthetic_slide_scan_loses_label_preview_and_identifiers(lab, tmp_path):
    """Label and SlidePreview are nested CZIs: listed by czifile and slideio before, gone after."""
    source = str(tmp_path / "scan.czi")
    planted = synth.write(source)
    assert attachments(source) == ["EventList", "Label", "SlidePreview", "Thumbnail", "TimeStamps"]
    assert {"Label", "SlidePreview", "Thumbnail"} <= set(slideio_aux(source))
    assert leaked(source, planted.values()) != []
    shutil.copyfile(source, os.path.join(lab.inbox, "S24-4711 A1.czi"))
    assert lab.run() == 0, lab.rows()
    output = only_output(lab)
    assert attachments(output) == ["TimeStamps"] and slideio_aux(output) == []
    assert pixels(output) == pixels(source)
    assert leaked(output, list(planted.values()) + ["S24-4711"]) == []
    removed = lab.rows()[0]["removed"]
    assert "label image destroyed" in removed and "macro image destroyed" in removed


def test_inspect_names_the_label_and_preview(lab, tmp_path, capsys):
    source = str(tmp_path / "scan.czi")
    synth.write(source)
    assert lab.run("inspect", source) == 0
    out = capsys.readouterr().out
    assert "Zeiss CZI (czi)" in out and "label x1" in out and "macro x1" in out
    assert synth.PLANTED["user"] in out   # inspect shows the values it would remove (by hand, on the host)


def _hostile(tmp_path, **options):
    path = str(tmp_path / "hostile.czi")
    with open(path, "wb") as fh:
        fh.write(synth.build(**options))
    return path


SECRET = "Smith, John 1970-01-01"    # never fits a kept field's pattern (comma, date)
SECRETS = [SECRET, "PATIENT-4711"]


def _segment(ident, payload):
    return synth.segment(ident, payload)


HOSTILE = {
    # class: metadata XML -------------------------------------------------------------------
    "scene name": dict(planted={"scene": SECRET}),
    "channel name that is not a name": dict(channels=("DAPI", SECRET)),
    "comment in the XML": dict(extra_xml=f"<!-- {SECRET} -->"),
    "unknown element": dict(extra_xml=f"<Layers><Layer Name=\"{SECRET}\"><Text>{SECRET}</Text></Layer></Layers>"),
    "processing instruction": dict(extra_xml=f"<?zen {SECRET}?>"),
    "CDATA in an unknown element": dict(extra_xml=f"<Notes><![CDATA[{SECRET}]]></Notes>"),
    "value in a kept element that is not a number": dict(
        extra_xml=f"<Information><Image><SizeZ>{SECRET}</SizeZ></Image></Information>"),
    "UTF-16 text in an unknown element": dict(extra_xml="<Blob>" + SECRET.encode("utf-16-le").hex() + "</Blob>"),
    # class: segments outside the XML --------------------------------------------------------
    "deleted segment with a stale XML": dict(deleted_payload=f"<ImageDocument>{SECRET}</ImageDocument>".encode()),
    "deleted segment with UTF-16": dict(deleted_payload=SECRET.encode("utf-16-le")),
    "deleted segment with Latin-1": dict(deleted_payload="Müller, Jürgen 1970".encode("latin-1")),
    "attachment outside the directory": dict(extra_segments=[_segment(
        b"ZISRAWATTACH", (struct.pack("<q8s", 16, bytes(8)) + struct.pack(
            "<2s10sqi16s8s80s", b"A1", bytes(10), 0, 0, bytes(16), b"JPG", b"Notes")).ljust(256, b"\0")
        + SECRET.encode())]),
    "event list text": dict(planted={"event": SECRET}),
    "subblock acquisition time": dict(planted={"date": "1970-01-01T00:00:00 " + SECRET}),
    "label as JPEG instead of nested CZI": dict(nested=False),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_czi_is_delivered_clean(lab, tmp_path, case):
    """Each hiding place is emptied by the scrubber (not merely caught by the audit): the slide
    reaches the outbox without the value."""
    options = HOSTILE[case]
    source = _hostile(tmp_path, **options)
    data = open(source, "rb").read()
    assert any(e in data for s in SECRETS + ["Müller"] for e in (s.encode(), s.encode("utf-16-le"),
                                                                  s.encode("latin-1", "ignore"))), case
    shutil.move(source, os.path.join(lab.inbox, "hostile.czi"))
    assert lab.run() == 0, lab.rows()[0]["error"]
    output = only_output(lab)
    assert leaked(output, SECRETS + ["Müller, Jürgen"]) == [], case
    assert "Müller".encode("latin-1") not in open(output, "rb").read()
    assert pixels(output) == pixels(_hostile(tmp_path, **options))


def _mutated(tmp_path, change):
    data = bytearray(synth.build())
    change(data)
    path = str(tmp_path / "mutated.czi")
    open(path, "wb").write(data)
    return path


REFUSED = {
    "trailing bytes after the last segment": (lambda d: d.extend(SECRET.encode()), "ends inside"),
    "unknown segment Id": (lambda d: d.extend(_segment(b"ZISRAWNOTES", SECRET.encode())), "unknown Id"),
    "second metadata segment": (lambda d: d.extend(_segment(b"ZISRAWMETADATA", struct.pack("<ii", 8, 0).ljust(256, b"\0")
                                                             + b"<a>x</a>")), "metadata segment"),
    "version 2.0": (lambda d: struct.pack_into("<i", d, 32, 2), "version 2.0"),
    "multi-part file": (lambda d: struct.pack_into("<i", d, 80, 1), "multi-part"),
    "segment off the grid": (lambda d: struct.pack_into("<q", d, 16, 520), "impossible size"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_czi_not_understood_is_quarantined_with_one_line(lab, tmp_path, case):
    change, reason = REFUSED[case]
    shutil.move(_mutated(tmp_path, change), os.path.join(lab.inbox, "odd.czi"))
    assert lab.run() == 3 and lab.quarantined() == ["odd.czi"]
    text = open(os.path.join(lab.quarantine, "odd.czi.reason.txt")).read()
    assert reason in text and "\n" not in text.strip() and SECRET not in text


def test_jpeg_subblock_with_a_comment_is_refused(lab, tmp_path):
    """Tile payload is not read, but JPEG subblock headers are sampled: COM text is found."""
    shutil.move(_hostile(tmp_path, jpeg_tiles=SECRET.encode()), os.path.join(lab.inbox, "j.czi"))
    assert lab.run() == 3
    assert "COM segment" in open(os.path.join(lab.quarantine, "j.czi.reason.txt")).read()


def test_jpeg_subblocks_without_text_pass(lab, tmp_path):
    shutil.move(_hostile(tmp_path, jpeg_tiles=True), os.path.join(lab.inbox, "j.czi"))
    assert lab.run() == 0, lab.rows()


def test_audit_refuses_what_the_scrubber_would_have_missed(tmp_path, monkeypatch):
    """The audit is written against the table, not the scrubber: a scrubber that keeps an
    element it should not (here, by a widened table) is caught by the unchanged audit."""
    from paw import formats
    from paw.formats import czi
    source = _hostile(tmp_path)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    widened = dict(czi.XML_KEEP, **{"Metadata/Information/Document": czi.CONTAINER,
                                    "Metadata/Information/Document/UserName": czi.Pattern(".*")})
    monkeypatch.setattr(czi, "XML_KEEP", widened)
    handler = formats.identify(source)
    plan = handler.plan(source, options).plan
    monkeypatch.undo()
    plan.apply(source)
    problems = handler.check(source, plan, options)
    assert any("Document" in p for p in problems), problems
    assert not any(synth.PLANTED["user"] in p for p in problems)


def test_audit_refuses_a_kept_value_the_table_does_not_accept(tmp_path, monkeypatch):
    """A scrubber whose channel-name kind accepted anything keeps a name with a date in it;
    the audit (still on the real table) names the field and not the value."""
    from paw import formats
    from paw.formats import czi
    source = _hostile(tmp_path, channels=(SECRET,))
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    widened = dict(czi.XML_KEEP, **{f"{czi._CHANNEL}/@Name": czi.Pattern(".*")})
    monkeypatch.setattr(czi, "XML_KEEP", widened)
    handler = formats.identify(source)
    plan = handler.plan(source, options).plan
    monkeypatch.undo()
    plan.apply(source)
    problems = handler.check(source, plan, options)
    assert any(p.endswith("Channel/@Name: text the allow-list does not explain") for p in problems), problems
    assert not any(SECRET in p for p in problems)


def test_czi_plan_round_trips_through_the_journal(tmp_path):
    import json

    from paw import formats
    source = _hostile(tmp_path)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    plan = formats.identify(source).plan(source, options).plan
    data = json.loads(json.dumps(plan.to_json()))
    assert json.loads(json.dumps(formats.plan_from_json("czi", data).to_json())) == data


BIOFORMATS = os.environ.get("PAW_BIOFORMATS_JAR", "/opt/bioformats/bioformats_package.jar")


@pytest.mark.skipif(not (shutil.which("java") and os.path.exists(BIOFORMATS)),
                    reason="Bio-Formats (java + bioformats_package.jar, see .ci/run) not installed")
def test_bioformats_shows_label_and_macro_before_and_not_after(tmp_path):
    """Bio-Formats walks every segment (not only the directories) and shows the nested Label and
    SlidePreview CZIs as "label image" and "macro image" series."""
    import subprocess
    from paw import formats
    path = str(tmp_path / "scan.czi")
    planted = synth.write(path)

    def info():
        return subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageInfo", "-nopix",
                               "-omexml", "-no-upgrade", path], capture_output=True, text=True,
                              timeout=300).stdout
    before = info()
    assert 'Name="label image"' in before and 'Name="macro image"' in before and planted["user"] in before
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    plan.apply(path)
    assert handler.check(path, plan, options) == []
    after = info()
    assert "Series count = 1" in after and "label image" not in after and "macro image" not in after
    assert not [v for v in planted.values() if v in after]
    assert "Plan-Apochromat 20x/0.8" in after


def test_mutated_czi_is_refused_or_clean(tmp_path):
    """Random overwrites, truncations and insertions of a synthetic slide scan: each ends
    refused with a one-line reason, or verified with no planted value outside pixel data."""
    import random

    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    original = synth.build()
    planted = [v for v in synth.PLANTED.values() if len(v) >= 6]
    rng = random.Random(19)
    outcomes = {"refused": 0, "clean": 0}
    for trial in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.6:
                data[at:at + 4] = rng.randbytes(4)
            elif kind < 0.8:
                del data[at:]
            else:
                data[at:at] = rng.choice(planted).encode()
        path = str(tmp_path / f"m{trial}.czi")
        open(path, "wb").write(data)
        try:
            handler = formats.identify(path)
            plan = handler.plan(path, options).plan
            plan.apply(path)
            verify(path, handler, plan, options)
        except SlideRefused as exc:
            assert "\n" not in str(exc) and not any(v in str(exc) for v in planted)
            outcomes["refused"] += 1
            continue
        result = bytearray(open(path, "rb").read())
        for offset, length in plan.kept_data:
            result[offset:offset + length] = bytes(length)
        assert not [v for v in planted if v.encode() in result or v.encode("utf-16-le") in result], trial
        outcomes["clean"] += 1
    assert outcomes["refused"] and outcomes["clean"], outcomes


def _spare_bytes(data):
    struct.pack_into("<5s", data, 544 + 32 + 128 + 23, b"SMITH")   # directory entry 0, after the pyramid type
    struct.pack_into("<8s", data, 40, b"J.SMITH!")                  # the file header's reserved int32s


def test_text_in_spare_and_reserved_fields_is_cleared(lab, tmp_path):
    shutil.move(_mutated(tmp_path, _spare_bytes), os.path.join(lab.inbox, "spare.czi"))
    assert lab.run() == 0, lab.rows()[0]["error"]
    output = only_output(lab)
    assert b"SMITH" not in open(output, "rb").read() and pixels(output)


# --- red team 19 (findings F2-F6, F9): each reproducer, rebuilt here with synth -----------------

def _scrub(tmp_path, full_scan=False, path=None, **options):
    """Plan, apply and verify a synthetic CZI (or the file at `path`) in-process:
    ("refused", reason) or ("delivered", path)."""
    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    path = path or _hostile(tmp_path, **options)
    opts = type("Options", (), {"keep_macro": False, "full_scan": full_scan})()
    try:
        handler = formats.identify(path)
        plan = handler.plan(path, opts).plan
        plan.apply(path)
        verify(path, handler, plan, opts)
    except SlideRefused as exc:
        return "refused", str(exc)
    return "delivered", path


def _channel_names(path):
    import xml.etree.ElementTree as ET
    root = ET.fromstring(metadata(path))
    return [c.get("Name") for c in root.iter("Channel") if c.get("Name") is not None]


# F2: names a lab can type anything into are kept only from the optics vocabularies.
NAMES = {
    "a person's name as channel name": dict(channels=("DAPI", "Jane Doe 1962")),
    "an accession as channel name": dict(channels=("S24-047119",)),
    "a Latin-1 name as channel name": dict(channels=("Müller",)),
    "an other-case removed value as channel name": dict(channels=("jsmith-czi-user",)),
    "a name in Fluor (CDATA)": dict(metadata=lambda x: x.replace("<Fluor>DAPI</Fluor>",
                                                                 "<Fluor><![CDATA[Jane Doe]]></Fluor>")),
    "a name in Fluor (character references)": dict(metadata=lambda x: x.replace(
        "<Fluor>DAPI</Fluor>", "<Fluor>" + "".join(f"&#{ord(c)};" for c in "Jane Doe") + "</Fluor>")),
    "a name as objective name": dict(metadata=lambda x: x.replace('Name="Plan-Apochromat 20x/0.8"',
                                                                  'Name="Jane Doe 20x/0.8"')),
    "a name as display-setting channel name": dict(extra_xml=(
        '<DisplaySetting><Channels><Channel Id="Channel:0" Name="Jane Doe"><Low>0.1</Low></Channel>'
        "</Channels></DisplaySetting>")),
    "a name as illumination type": dict(metadata=lambda x: x.replace(
        "<Fluor>DAPI</Fluor>", "<Fluor>DAPI</Fluor><IlluminationType>JaneDoe</IlluminationType>")),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_free_text_names_are_replaced_or_removed(tmp_path, case):
    source = open(_hostile(tmp_path, **NAMES[case]), "rb").read()
    assert any(n in source for n in (b"Jane Doe", b"S24-047119", b"jsmith-czi-user", "Müller".encode(),
                                     b"&#74;&#97;", b"JaneDoe")), case
    outcome, path = _scrub(tmp_path, **NAMES[case])
    assert outcome == "delivered", path
    assert leaked(path, ["Jane Doe", "S24-047119", "jsmith-czi-user", "JaneDoe"]) == []
    assert "Müller".encode("latin-1") not in open(path, "rb").read()
    assert "Müller" not in metadata(path) and "Jane Doe" not in metadata(path)
    assert all(n == "DAPI" or n.startswith("Channel ") for n in _channel_names(path)), _channel_names(path)


def test_vocabulary_names_stay(tmp_path):
    outcome, path = _scrub(tmp_path, channels=("DAPI", "Alexa Fluor 488", "EGFP-T1", "AF568"))
    assert outcome == "delivered"
    assert _channel_names(path)[:4] == ["DAPI", "Alexa Fluor 488", "EGFP-T1", "AF568"]
    assert "Plan-Apochromat 20x/0.8" in metadata(path)


# F6: numbers that read as dates in kept fields: a size the directory fixes, a wavelength.
def test_sizes_are_the_directorys_and_numbers_stay_in_range(tmp_path):
    outcome, path = _scrub(tmp_path, metadata=lambda x: x.replace(
        "<SizeC>1</SizeC>", "<SizeC>1</SizeC><SizeT>20240506</SizeT><SizeZ>19620417</SizeZ>").replace(
        "<ExcitationWavelength>353</ExcitationWavelength>", "<ExcitationWavelength>20240506</ExcitationWavelength>"))
    assert outcome == "delivered", path
    after = metadata(path)
    assert "20240506" not in after and "19620417" not in after
    assert "<SizeT>1</SizeT>" in after and "<SizeZ>1</SizeZ>" in after and "<SizeX>128</SizeX>" in after
    assert pixels(path) == pixels(_hostile(tmp_path))


def test_audit_refuses_a_size_the_directory_does_not_say(tmp_path, monkeypatch):
    """A scrubber that kept the scanner's SizeZ is caught by the audit's own directory reading."""
    from paw import formats
    from paw.formats import czi
    source = _hostile(tmp_path, metadata=lambda x: x.replace("<SizeC>1</SizeC>", "<SizeC>1</SizeC><SizeZ>19620417</SizeZ>"))
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    monkeypatch.setattr(czi, "set_directory_sizes", lambda root, extents: [])
    handler = formats.identify(source)
    plan = handler.plan(source, options).plan
    monkeypatch.undo()
    plan.apply(source)
    assert any("SizeZ is not the directory's size" in p for p in handler.check(source, plan, options))


# F9: a kept number paw must drop never leaves an element a reader parses as a number empty.
def test_a_nan_scaling_value_drops_the_whole_item(tmp_path):
    outcome, path = _scrub(tmp_path, metadata=lambda x: x.replace("<Value>2.2E-07</Value>", "<Value>NaN</Value>", 1))
    assert outcome == "delivered", path
    after = metadata(path)
    assert "<Value/>" not in after and "<Value></Value>" not in after and "NaN" not in after
    assert after.count("<Distance") == 1 and "2.2E-07" in after


@pytest.mark.skipif(not (shutil.which("java") and os.path.exists(os.environ.get(
    "PAW_BIOFORMATS_JAR", "/opt/bioformats/bioformats_package.jar"))), reason="Bio-Formats not installed")
def test_bioformats_opens_a_slide_whose_scaling_was_nan(tmp_path):
    import subprocess
    outcome, path = _scrub(tmp_path, metadata=lambda x: x.replace("<Value>2.2E-07</Value>", "<Value>NaN</Value>", 1))
    assert outcome == "delivered"
    view = subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageInfo", "-nopix", "-omexml",
                           "-no-upgrade", path], capture_output=True, text=True, timeout=300)
    assert "Exception" not in view.stdout + view.stderr and "Series count = 1" in view.stdout
    assert 'PhysicalSizeY="0.22' in view.stdout


# F4/F5: TimeStamps are typed (relative, finite, non-decreasing) and carry a fresh GUID.
def _attachment_guids(path):
    with czifile.CziFile(path) as f:
        return {a.attachment_entry.name: a.attachment_entry.content_guid for a in f.attachments()}


def _timestamps(path):
    with czifile.CziFile(path) as f:
        return [list(a.data()) for a in f.attachments() if a.attachment_entry.name == "TimeStamps"]


def test_timestamps_guid_is_replaced_and_times_made_relative(tmp_path):
    source = _hostile(tmp_path, timestamps=struct.pack("<ii3d", 32, 3, 1714979289.5, 1714979290.25, 1714979300.0))
    before = _attachment_guids(source)
    outcome, path = _scrub(tmp_path, path=source)
    assert outcome == "delivered", path
    assert _timestamps(path) == [[0.0, 0.75, 10.5]]
    after = _attachment_guids(path)
    assert set(after) == {"TimeStamps"} and after["TimeStamps"] != before["TimeStamps"]


@pytest.mark.parametrize("payload", [
    struct.pack("<ii2d", 24, 2, *struct.unpack("<2d", b"RTZB3CPATXXXXXXX")),   # text as doubles
    struct.pack("<ii2d", 24, 2, 10.0, 5.0),                                   # going back in time
    struct.pack("<ii2d", 24, 2, 0.0, float("nan")),
    struct.pack("<ii2d", 24, 2, 0.0, 6.3e10),                                 # .NET seconds
    struct.pack("<ii", 99, 1) + b"Jane Doe",                                   # not a list of times
])
def test_timestamps_that_are_not_times_are_destroyed(tmp_path, payload):
    outcome, path = _scrub(tmp_path, timestamps=payload)
    assert outcome == "delivered", path
    assert attachments(path) == [] and b"RTZB3CPA" not in open(path, "rb").read() and leaked(path, ["Jane Doe"]) == []


def test_one_timestamps_attachment_at_most(tmp_path):
    second = (b"CZTIMS", b"TimeStamps", struct.pack("<ii2d", 24, 2, *struct.unpack("<2d", b"RTZB32XXRTZB32YY")))
    outcome, path = _scrub(tmp_path, attachments=[second])
    assert outcome == "delivered", path
    assert attachments(path) == ["TimeStamps"] and _timestamps(path) == [[0.0]]
    assert b"RTZB32" not in open(path, "rb").read()


@pytest.mark.parametrize("name", FIXTURES[1:])   # the two fixtures with TimeStamps
def test_real_czi_no_longer_links_to_the_original(tmp_path, name):
    from paw import formats
    source = shared_fixture("zeiss-czi", name)
    path = str(tmp_path / name)
    shutil.copyfile(source, path)
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    handler = formats.identify(path)
    plan = handler.plan(path, options).plan
    plan.apply(path)
    assert handler.check(path, plan, options) == []
    with czifile.CziFile(source) as a, czifile.CziFile(path) as b:
        assert a.header.file_guid != b.header.file_guid
    assert _attachment_guids(path)["TimeStamps"] != _attachment_guids(source)["TimeStamps"]
    assert len(_timestamps(path)[0]) == len(_timestamps(source)[0]) and _timestamps(path)[0][0] == 0


# F3: subblocks read whole (sampled; every one with full_scan): JPEG to EOI, JPEG XR directories.
def _jpeg_with(appended=b"", exif=None, comment=None):
    def encode(index, pixels):
        from PIL import Image
        out = io.BytesIO()
        extra = {}
        if exif and index == exif[0]:
            extra["exif"] = exif[1]
        if comment and index == comment[0]:
            extra["comment"] = comment[1]
        Image.fromarray(pixels).save(out, "JPEG", quality=90, **extra)
        return out.getvalue() + appended, 1
    return encode


def _exif_artist(text):
    from PIL import Image
    exif = Image.Exif()
    exif[0x013B] = text
    return exif.tobytes()


TILES = {
    "text after EOI in every JPEG subblock": (dict(encode=_jpeg_with(b"Jane Doe after EOI")), "data after EOI"),
    "EXIF Artist in a sampled JPEG subblock": (dict(encode=_jpeg_with(exif=(1, _exif_artist("Jane Doe")))), "APP1"),
    "a COM in a sampled JPEG subblock": (dict(encode=_jpeg_with(comment=(0, b"Jane Doe"))), "COM"),
}


@pytest.mark.parametrize("case", sorted(TILES))
def test_text_in_a_sampled_subblock_is_refused(tmp_path, case):
    options, reason = TILES[case]
    outcome, text = _scrub(tmp_path, **options)
    assert outcome == "refused" and reason in text and "Jane Doe" not in text


def test_a_comment_in_an_unsampled_subblock_needs_full_scan(tmp_path):
    """The default sample reads 10 subblocks of each codec; verify.full_scan reads them all."""
    options = dict(tiles=40, tile=16, encode=_jpeg_with(comment=(1, b"Jane Doe")))
    assert _scrub(tmp_path, **options)[0] == "delivered"     # the documented limit
    outcome, text = _scrub(tmp_path, full_scan=True, **options)
    assert outcome == "refused" and "COM" in text


def _jpegxr(description=None, appended=b""):
    def encode(index, pixels):
        imagecodecs = pytest.importorskip("imagecodecs")
        data = bytearray(imagecodecs.jpegxr_encode(pixels))
        if description is not None:   # an ImageDescription entry (0x010E) added to the directory
            first = struct.unpack_from("<I", data, 4)[0]
            count = struct.unpack_from("<H", data, first)[0]
            text = description.encode() + b"\0"
            entries = [data[first + 2 + 12 * i:first + 14 + 12 * i] for i in range(count)]
            entries.append(struct.pack("<HHII", 0x010E, 2, len(text), len(data)))
            at = len(data)
            data += text
            directory = struct.pack("<H", len(entries)) + b"".join(sorted(entries)) + b"\0\0\0\0"
            struct.pack_into("<I", data, 4, len(data))
            data += directory
        return bytes(data) + appended, 4
    return encode


def test_plain_jpegxr_subblocks_are_delivered_with_identical_pixels(tmp_path):
    outcome, path = _scrub(tmp_path, encode=_jpegxr())
    assert outcome == "delivered", path
    assert pixels(path) == pixels(_hostile(tmp_path, encode=_jpegxr()))


@pytest.mark.parametrize("encode, reason", [(_jpegxr(description="Jane Doe"), "JPEG XR tag 0x010E"),
                                            (_jpegxr(appended=b"Jane Doe"), "outside its directory")])
def test_text_in_jpegxr_subblocks_is_refused(tmp_path, encode, reason):
    outcome, text = _scrub(tmp_path, encode=encode)
    assert outcome == "refused" and reason in text
