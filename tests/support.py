"""Paths shared by the tests (importable from every test module: pytest's pythonpath holds tests/)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root."""
SHARED = REPO.parent / "shared"
"""``../shared`` beside the checkout (real pairs and references); tests using it skip when it is absent."""


class PicklePayload:
    """Unpickling this creates ``path``: a stand-in for any code a pickle can run (``torch.save`` it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")
