"""Command line: ``python -m fmlib {list,run,show,sweep,book} ...``.

    python -m fmlib list                                   the chapters and their parameters
    python -m fmlib run NAME [-p name value ...] [--force] re-run a chapter with new parameters
    python -m fmlib run NAME --help                        the chapter's parameters and rules
    python -m fmlib show NAME [-p name value ...]          a stored run as an HTML page (prints its path)
    python -m fmlib sweep NAME -p d 64,256 -p n 100,1000 [--jobs 2] [--scheduler tcp://host:8786]
                                                           one run per grid point; stored points are skipped
    python -m fmlib book [--quick]                         run every chapter, then build the HTML
"""

from __future__ import annotations

import argparse
import sys

from fmlib.book.chapters import chapter_names, find_chapter, runnable_names
from fmlib.book.params import ParameterError, read_parameters
from fmlib.book.rules import rules_for
from fmlib.book.run import ChapterError, run_chapter
from fmlib.book.show import RunNotStored, show_run


def _parameter_help(name: str) -> str:
    notebook = find_chapter(name)
    short = notebook.stem.split("_", 1)[-1] if notebook.stem[:2].isdigit() else notebook.stem
    lines = [f"{notebook.stem}: python -m fmlib run {short} -p NAME VALUE ...", "  parameters:"]
    lines += [f"    {spec.describe()}" for spec in read_parameters(notebook).values()]
    rules = rules_for(notebook.stem)
    if rules:
        lines += ["  rules between parameters:", *(f"    {rule.describe()}" for rule in rules)]
    return "\n".join(lines)


def _pairs(values: list[list[str]] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for key, value in values or []:
        if key in pairs:
            raise ParameterError(f"parameter {key} is given twice (-p {key} {pairs[key]} and -p {key} {value}); "
                                 "give it once (a sweep takes its values comma-separated: -p NAME v1,v2)")
        pairs[key] = value
    return pairs


def _split_parameters(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    """Take every ``-p NAME VALUE`` out of ``argv`` before argparse sees it.

    argparse reads a value that starts with ``-`` and is not a plain number (``-0.5,0,0.5``, a list
    with a negative first element) as an option and fails; taken out first, it is a value.
    """
    rest, pairs = [], []
    position = 0
    while position < len(argv):
        if argv[position] in ("-p", "--parameter") and position + 2 < len(argv):
            pairs.append(argv[position + 1:position + 3])
            position += 3
        else:
            rest.append(argv[position])
            position += 1
    return rest, pairs


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    0: done; 1: a chapter (or a page) failed; 2: a rejected parameter or no command; 3: ``show`` found
    no stored run with these parameters (the message gives the ``run`` command that stores it).
    """
    parser = argparse.ArgumentParser(prog="python -m fmlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="list the chapters and their parameters")
    helps = {"run": "run a chapter", "sweep": "run a chapter at every point of a grid",
             "show": "render a stored run as an HTML page"}
    for command in ("run", "show", "sweep"):
        sub = commands.add_parser(command, add_help=False, help=helps[command])
        sub.add_argument("name", nargs="?")
        sub.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
        sub.add_argument("-h", "--help", action="store_true")
        if command == "run":
            sub.add_argument("--force", action="store_true", help="run even if stored")
        else:
            sub.add_argument("--jobs", type=int, default=None,
                             help="local processes running points at once (default: one per CPU core)")
            sub.add_argument("--scheduler", help="address of an existing Dask scheduler")
    book = commands.add_parser("book", help="run every chapter with its defaults and build the HTML")
    book.add_argument("--quick", action="store_true", help="tiny parameters (for tests)")
    rest, pairs = _split_parameters(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(rest)
    if pairs and args.command not in ("run", "show", "sweep"):
        parser.error(f"-p is for run, show and sweep, not {args.command}")
    if pairs:
        args.parameter = [*(args.parameter or []), *pairs]
    if args.command is None:
        parser.print_help()
        return 2

    try:
        if args.command == "list":
            helpers = [name for name in runnable_names() if name not in chapter_names()]
            print("\n\n".join(_parameter_help(name) for name in chapter_names()))
            if helpers:
                print("\n\nHelper notebooks (one measurement each, run point by point by a sweep, not chapters):\n")
                print("\n\n".join(_parameter_help(name) for name in helpers))
        elif args.command in ("run", "show", "sweep") and (args.help or not args.name):
            print(_parameter_help(args.name) if args.name else f"usage: python -m fmlib {args.command} NAME ...")
            return 0 if args.help else 2
        elif args.command == "run":
            result = run_chapter(args.name, _pairs(args.parameter), force=args.force)
            print(f"{'ran' if result.executed else 'already stored'}: {result.path}")
        elif args.command == "show":
            print(show_run(args.name, _pairs(args.parameter)))
        elif args.command == "sweep":
            from fmlib.book.sweep import run_sweep

            done = run_sweep(args.name, _pairs(args.parameter), jobs=args.jobs, scheduler=args.scheduler)
            print(f"sweep {args.name}: {done.executed} run(s) executed, {done.skipped} already stored")
        elif args.command == "book":
            from fmlib.book.build import build_book

            print(f"book built: {build_book(quick=args.quick)}")
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RunNotStored as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
