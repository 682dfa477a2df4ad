"""The shape of the code: who may import whom, one exception family, a versioned journal."""

import ast
import json
import os

import pytest

from conftest import ROOT

PAW = os.path.join(ROOT, "lib", "paw")
PIPELINE = {"fsops", "slide", "job", "ledger", "inbox", "verify", "tools", "status", "cli",
            "config", "naming", "demo", "monitoring", "journal"}
# What the rest of paw may use of paw.formats: the interface, and the tag names and directory
# packer the demo's sample slide is written with.
FORMATS_PUBLIC = {"paw.formats", "paw.formats.base", "paw.formats.tifftags", "paw.formats.tiffwrite"}


def _modules():
    for root, _, files in os.walk(PAW):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path, os.path.dirname(PAW))[:-3].replace(os.sep, ".")
                yield dotted.removesuffix(".__init__"), path


def _imports(dotted, path):
    """Every paw module `path` imports, as dotted names (relative imports resolved)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    package = dotted if path.endswith("__init__.py") else dotted.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("paw"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if not module.startswith("paw"):
                continue
            found.add(module)
            for alias in node.names:  # `from . import fsops` imports a module
                if os.path.exists(os.path.join(os.path.dirname(PAW), *f"{module}.{alias.name}".split("."))
                                  + ".py") or os.path.isdir(os.path.join(os.path.dirname(PAW),
                                                                          *f"{module}.{alias.name}".split("."))):
                    found.add(f"{module}.{alias.name}")
    return found


def test_formats_never_import_the_pipeline():
    offenders = []
    for dotted, path in _modules():
        if dotted.startswith("paw.formats"):
            for module in _imports(dotted, path):
                if module.count(".") and module.split(".")[1] in PIPELINE:
                    offenders.append(f"{dotted} imports {module}")
    assert offenders == []


def test_nothing_outside_formats_imports_a_format_module():
    offenders = []
    for dotted, path in _modules():
        if not dotted.startswith("paw.formats"):
            for module in _imports(dotted, path):
                if module.startswith("paw.formats") and module not in FORMATS_PUBLIC:
                    offenders.append(f"{dotted} imports {module}")
    assert offenders == []


def test_ledger_backends_do_not_import_each_other():
    imports = dict((d, _imports(d, p)) for d, p in _modules() if d.startswith("paw.ledger."))
    assert "paw.ledger.postgres" not in imports["paw.ledger.csvfile"]
    assert "paw.ledger.csvfile" not in imports["paw.ledger.postgres"]


def test_every_exception_paw_defines_is_a_paw_error():
    """One family (errors.py): the CLI maps each to its exit code."""
    strays = []
    for dotted, path in _modules():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and dotted != "paw.errors":
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & {"Exception", "ValueError", "RuntimeError", "OSError"}:
                    strays.append(f"{dotted}.{node.name}")
    assert strays == []


def test_exit_codes_follow_the_exception():
    from paw.errors import ConfigError, ExitCode, LedgerUnavailable, Unsupported, VerificationFailed
    assert ConfigError("x").exit_code == ExitCode.USAGE == 2
    assert LedgerUnavailable("x").exit_code == ExitCode.FAILED == 1
    assert Unsupported("x").exit_code == VerificationFailed("x").exit_code == ExitCode.QUARANTINED == 3


def test_journal_round_trip_and_versions(tmp_path):
    from paw import journal
    from paw.journal import Journal, State, Status
    record = Journal(job="j1", original="a/S1.svs", members=["a/S1.svs"], started=1.0)
    record.save(tmp_path)
    record.update(tmp_path, state=State.DELIVERING, status=Status.ANONYMIZED, names=["P.svs"])
    again = journal.load(tmp_path)
    assert again == record and again.state is State.DELIVERING and again.version == journal.VERSION
    with pytest.raises(AttributeError):
        record.update(tmp_path, stat="typo")
    # Written by the paw before versioned journals: the same fields as a plain dict.
    old = {"job": "j0", "state": "recording", "original": "S.mrxs", "members": ["S.mrxs", "S"],
           "started": 2.0, "status": "quarantined", "reason": "r", "names": ["S.mrxs", "S"]}
    (tmp_path / journal.FILE).write_text(json.dumps(old))
    upgraded = journal.load(tmp_path)
    assert upgraded.kind == "mrxs" and upgraded.state is State.RECORDING
    assert upgraded.status is Status.QUARANTINED
    (tmp_path / journal.FILE).write_text(json.dumps({**old, "version": journal.VERSION + 1}))
    with pytest.raises(ValueError, match="newer"):
        journal.load(tmp_path)


def test_a_plan_serialises_itself_for_every_format(tmp_path):
    """What slide.py relies on after a crash: the journaled plan comes back equal."""
    from paw import formats
    from synth import aperio, isyntax, mrxs
    slides = {"aperio": str(tmp_path / "a.svs"), "isyntax": str(tmp_path / "b.isyntax"),
              "mrxs": str(tmp_path / "c.mrxs")}
    aperio.write(slides["aperio"])
    isyntax.write(slides["isyntax"])
    mrxs.write(slides["mrxs"])
    options = type("Options", (), {"keep_macro": False, "full_scan": False})()
    for name, path in slides.items():
        handler = formats.identify(path)
        assert handler.name == name
        plan = handler.plan(path, options).plan
        data = json.loads(json.dumps(plan.to_json()))
        assert json.loads(json.dumps(formats.plan_from_json(name, data).to_json())) == data
