"""`python -m coursekit …`: the command line for students and instructors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coursekit import build, data, doctor

def data_command(arguments) -> int:
    if arguments.action == "list":
        for asset, location in data.status():
            print(f"{'✓' if location else '✗'} {asset.name:16} {location or 'not downloaded: ' + asset.url}")
        print(f"cache directory: {data.cache_dir()}")
        return 0
    names = arguments.names or sorted(data.ASSETS)
    for name in names:
        try:
            print(f"{name}: {data.path(name)}")
        except data.DataError as error:
            print(f"✗ {error}", file=sys.stderr)
            return 1
    return 0


def build_command(arguments) -> int:
    root = Path(arguments.root)
    try:
        if arguments.execute:
            for name in build.execute_solutions(root, arguments.execute):
                print(f"executed solutions/{name}")
        stale = build.build(root, check=arguments.check)
    except build.BuildError as error:
        print(f"✗ {error}", file=sys.stderr)
        return 1
    if arguments.check:
        for name in stale:
            print(f"✗ {name} is stale: run  python -m coursekit build", file=sys.stderr)
        if not stale:
            print("✓ notebooks/ matches solutions/")
        return 1 if stale else 0
    print(f"wrote {len(stale)} notebook(s): {', '.join(stale) or 'all up to date'}")
    return 0


def gpt2_command(arguments) -> int:
    from coursekit import gpt2

    try:
        for name, location in gpt2.fetch_gpt2().items():
            print(f"{name}: {location}")
    except Exception as error:
        print(f"✗ {error}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_parser = commands.add_parser("data", help="download course data into the cache, or list what is there")
    data_parser.add_argument("action", choices=["fetch", "list"])
    data_parser.add_argument("names", nargs="*", help=f"assets to fetch (default: all): {', '.join(sorted(data.ASSETS))}")
    data_parser.set_defaults(run=data_command)

    build_parser = commands.add_parser("build", help="generate notebooks/ from solutions/")
    build_parser.add_argument("--check", action="store_true", help="only report stale notebooks (exit 1 if any)")
    build_parser.add_argument("--execute", nargs="+", metavar="NOTEBOOK",
                              help="first run these solution notebooks and store the outputs nbval compares")
    build_parser.add_argument("--root", default=".", help="the course repository (default: the current directory)")
    build_parser.set_defaults(run=build_command)
    doctor_parser = commands.add_parser("doctor", help="is this machine ready for the course? (with a fix per problem)")
    doctor_parser.set_defaults(run=lambda arguments: doctor.main())
    gpt2_parser = commands.add_parser("gpt2", help="download GPT-2 small's weights (548 MB) for notebook 06")
    gpt2_parser.add_argument("action", choices=["fetch"])
    gpt2_parser.set_defaults(run=gpt2_command)
    from coursekit.grading.commands import add_parsers  # grade, gradescope-zip

    add_parsers(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    return arguments.run(arguments)
