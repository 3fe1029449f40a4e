"""The schema library of the running Home Assistant.

Home Assistant validates with probatio since 2026.x (its annotations ask for probatio
schemas) and with voluptuous before; both offer the same ``vol`` API we use.
"""

from __future__ import annotations

import importlib.util
from typing import Final

# mypy is told which branch applies (--always-true/--always-false PROBATIO, scripts/lane).
PROBATIO: Final = importlib.util.find_spec("probatio") is not None

if PROBATIO:
    import probatio as vol
else:
    import voluptuous as vol

__all__ = ["PROBATIO", "vol"]
