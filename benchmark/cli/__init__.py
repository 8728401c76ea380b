"""The ``earshot`` command line: the one place that composes the packages."""

from earshot.benchmark.cli.app import app, main

__all__ = ["app", "main"]
