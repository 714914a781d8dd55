"""xlive: live analysis of serial crystallography runs."""

from __future__ import annotations

from .errors import XliveError
from .geometry import Geometry, Panel

__version__ = "0.1.0"

__all__ = ["Geometry", "Panel", "XliveError", "__version__"]
