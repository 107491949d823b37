"""The failures ``nonsite`` (:mod:`nonsite.cli`) turns into one line and exit code 1.

Sub-command modules raise them; they import them from here, never from the root CLI that calls them.
A configuration mistake is :class:`nonsite.config.ConfigError` (exit code 2).
"""
from __future__ import annotations


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit code 1."""


class KafkaSetupError(RuntimeError):
    """Something outside Python is missing or broken (Java, Maven, a broker); ``str()`` is the one line."""
