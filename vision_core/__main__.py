"""``python -m vision_core``: the command line, in :mod:`vision_core.cli`."""

from __future__ import annotations

from vision_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
