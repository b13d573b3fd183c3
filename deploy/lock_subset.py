"""Print the part of requirements.lock that the project's dependencies and the named extras need.

The lock holds every extra (dev tools, the CPU vLLM, the bench's reference pipeline) because `make setup`
installs them all. An image needs fewer: the `api` image has no use for vLLM or pytest. This takes the lock's
own record of who needs what (uv's `# via` lines: the resolved graph, one edge per line), walks it from the
roots pyproject.toml names, and prints those entries unchanged, hashes included, for
`pip install --no-deps --require-hashes`. Nothing is resolved again, so the subset is the lock's versions.

    python deploy/lock_subset.py requirements.lock pyproject.toml [--extra NAME ...] [--without NAME ...]
    python deploy/lock_subset.py requirements.lock pyproject.toml --package chromadb   # one package's part

Standard library only: it runs in a bare build stage, before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PROJECT_ROOT = re.compile(r"\(pyproject\.toml\)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Each entry's text (its pin, hashes and annotation lines) and, for each package, the packages it needs."""
    blocks: dict[str, list[str]] = {}
    needs: dict[str, set[str]] = {}
    current = None
    in_via = False
    for line in text.splitlines():
        if match := ENTRY.match(line):
            current = canonical(match.group(1))
            blocks[current] = [line]
            in_via = False
            continue
        if current is None or not line.startswith(" "):
            current = None
            continue
        blocks[current].append(line)
        comment = line.strip().removeprefix("#").strip()
        if comment.startswith("via"):
            parent, in_via = comment.removeprefix("via").strip(), True
        elif in_via and line.strip().startswith("#"):
            parent = comment
        else:
            continue
        # "rag (pyproject.toml)" marks a root; the roots come from pyproject.toml itself, per extra.
        if parent and not PROJECT_ROOT.search(parent):
            needs.setdefault(canonical(parent), set()).add(current)
    return {name: "\n".join(lines) for name, lines in blocks.items()}, needs


def roots(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    known = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in known]
    if unknown:
        raise SystemExit(f"no such extra in pyproject.toml: {', '.join(unknown)} (there are: {', '.join(known)})")
    texts = list(project["dependencies"]) + [text for extra in extras for text in known[extra]]
    return [canonical(NAME.match(text).group(1)) for text in texts]


def subset(
    lock_text: str, pyproject: dict, extras: list[str], without: list[str] = (), packages: list[str] = ()
) -> str:
    """The lock's entries that the project's dependencies and ``extras`` need, or, given ``packages``, that
    those packages need (a Chroma server image needs chromadb's part, not the project's)."""
    blocks, needs = parse_lock(lock_text)
    left_out = {canonical(name) for name in without}
    wanted = [canonical(name) for name in packages] if packages else roots(pyproject, extras)
    missing = [name for name in wanted if name not in blocks]
    if missing:
        raise SystemExit(f"not in the lock: {', '.join(missing)}; run 'make lock'")
    chosen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in chosen:
            continue
        chosen.add(name)
        wanted.extend(needs.get(name, ()))
    return "\n".join(blocks[name] for name in blocks if name in chosen and name not in left_out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="an extra of pyproject.toml to include")
    parser.add_argument("--without", action="append", default=[], help="a package to leave out; what it needs stays in")
    parser.add_argument("--package", action="append", default=[], help="a locked package to start from instead")
    args = parser.parse_args(argv)
    pyproject = tomllib.loads(args.pyproject.read_text())
    sys.stdout.write(subset(args.lock.read_text(), pyproject, args.extra, args.without, args.package))


if __name__ == "__main__":
    main()
