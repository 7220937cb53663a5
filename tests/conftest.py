"""Fixtures and markers shared by the whole suite.

Markers: ``slow`` marks tests that train real models for several epochs or run whole stages;
``make test`` leaves them out for quick feedback, ``make test-all`` (CI) runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import REPO, SHARED


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared``; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED
