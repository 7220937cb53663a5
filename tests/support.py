"""Paths and helpers shared by the tests (importable from every test module: the root conftest's folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root."""
SHARED = REPO.parent / "shared"
"""``../shared`` beside the checkout (real pairs and references); tests using it skip when it is absent."""
