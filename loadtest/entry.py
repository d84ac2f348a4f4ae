"""The ``tickrelay-loadtest`` command: says which extra to install before anything fails.

The load tester needs ``rich``, ``matplotlib`` and ``psutil``, which a server install does
not bring. Without them the command would die on a ``ModuleNotFoundError`` deep in an
import; this entry point checks first and answers in one line.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

EXTRA_MODULES = ("rich", "matplotlib", "psutil")
INSTALL_HINT = "pip install 'tickrelay[loadtest]'"


def missing_modules() -> list[str]:
    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        print(
            f"tickrelay-loadtest: needs {', '.join(missing)}: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from tickrelay.loadtest.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
