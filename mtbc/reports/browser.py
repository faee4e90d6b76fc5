"""Looking at reports as a reader does: headless Chromium screenshots and page checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, *,
               width: int = 1280, height: int = 900, timeout: float = 60.0) -> Path:
    """Render ``html_path`` in headless Chromium to ``png_path`` (offline, sandbox off).

    Raises ``FileNotFoundError`` when no Chromium is installed (Debian: ``apt-get install
    chromium``) and ``RuntimeError`` when it writes no image.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium found on PATH; install it (Debian: "
                                "`apt-get install chromium`) to take screenshots")
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mtbc-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png_path}", Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    return png_path
