"""The `evolver` command: one dispatcher over the subcommands each package registers.

Every package that has commands names a `register(subparsers) -> {command: handler}` function
under the `evolver.commands` entry point group (pyproject.toml): the campaigns (evolver), the
detector (yolo), export (deploy), the server (api). The dispatcher discovers them, so it imports
nothing above it. Handlers parse their flags into typed configs and make one call each.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from pydantic import ValidationError

ENTRY_POINT_GROUP = "evolver.commands"
ORDER = ("campaigns", "detector", "deploy", "api")  # how `evolver --help` lists them

DESCRIPTION = """\
Evolver evolves YOLO training hyperparameters with YOLOv5's genetic algorithm.

Evolution campaigns (local Ray + SQLite by default; see `evolver run --help`):
  evolver run campaign.yaml            run a campaign to the end (Ctrl-C: `evolver resume ID` later)
  evolver status [ID] | cancel ID | resume ID | best ID | import-csv ID evolve.csv | create spec.yaml

The detector itself:
{detector}
Deployment and the server:
  evolver export --weights best.pt --include onnx,wts   ONNX (checked with onnxruntime), TensorRT, .wts
  evolver serve                         REST API and dashboard on http://127.0.0.1:8000/
"""

Handler = Callable[[argparse.Namespace], int]


def _registrations() -> list[Callable[[argparse._SubParsersAction], dict[str, Handler]]]:
    found = sorted(entry_points(group=ENTRY_POINT_GROUP),
                   key=lambda ep: (ORDER.index(ep.name) if ep.name in ORDER else len(ORDER), ep.name))
    if not found:
        raise RuntimeError(f"no '{ENTRY_POINT_GROUP}' entry points: is evolver installed (pip install -e .)?")
    return [ep.load() for ep in found]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The `evolver` parser and command -> handler, from every registered package."""
    from yolo.cli import EXAMPLES

    parser = argparse.ArgumentParser(prog="evolver", description=DESCRIPTION.format(detector=EXAMPLES),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for register in _registrations():
        handlers.update(register(sub))
    return parser, handlers


def fail(command: str, message: str) -> int:
    print(f"evolver {command}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for chatty in ("alembic", "httpx"):  # migrations and the client's request lines: not news to users
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe is handled below, not at the interpreter's exit
        return code
    except KeyboardInterrupt:  # Ctrl-C outside a coordinator's loop (which stops in order by itself)
        print(f"evolver {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `evolver best 1 | head`: the reader has what it wanted
        _silence_stdout()
        return 141
    except ValidationError as err:  # before ValueError: pydantic's errors are ValueErrors too
        from evolver.campaign import validation_error_text

        _debug_traceback(args)
        return fail(args.command, validation_error_text(err, "invalid campaign"))
    except KeyError as err:  # an unknown campaign id
        _debug_traceback(args)
        return fail(args.command, str(err.args[0]) if err.args else str(err))
    except (ValueError, OSError, RuntimeError) as err:  # OSError: a file that cannot be read or written
        _debug_traceback(args)
        return fail(args.command, str(err))


def _debug_traceback(args: argparse.Namespace) -> None:
    """With --verbose, a refusal also logs where it came from (for bug reports)."""
    if args.verbose:
        logging.getLogger("evolver").debug("the error's traceback:", exc_info=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still buffered for a
    closed pipe does not print a second BrokenPipeError on the way out."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
