"""Errors users can cause. Each message says what was expected and how to fix it."""

from __future__ import annotations


class XliveError(Exception):
    """Base class of every error xlive raises on purpose."""


class ConfigError(XliveError, ValueError):
    """A bad option, argument or configuration value."""


class SourceError(XliveError):
    """A run or file that cannot be opened or read."""


class GeometryError(XliveError, ValueError):
    """Missing or inconsistent detector geometry."""


class BadFrameError(SourceError):
    """One frame is corrupt or truncated; a live run records it as bad and goes on."""


class AnalyzerError(XliveError):
    """An unknown analyzer or bad analyzer parameters."""
