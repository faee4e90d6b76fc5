"""Looking at reports as a reader does: headless Chromium screenshots and page checks."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _headless_flags(profile: str, width: int, height: int) -> list[str]:
    """Offline headless Chromium in a throwaway profile (no sandbox: CI runs as root)."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}"]


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
        cmd = [exe, *_headless_flags(profile, width, height), f"--screenshot={png_path}",
               Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    return png_path


#: Runs first in the checked page: records uncaught errors and console.error calls, and after
#: load measures every image and table against the page's main column.
_PROBE = r"""<script>
window.__mtbc = {errors: []};
window.addEventListener("error", function (e) {
  window.__mtbc.errors.push("uncaught: " + (e.message || (e.target && e.target.outerHTML)));
}, true);
(function () {
  var original = console.error;
  console.error = function () {
    window.__mtbc.errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
window.addEventListener("load", function () {
  var main = document.querySelector("main") || document.body;
  var box = main.getBoundingClientRect();
  var out = {errors: window.__mtbc.errors, overflow: [], small: [], split: [], images: 0,
             tables: 0, width: box.width};
  // a wide table inside a horizontally scrolling box is measured by that box
  function shown(el) {
    for (var a = el.parentElement; a && a !== main; a = a.parentElement) {
      var ox = getComputedStyle(a).overflowX;
      if (ox === "auto" || ox === "scroll") { return a; }
    }
    return el;
  }
  // every whitespace-separated word of a cell's text nodes must sit on one line box
  function splitWords(cell) {
    var found = [], walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), node;
    while ((node = walker.nextNode())) {
      var re = /\S+/g, m;
      while ((m = re.exec(node.data))) {
        var range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        var tops = {};
        Array.prototype.forEach.call(range.getClientRects(), function (q) {
          if (q.width > 0) { tops[Math.round(q.top)] = true; }
        });
        if (Object.keys(tops).length > 1) { found.push(m[0]); }
      }
    }
    return found;
  }
  document.querySelectorAll("img, table").forEach(function (el, i) {
    var what = el.tagName.toLowerCase() + " #" + i;
    var r = (el.tagName === "IMG" ? el : shown(el)).getBoundingClientRect();
    if (el.tagName === "IMG") {
      out.images += 1;
      if (el.naturalWidth && r.width / el.naturalWidth < 0.85) {
        out.small.push(what + " shown at " + Math.round(100 * r.width / el.naturalWidth) + "%");
      }
    } else {
      out.tables += 1;
      el.querySelectorAll("td, th").forEach(function (cell) {
        splitWords(cell).forEach(function (word) {
          out.split.push(what + ": '" + word + "' broken across lines");
        });
      });
    }
    if (r.right > box.right + 1 || r.left < box.left - 1) {
      out.overflow.push(what + " spans " + Math.round(r.left) + ".." + Math.round(r.right) +
                        " px; the page column is " + Math.round(box.left) + ".." +
                        Math.round(box.right));
    }
  });
  var pre = document.createElement("pre");
  pre.id = "mtbc-page-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@dataclass
class PageCheck:
    """What :func:`check_page` saw: script ``errors``, images and tables that reach outside
    the page column (``overflow``; a table in a horizontally scrolling box is measured by
    that box), images shrunk below 85% of their size (``small``: their text would drop under
    ~10 px), words of table cells broken across two lines (``split``: "archite cture"; an
    explicit ``<wbr>`` break point ends a word), and how many images and tables there
    were."""

    path: Path
    errors: list[str]
    overflow: list[str]
    small: list[str]
    images: int
    tables: int
    split: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.errors or self.overflow or self.small or self.split)


def check_page(html_path: str | os.PathLike, *, width: int = 1280, height: int = 900,
               timeout: float = 120.0) -> PageCheck:
    """Render ``html_path`` in headless Chromium (offline) and measure it as a reader sees it.

    A copy of the page with a probe script is rendered (the original is not touched).
    Raises ``FileNotFoundError`` without Chromium and ``RuntimeError`` when the page does not
    render.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium found on PATH; install it (Debian: "
                                "`apt-get install chromium`) to check pages")
    source = Path(html_path).read_text(encoding="utf-8")
    marker = "<head>" if "<head>" in source else "<html>"
    probed = source.replace(marker, marker + _PROBE, 1) if marker in source else _PROBE + source
    with tempfile.TemporaryDirectory(prefix="mtbc-check-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(probed, encoding="utf-8")
        cmd = [exe, *_headless_flags(tmp, width, height), "--virtual-time-budget=10000",
               "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False)
    match = re.search(r'<pre id="mtbc-page-check">(.*?)</pre>', proc.stdout, re.S)
    if match is None:
        raise RuntimeError(f"{html_path}: chromium rendered no page check (exit "
                           f"{proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(html.unescape(match.group(1)))
    return PageCheck(Path(html_path), data["errors"], data["overflow"], data["small"],
                     data["images"], data["tables"], data["split"])
