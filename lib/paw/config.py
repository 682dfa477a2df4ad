"""Loading and validating paw.yaml: every mistake is one message naming the key and the fix.

Relative paths are resolved against the folder of the config file, so the same paw.yaml works
from cron, systemd and Task Scheduler whatever their working directory.
"""

import difflib
import os
import re
from dataclasses import dataclass, field

from .errors import ConfigError
from .naming import PAW_FIELDS, template_fields


DEFAULT_IGNORE = [
    "@eaDir", "#recycle", "#snapshot", "@tmp", "@SynoEAStream", "@SynoResource",
    ".DS_Store", "._*", ".*", "~*", "*.tmp", "*.part", "*.partial", "*.crdownload",
    "Thumbs.db", "desktop.ini",
]

# The embedded default: what paw.yaml in the checkout says, used when that file is absent.
DEFAULTS = {
    "inbox": "inbox",
    "outbox": "outbox",
    "quarantine": "quarantine",
    "state_dir": "state",
    "outbox_layout": "mirror",
    "outbox_mode": "",
    "ledger": {"csv": "ledger.csv", "sha256": False,
               "postgres": {"dsn": "", "claim_timeout_seconds": 3600}},
    "stability": {"min_age_seconds": 120, "unchanged_runs": 2},
    "ignore": DEFAULT_IGNORE,
    "naming": {"pattern": "", "case": "", "template": "{pseudonym}", "prefix": "PAW"},
    "anonymize": {"keep_macro": False, "label": "destroy", "label_text": "",
                  "time_limit_seconds": 600},
    "verify": {"full_scan": False},
    "log": {"file": "", "max_bytes": 10 << 20, "backups": 5},
    "report": {"html": "", "mode": "0640"},
    "sentry": {"enabled": False, "dsn": "", "monitor_slug": "paw", "schedule": "*/5 * * * *",
               "timezone": "UTC", "site": "paw"},
}

# paw.yaml is a page of settings: a file or structure far larger is a mistake or an attack
# (a YAML alias "bomb" of a few lines expands to gigabytes when walked).
MAX_CONFIG_BYTES = 256 << 10
MAX_ALIASES = 50
MAX_VALUES = 10_000
MAX_IGNORE = 1000


def _bounded_loader(yaml):
    """yaml.SafeLoader that refuses more than MAX_ALIASES aliases."""

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise ConfigError(f"more than {MAX_ALIASES} YAML aliases (*name); write the "
                                      "values out")
            return super().compose_node(parent, index)

    return Loader


def _check_size(value):
    """Refuse a structure with more than MAX_VALUES values, counting every path to a value
    (what walking it costs), without expanding it."""
    budget = [MAX_VALUES]

    def walk(node, depth):
        budget[0] -= 1
        if budget[0] < 0 or depth > 20:
            raise ConfigError(f"the configuration holds more than {MAX_VALUES} values or is "
                              "nested too deeply")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            walk(child, depth + 1)

    walk(value, 0)


