"""Look at the report as a user would: render the HTML in headless Chromium (skipped where it is absent)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occo.config import validate_params
from occo.report.build import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium')")
def test_report_renders_tables_figures_and_gallery(workspace: Path, params: dict, tmp_path: Path) -> None:
    page = build_report(workspace, validate_params(params))
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1000,6000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the best-value cell background (#e6f4ea) and the red bars of our method (#d62728) are on screen
    assert (np.abs(pixels - [0xE6, 0xF4, 0xEA]).sum(axis=2) == 0).sum() > 100
    assert (np.abs(pixels - [0xD6, 0x27, 0x28]).sum(axis=2) < 30).sum() > 100
    # images (curves, bars, gallery) fill a good part of the page: many non-white, non-text rows
    content_rows = (pixels.min(axis=(1, 2)) < 250).sum()
    assert content_rows > 1500
