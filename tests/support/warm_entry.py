"""A stand-in for `oppen`'s main in warm-server tests that need no PyTorch: ``oppen SECONDS
CODE`` sleeps, then exits with that code."""

from __future__ import annotations

import sys
import time


def main() -> None:
    seconds, code = sys.argv[1:3]
    time.sleep(float(seconds))
    sys.exit(int(code))