def _shown(value, limit=60):
    """A value for a message: its repr, cut short (a message must stay one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
LAYOUTS = ("mirror", "flat")
# What outbox_mode may give: owner read (paw reads the slide back for ledger.sha256) and write,
# group and other read. Never execute, never write for anyone but paw's user.
OUTBOX_MODE_BITS = 0o644


@dataclass
class Config:
    path: str                 # the file it came from ("(embedded default)" if none)
    base: str                 # folder relative paths are resolved against
    inbox: str
    outbox: str
    quarantine: str
    state_dir: str
    ledger_csv: str
    ledger_sha256: bool
    min_age_seconds: float
    unchanged_runs: int
    ignore: list
    naming_pattern: object    # compiled regex or None
    naming_template: str
    naming_prefix: str
    keep_macro: bool
    full_scan: bool
    naming_case: str = ""     # the pattern group naming the case; "" for none
    outbox_layout: str = "mirror"
    outbox_mode: int = None   # None: from the folder a slide is delivered into
    replace_label: bool = False
    label_text: str = ""
    time_limit_seconds: float = 600.0
    postgres_dsn: str = ""
    claim_timeout_seconds: float = 3600.0
    log_file: str = ""
    log_max_bytes: int = 10 << 20
    log_backups: int = 5
    report_html: str = ""     # the status page, "" for none
    report_mode: int = 0o640
    sentry: dict = field(default_factory=dict)   # empty when Sentry is off

    @property
    def staging(self):
        return os.path.join(self.state_dir, "staging")

    def require_folders(self):
        """The shares must exist: creating a missing one would hide an unmounted share."""
        for key in ("inbox", "outbox", "quarantine"):
            folder = getattr(self, key)
            if not os.path.isdir(folder):
                raise ConfigError(
                    f"{key}: folder {folder} does not exist; create it, fix '{key}' in "
                    f"{self.path}, or run 'paw.py init' for the default layout")
        parent = os.path.dirname(self.state_dir.rstrip(os.sep)) or "."
        if not os.path.isdir(parent):
            raise ConfigError(f"state_dir: parent folder {parent} does not exist")


def load(path, default_path):
    """Read and validate the config; `path` None means the default beside paw.py."""
    import yaml

    chosen = path or default_path
    if os.path.exists(chosen):
        try:
            with open(chosen, "rb") as fh:
                text = fh.read(MAX_CONFIG_BYTES + 1)
            if len(text) > MAX_CONFIG_BYTES:
                raise ConfigError(f"{chosen}: larger than {MAX_CONFIG_BYTES >> 10} KiB; paw.yaml "
                                  "is a page of settings")
            raw = yaml.load(text.decode("utf-8"), Loader=_bounded_loader(yaml)) or {}
            _check_size(raw)
        except UnicodeDecodeError:
            raise ConfigError(f"{chosen}: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{chosen}: not valid YAML{where}") from None
        except OSError as exc:
            raise ConfigError(f"{chosen}: cannot read ({exc.strerror})") from None
        shown = chosen
    elif path:
        raise ConfigError(f"--config: {path} does not exist")
    else:
        raw, shown = {}, "(embedded default)"
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: the top level must be a mapping of keys to values")
    merged = _merge(DEFAULTS, raw, "")
    return _build(merged, shown, os.path.dirname(os.path.abspath(chosen)))


def embedded(base):
    """The embedded default configuration with its folders under `base` (the demo's own)."""
    return _build(_merge(DEFAULTS, {}, ""), "(embedded default)", base)


def _merge(defaults, given, prefix):
    out = {}
    for key, value in given.items():
        if key not in defaults:
            hint = difflib.get_close_matches(str(key)[:100], defaults, n=1)
            extra = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            shown = key if isinstance(key, str) and len(key) <= 60 else _shown(key)
            raise ConfigError(f"unknown key '{prefix}{shown}'{extra}; remove it or fix its spelling")
    for key, default in defaults.items():
        value = given.get(key, default)
        if isinstance(default, dict):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"'{prefix}{key}' must be a mapping with keys "
                                  f"{', '.join(default)}")
            value = _merge(default, value, f"{prefix}{key}.")
        out[key] = value
    return out


def _expect(value, kind, key, what):
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"'{key}' must be {what}, got {_shown(value)}")
    return value


