"""ART's import, without its side effect on the caller's logging. ART 1.20 runs logging.config.dictConfig when
it is imported, and dictConfig closes every handler already installed: a user's FileHandler(mode="w") on the
root logger then never writes again (issue 42: no global side effects). Every module that imports ART calls
import_art() first."""

from __future__ import annotations

import logging.config
import sys


def import_art() -> None:
    """Imports ART once, its dictConfig kept from closing the handlers already installed (ART's own logger
    still gets its handler)."""
    if "art" in sys.modules:
        return
    clear = logging.config._clearExistingHandlers  # type: ignore[attr-defined]
    logging.config._clearExistingHandlers = lambda: None  # type: ignore[attr-defined]
    try:
        import art  # noqa: F401
    finally:
        logging.config._clearExistingHandlers = clear  # type: ignore[attr-defined]
