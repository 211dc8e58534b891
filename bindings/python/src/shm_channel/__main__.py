"""``python -m shm_channel ...`` and the ``shm_channel`` console script: the C command-line
tool (c/cli/), the same commands, options, JSON and exit statuses (docs/cli.md).

There is one implementation: this module finds the C program and execs it, in order

1. the file named by ``$SHM_CHANNEL_CLI``;
2. the copy bundled in this package (``shm_channel/bin/shm_channel``, statically linked);
3. ``shm_channel`` next to the loaded library (a build tree: ``build/shm_channel`` beside
   ``build/libshm_channel.so.1``, or ``/usr/bin`` for ``/usr/lib``'s library).

Nothing found: a message listing the places tried, exit status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Environment variable that names the CLI program, tried first.
CLI_ENV = "SHM_CHANNEL_CLI"


def _candidates() -> list[Path]:
    found = []
    env = os.environ.get(CLI_ENV)
    if env:
        found.append(Path(env))
    here = Path(__file__).resolve().parent
    found.append(here / "bin" / "shm_channel")
    try:
        from ._lib import library_path

        lib_dir = Path(library_path).resolve().parent
        found.append(lib_dir / "shm_channel")
        found.append(lib_dir.parent / "bin" / "shm_channel")
    except (ImportError, OSError):  # the library itself is missing: the CLI may still run
        pass
    return found


def cli_path() -> str:
    """Path of the C command-line program this package runs (``FileNotFoundError`` if none)."""
    tried = _candidates()
    for p in tried:
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    raise FileNotFoundError(
        "shm_channel: the command-line program was not found; tried "
        + ", ".join(str(p) for p in tried)
        + f" (set ${CLI_ENV} to its path)"
    )


def main(argv: list[str] | None = None) -> int:
    """Exec the C program with ``argv`` (default: this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        path = cli_path()
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(path, ["shm_channel", *args])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