def _build(c, shown, base):
    def folder(key, value):
        _expect(value, str, key, "a folder path")
        if not value.strip():
            raise ConfigError(f"'{key}' is empty; give a folder path")
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    inbox = folder("inbox", c["inbox"])
    outbox = folder("outbox", c["outbox"])
    quarantine = folder("quarantine", c["quarantine"])
    state_dir = folder("state_dir", c["state_dir"])
    ledger = folder("ledger.csv", c["ledger"]["csv"])
    log_file = folder("log.file", c["log"]["file"]) if c["log"]["file"] else ""
    _check_places({"inbox": inbox, "outbox": outbox, "quarantine": quarantine},
                  {"state_dir": state_dir, "ledger.csv": ledger,
                   **({"log.file": log_file} if log_file else {})})
    report_html, report_mode = _report(c["report"], folder, inbox, outbox)

    min_age = _expect(c["stability"]["min_age_seconds"], (int, float),
                      "stability.min_age_seconds", "a number of seconds")
    runs = _expect(c["stability"]["unchanged_runs"], int, "stability.unchanged_runs",
                   "a whole number")
    if min_age < 0 or runs < 1:
        raise ConfigError("stability: min_age_seconds must be >= 0 and unchanged_runs >= 1")
    ignore = _expect(c["ignore"], list, "ignore", "a list of file-name patterns")
    if len(ignore) > MAX_IGNORE:
        raise ConfigError(f"'ignore' lists {len(ignore)} patterns; at most {MAX_IGNORE}")
    for item in ignore:
        _expect(item, str, "ignore", "a list of file-name patterns (strings)")

    pattern_text = _expect(c["naming"]["pattern"] or "", str, "naming.pattern", "a regular expression")
    try:
        pattern = re.compile(pattern_text) if pattern_text else None
    except re.error as exc:
        raise ConfigError(f"'naming.pattern' is not a valid regular expression: {exc}") from None
    groups = set(pattern.groupindex) if pattern else set()
    taken = groups & set(PAW_FIELDS)
    if taken:
        raise ConfigError(f"'naming.pattern' has a group named {sorted(taken)[0]!r}, which is paw's own "
                          "field; give the group another name")
    case_group = _case(c["naming"]["case"], groups)
    template = _expect(c["naming"]["template"], str, "naming.template", "a text template")
    used = set(_fields("naming.template", template, groups, case_group))
    if not used & set(PAW_FIELDS):
        raise ConfigError("'naming.template' must contain {pseudonym}" + (" or {case}" if case_group else ""))
    replace_label, label_text = _label(c["anonymize"], groups, case_group)
    layout = c["outbox_layout"]
    if layout not in LAYOUTS:
        raise ConfigError(f"'outbox_layout' must be mirror or flat, got {_shown(layout)}")
    outbox_mode = _outbox_mode(c["outbox_mode"])
    prefix = _expect(c["naming"]["prefix"], str, "naming.prefix", "a short text")
    if not re.fullmatch(r"[A-Za-z0-9_-]{0,16}", prefix):
        raise ConfigError("'naming.prefix' may only hold up to 16 letters, digits, '-' or '_'")

    log = c["log"]
    max_bytes = _expect(log["max_bytes"], int, "log.max_bytes", "a whole number of bytes")
    backups = _expect(log["backups"], int, "log.backups", "a whole number")
    sentry = _sentry(c["sentry"])
    postgres = c["ledger"]["postgres"]
    dsn = _expect(postgres["dsn"] or "", str, "ledger.postgres.dsn", "a PostgreSQL connection string")
    timeout = _expect(postgres["claim_timeout_seconds"], (int, float),
                      "ledger.postgres.claim_timeout_seconds", "a number of seconds")
    if dsn:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError("ledger.postgres.dsn is set but psycopg is not installed: "
                              "pip install -r requirements-postgres.txt") from None

    return Config(
        postgres_dsn=dsn, claim_timeout_seconds=float(timeout),
        log_file=log_file, log_max_bytes=max_bytes, log_backups=backups, sentry=sentry,
        report_html=report_html, report_mode=report_mode,
        path=shown, base=base, inbox=inbox, outbox=outbox, quarantine=quarantine,
        state_dir=state_dir, ledger_csv=ledger,
        ledger_sha256=_expect(c["ledger"]["sha256"], bool, "ledger.sha256", "true or false"),
        min_age_seconds=float(min_age), unchanged_runs=runs, ignore=list(ignore),
        naming_pattern=pattern, naming_template=template, naming_prefix=prefix, naming_case=case_group,
        outbox_layout=layout, outbox_mode=outbox_mode,
        keep_macro=_expect(c["anonymize"]["keep_macro"], bool, "anonymize.keep_macro", "true or false"),
        replace_label=replace_label, label_text=label_text,
        time_limit_seconds=float(_expect(c["anonymize"]["time_limit_seconds"], (int, float),
                                         "anonymize.time_limit_seconds", "a number of seconds")),
        full_scan=_expect(c["verify"]["full_scan"], bool, "verify.full_scan", "true or false"),
    )


def _check_places(shares, private):
    """The shares must be distinct and none inside another; paw's private files (state,
    ledger, log: they hold original names) must not be inside a share, nor a share inside the
    state folder; no folder may be `/`. Compared as the file system sees them: symbolic links
    resolved and, where the folders exist, by device and inode (a bind mount or a link to the
    inbox is the inbox)."""
    for key, path in {**shares, "state_dir": private["state_dir"]}.items():
        if os.path.realpath(path) == os.path.realpath(os.sep):
            raise ConfigError(f"'{key}' is the root folder /; give paw a folder of its own")
    for a, pa in shares.items():
        for b, pb in shares.items():
            if a != b and inside(pa, pb):
                raise ConfigError(f"'{a}' ({pa}) must not be the same as or inside '{b}' ({pb})")
    for key, path in private.items():
        for share, pshare in shares.items():
            if inside(path, pshare):
                raise ConfigError(f"'{key}' must not be inside '{share}': it holds original "
                                  "file names (the re-identification key) and must stay private to paw")
    for share, pshare in shares.items():
        if inside(pshare, private["state_dir"]):
            raise ConfigError(f"'{share}' ({pshare}) must not be inside 'state_dir' "
                              f"({private['state_dir']}): paw's private folder is not a share")


def inside(path, folder):
    """Whether `path` is `folder` or below it, as the file system sees them."""
    real, real_folder = os.path.realpath(path), os.path.realpath(folder)
    if real == real_folder or real.startswith(real_folder.rstrip(os.sep) + os.sep):
        return True
    try:
        target = os.stat(real_folder)
    except OSError:
        return False
    while True:
        try:
            here = os.stat(real)
        except OSError:
            here = None
        if here is not None and (here.st_dev, here.st_ino) == (target.st_dev, target.st_ino):
            return True
        parent = os.path.dirname(real)
        if parent == real:
            return False
        real = parent


