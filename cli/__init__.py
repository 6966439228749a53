"""The `forewarn` command line (a face: it imports every layer, and nothing imports it)."""

from forewarn.cli.app import app

__all__ = ["app"]
