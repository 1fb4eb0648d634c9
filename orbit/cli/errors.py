"""Errors shared by the sub-commands (kept apart from main.py to avoid import cycles)."""

from __future__ import annotations


class CommandError(Exception):
    """Bad input to a command: printed as one line, exit code 2."""
