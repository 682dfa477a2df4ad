"""Command line: parse arguments, load the config, call one module. Nothing else lives here.

Heavy modules (yaml, tifffile, numpy) are imported inside the commands that need them:
cron pays for every import on every tick.
"""

import argparse
import logging
import os
import sys

from .errors import ConfigError, ExitCode, PawError, UsageError

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(CHECKOUT, "paw.yaml")


REQUIREMENTS = {  # a module paw imports -> the requirements file that installs it
    "yaml": "requirements.txt", "tifffile": "requirements.txt", "numpy": "requirements.txt",
    "sentry_sdk": "requirements.txt", "pydicom": "requirements-dicom.txt",
    "psycopg": "requirements-postgres.txt", "PIL": "requirements-label.txt",
    "segno": "requirements-label.txt",
}


def parser():
    # The global options are accepted after the command too (`paw.py run -q`): each sub-command
    # knows them, with SUPPRESS so that leaving them out there keeps what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    p = argparse.ArgumentParser(
        prog="paw.py", description="Anonymize whole-slide images dropped into an inbox.",
        epilog="Exit status: 0 ok / nothing to do / lock held, 1 unexpected failure, "
               "2 configuration or usage error (or a missing package), 3 at least one slide "
               "quarantined, 141 the reader of the output went away.")
    _global_options(p, None)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="one pass over the inbox (the default)")
    inspect = sub.add_parser("inspect", parents=[common],
                             help="show what a slide holds and what paw would change and call it")
    inspect.add_argument("files", nargs="+", metavar="FILE")
    anonymize = sub.add_parser("anonymize", parents=[common],
                               help="anonymize files by hand (copies under a pseudonym, unless --in-place)")
    anonymize.add_argument("files", nargs="+", metavar="FILE")
    where = anonymize.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", metavar="DIR", help="write anonymized copies into DIR, named by "
                                                       "naming.template with a fresh pseudonym")
    where.add_argument("--in-place", action="store_true", help="change the given files themselves (their names are kept)")
    status = sub.add_parser("status", parents=[common],
                            help="what waits and why, what needs a person, recent runs, quarantine")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    ledger = sub.add_parser("ledger", parents=[common], help="the ledger: export it, find slides in it")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    export = ledger_sub.add_parser("export", parents=[common], help="write every row as CSV")
    export.add_argument("--csv", metavar="FILE", nargs="?", const="-", required=True,
                        help="to FILE (created 0600), or standard output when FILE is left out")
    find = ledger_sub.add_parser("find", parents=[common],
                                 help="the rows of a pseudonym, a case (number or pseudonym) or an "
                                      "original name")
    find.add_argument("text", metavar="TEXT")
    find.add_argument("--csv", action="store_true", help="as CSV rows (with the header)")
    sub.add_parser("init", parents=[common],
                   help="create the configured folders (inbox, outbox, quarantine, state)")
    sub.add_parser("demo", parents=[common],
                   help="in a demo/ folder of its own: drop a generated sample slide, run until it "
                        "is done (never touches the configured site)")
    return p


def _global_options(p, default):
    p.add_argument("--config", metavar="PATH", default=default,
                   help=f"config file (default: {DEFAULT_CONFIG})")
    p.add_argument("--dry-run", action="store_true", default=default or False,
                   help="report what would happen, change nothing")
    p.add_argument("-v", "--verbose", action="store_true", default=default or False, help="log details")
    p.add_argument("-q", "--quiet", action="store_true", default=default or False,
                   help="log only warnings and errors")


def main(argv):
    args = parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    quiet = _setup_logging(level)
    command = args.command or "run"
    try:
        from .config import load
        if command == "demo":  # its own folder and configuration, never the site's
            from .demo import demo
            return int(demo(CHECKOUT, args.config))
        config = load(args.config, DEFAULT_CONFIG)
        if config.log_file:
            _log_to_file(config, quiet)
        return int(_command(command, config, args))
    except PawError as exc:
        what = "configuration error" if isinstance(exc, ConfigError) else \
            "usage error" if isinstance(exc, UsageError) else "failed"
        print(f"paw: {what}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `paw.py status --json | head`: the reader has what it wanted
        _silence_stdout()
        return int(ExitCode.CLOSED_PIPE)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "paw":
            print(f"paw: {missing_package(exc.name)}", file=sys.stderr)
            return int(ExitCode.USAGE)
        return _unexpected(exc)
    except Exception as exc:
        return _unexpected(exc)


def _unexpected(exc):
    """The one-line message first; the traceback only with -v."""
    logging.getLogger("paw").debug("traceback", exc_info=True)
    print(f"paw: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return int(ExitCode.FAILED)


def missing_package(module):
    """What to do about a package paw needs and cannot import: the exact command."""
    top = module.split(".")[0]
    requirements = os.path.join(CHECKOUT, REQUIREMENTS.get(top, "requirements.txt"))
    return (f"the Python package that provides '{top}' is not installed for {sys.executable}; "
            f"install it with: {sys.executable} -m pip install -r {requirements}")


def _silence_stdout():
    """Point standard output at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class _LibraryFilter(logging.Filter):
    """paw's own records pass; other libraries' (pydicom, tifffile, Pillow, and Python warnings,
    which carry the venv's paths) are not for cron's mail: their warnings and errors become
    debug records (shown with -v, in the log file at debug level), the rest is dropped."""

    def __init__(self, level):
        super().__init__()
        self.level = level

    def filter(self, record):
        if record.name == "paw" or record.name.startswith("paw."):
            return True
        if record.levelno < logging.WARNING:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.level <= logging.DEBUG


def _setup_logging(level):
    """Standard error for paw's lines; library warnings only at debug level."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "paw", False):  # a previous main() in this process (tests)
            root.removeHandler(handler)
            handler.close()
    quiet = _LibraryFilter(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.paw = True
    handler.setFormatter(logging.Formatter("%(asctime)s paw %(levelname)s: %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(quiet)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn(...) of libraries: a record of "py.warnings"
    return quiet


def _command(command, config, args):
    if command == "run":
        return _run(config, args.dry_run)
    if command == "inspect":
        from .tools import inspect
        return inspect(config, args.files)
    if command == "anonymize":
        from .tools import anonymize
        return anonymize(config, args.files, args.output, args.dry_run)
    if command == "status":
        from .status import status
        return status(config, args.json)
    if command == "ledger":
        if args.ledger_command == "find":
            from .tools import find_in_ledger
            return find_in_ledger(config, args.text, args.csv)
        from .tools import export_ledger
        return export_ledger(config, args.csv)
    from .tools import init
    return init(config)


def _run(config, dry_run):
    from .job import run
    if not config.sentry:
        return run(config, dry_run=dry_run)
    from .monitoring import Monitor  # sentry-sdk is imported only here
    monitor = Monitor(config.sentry)
    try:
        return run(config, dry_run=dry_run, monitor=monitor)
    finally:
        monitor.close()


def _log_to_file(config, quiet):
    from logging.handlers import RotatingFileHandler

    class PrivateFileHandler(RotatingFileHandler):
        """The log names original files: created 0600 whatever the umask (cron's is 022),
        the rotated ones too."""

        def _open(self):
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            return open(fd, "a", encoding=self.encoding, errors=self.errors)

    handler = PrivateFileHandler(config.log_file, maxBytes=config.log_max_bytes,
                                 backupCount=config.log_backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s paw[%(process)d] %(levelname)s: %(message)s"))
    handler.addFilter(quiet)
    handler.paw = True
    logging.getLogger().addHandler(handler)
