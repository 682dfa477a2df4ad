"""Command line: parse arguments, load the config, call one module. Nothing else lives here.

Heavy modules (yaml, tifffile, numpy) are imported inside the commands that need them:
cron pays for every import on every tick.
"""

import argparse
import logging
import os
import sys

from .errors import ExitCode, PawError

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(CHECKOUT, "paw.yaml")


def parser():
    p = argparse.ArgumentParser(
        prog="paw.py", description="Anonymize whole-slide images dropped into an inbox.",
        epilog="Exit status: 0 ok / nothing to do / lock held, 1 unexpected failure, "
               "2 configuration or usage error, 3 at least one slide quarantined.")
    p.add_argument("--config", metavar="PATH", help=f"config file (default: {DEFAULT_CONFIG})")
    p.add_argument("--dry-run", action="store_true", help="report what would happen, change nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    p.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="one pass over the inbox (the default)")
    inspect = sub.add_parser("inspect", help="show what a slide holds and what paw would change")
    inspect.add_argument("files", nargs="+", metavar="FILE")
    anonymize = sub.add_parser("anonymize", help="anonymize files by hand (copies unless --in-place)")
    anonymize.add_argument("files", nargs="+", metavar="FILE")
    where = anonymize.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", metavar="DIR", help="write anonymized copies into DIR")
    where.add_argument("--in-place", action="store_true", help="change the given files themselves")
    status = sub.add_parser("status", help="what is waiting, recent runs, quarantine")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    ledger = sub.add_parser("ledger", help="the ledger: export it")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    export = ledger_sub.add_parser("export", help="write every row as CSV")
    export.add_argument("--csv", metavar="FILE", nargs="?", const="-", required=True,
                        help="to FILE (created 0600), or standard output when FILE is left out")
    sub.add_parser("init", help="create the configured folders (inbox, outbox, quarantine, state)")
    sub.add_parser("demo", help="in a demo/ folder of its own: drop a generated sample slide, run "
                                "until it is done (never touches the configured site)")
    return p


def main(argv):
    args = parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s paw %(levelname)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)
    command = args.command or "run"
    from .config import load

    try:
        if command == "demo":  # its own folder and configuration, never the site's
            from .demo import demo
            return int(demo(CHECKOUT, args.config))
        config = load(args.config, DEFAULT_CONFIG)
        if config.log_file:
            _log_to_file(config)
        return int(_command(command, config, args))
    except PawError as exc:
        what = "configuration error" if exc.exit_code == ExitCode.USAGE else "failed"
        print(f"paw: {what}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # the one-line message first; the traceback only with -v
        logging.getLogger("paw").debug("traceback", exc_info=True)
        print(f"paw: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return int(ExitCode.FAILED)
    return int(ExitCode.USAGE)


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


def _log_to_file(config):
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
    logging.getLogger("paw").addHandler(handler)