def _label(c, groups):
    """anonymize.label and the text printed on a drawn label, whose fields are the pseudonym and
    naming.pattern's groups only: nothing else of the original name may reach the label."""
def _case(value, groups):
    """naming.case: the pattern group whose value identifies the case (e.g. the specimen)."""
    group = _expect(value or "", str, "naming.case", "the name of a group of naming.pattern")
    if group and group not in groups:
        raise ConfigError(f"'naming.case' is {_shown(group)}, which is not a named group of naming.pattern")
    return group


def _fields(key, text, groups, case_group):
    """The fields of a template or label text, each one paw fills in or a kept group. The case
    group itself never: it is the identifier the case pseudonym replaces."""
    used = template_fields(text)
    for name in used:
        if case_group and name == case_group:
            raise ConfigError(f"'{key}' uses {{{name}}}, the case group (naming.case) that paw removes: "
                              "use {case}, its pseudonym")
        if name == "case" and not case_group:
            raise ConfigError(f"'{key}' uses {{case}} but naming.case is not set; set it to the "
                              "group of naming.pattern that identifies the case")
        if name not in groups and name not in PAW_FIELDS:
            raise ConfigError(f"'{key}' uses {{{name}}}, which is not {{pseudonym}}, {{case}} or a named "
                              "group of naming.pattern")
    return used


def _outbox_mode(value, key="outbox_mode", what="delivered files are"):
    """outbox_mode: a quoted octal mode such as '0640', or empty for the folder's own read bits."""
    if value in ("", None):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value.strip()):
        raise ConfigError(f"'{key}' must be a quoted octal mode like '0640', got {_shown(value)}")
    mode = int(value, 8)
    if mode & ~OUTBOX_MODE_BITS or not mode & 0o400:
        raise ConfigError(f"'{key}' {_shown(value)} is not allowed: {what} readable by their owner "
                          "and never writable or executable by anyone else (at most '0644')")
    return mode


def _report(c, folder, inbox, outbox):
    """report.html and report.mode: the status page for technicians, or ("", mode) for none.
    It names original files, so never inside the outbox (researchers read it); and never
    inside the inbox, where it would be taken for a slide."""
    path = folder("report.html", c["html"]) if c["html"] else ""
    mode = _outbox_mode(c["mode"], "report.mode", "the status page is") or 0o640
    if path:
        if os.path.basename(c["html"].rstrip("/")) in ("", ".", "..") or os.path.isdir(path):
            raise ConfigError(f"'report.html' must name a file (e.g. /volume1/lab/paw-status.html), not "
                              f"the folder {path}")
        for key, share in (("outbox", outbox), ("inbox", inbox)):
            if inside(path, share) or inside(os.path.dirname(path), share):
                why = "the page names original files and researchers read the outbox" if key == "outbox" \
                    else "paw would take the page for a slide"
                raise ConfigError(f"'report.html' must not be inside '{key}': {why}; put it in a folder "
                                  "only the lab's staff can read")
    return path, mode


def _label(c, groups, case_group):
    """anonymize.label and the text printed on a drawn label, whose fields are the pseudonyms and
    naming.pattern's groups (never the case group): nothing else of the original name may
    reach the label."""
    mode = c["label"]
    if mode not in ("destroy", "replace"):
        raise ConfigError(f"'anonymize.label' must be destroy or replace, got {_shown(mode)}")
    text = _expect(c["label_text"] or "", str, "anonymize.label_text", "a text template")
    _fields("anonymize.label_text", text, groups, case_group)
    return mode == "replace", text


def _sentry(c):
    """Sentry settings, or {} when off. SENTRY_DSN is read only when the config enables Sentry."""
    if not _expect(c["enabled"], bool, "sentry.enabled", "true or false"):
        return {}
    dsn = _expect(c["dsn"] or "", str, "sentry.dsn", "a Sentry DSN") or os.environ.get("SENTRY_DSN", "")
    if not dsn:
        raise ConfigError("sentry.enabled is true but there is no DSN: set 'sentry.dsn' or the "
                          "SENTRY_DSN environment variable")
    out = {"dsn": dsn}
    for key in ("monitor_slug", "schedule", "timezone", "site"):
        out[key] = _expect(c[key], str, f"sentry.{key}", "a text")
    if len(out["schedule"].split()) != 5:
        raise ConfigError("'sentry.schedule' must be a crontab line with 5 fields, like '*/5 * * * *'")
    return out
