"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_folder


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "album", {"speech": [3.0, 2.0, 2.5, 1.5], "drums": [2.0, 1.5],
                                             "music": [2.5, 2.0], "mix": [2.0, 1.8]})
