"""The ``cpnas`` command line: ``cpnas {search,train,profile,config,deploy} …``.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).

Error style, shared by every subcommand: a :class:`~cpnas.errors.CpnasError`
(bad path, corrupt genotype file, unknown scale, non-finite loss, full disk…)
prints one line ``cpnas <cmd>: error: <message>`` on stderr and exits with 2;
argparse's own usage errors exit with 2 as well; Ctrl-C exits with 130; a reader that closed
the pipe (``cpnas config | head``) ends the command silently with 141. Unknown values of
``CPNAS_LOADER``, ``CPNAS_WORKERS`` and ``CPNAS_FORMS`` are refused before any command runs. Under torchrun
(:mod:`cpnas.distributed`) only rank 0 logs below warnings, and a process whose peer died
prints one line ``cpnas <cmd>: error: another process of this run stopped …`` (exit 1)
instead of a traceback; the run resumes with ``--resume``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from cpnas import __version__
from cpnas.errors import EXIT_USER_ERROR, CpnasError

SUBCOMMANDS = ("config", "search", "train", "eval", "profile", "deploy")
EXIT_PEER_FAILURE = 1
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a command killed by a closed pipe exits in a shell


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpnas",
        description="CP-NAS (IJCAI 2020) reproduction: Child-Parent search of 1-bit CNNs, "
                    "training with the CP loss, and efficiency accounting.",
        epilog="Run 'cpnas <command> --help' for the options of one command.")
    parser.add_argument("--version", action="version", version=f"cpnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only, no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"cpnas.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cpnas.cli.{name}":
                raise
            continue  # subcommand not implemented in this version
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from cpnas import distributed

    other_rank = distributed.launched() and os.environ.get("RANK", "0") != "0"  # rank 0 logs for the run
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet or other_rank else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.quiet:
        os.environ["CPNAS_PROGRESS"] = "0"
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    import signal

    def _terminate(signum, frame):  # SIGTERM ends a run as Ctrl-C does: a message, a resumable state
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (e.g. called from a notebook's worker): keep the default
        previous = None
    try:
        from cpnas.cli.common import check_environment

        check_environment()  # CPNAS_LOADER / CPNAS_WORKERS / CPNAS_FORMS: refused at start-up by every command
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe (cpnas config | head) is met here, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except CpnasError as exc:
        print(f"cpnas {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"cpnas {args.command}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except Exception as exc:
        if not distributed.peer_failure(exc):
            raise
        print(f"cpnas {args.command}: error: another process of this run stopped ({distributed.brief(exc)}); "
              f"rerun the same command with --resume to continue from the last checkpoint", file=sys.stderr)
        return EXIT_PEER_FAILURE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """The reader of stdout is gone (``| head``): point stdout at /dev/null so the exit flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def entry_point() -> None:
    """Console-script entry point (``cpnas`` in pyproject.toml)."""
    sys.exit(main())
