"""Paths shared by the tests (importable from every test module: pytest's pythonpath holds tests/)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root."""
SHARED = REPO.parent / "shared"
"""``../shared`` beside the checkout (real pairs and references); tests using it skip when it is absent."""
