"""What a notebook displays for the index page: its one-line summary and the fixture banner.

- :func:`record_summary` displays a one-line summary; the index reads it back from the
  executed notebook (custom mimetype ``application/vnd.mtbc.summary+json``; last call wins).
- :func:`fixture_banner` shows a warning banner when any extractor's metadata says its
  weights are ``"fixture"`` or ``"random"`` (key ``weights_kind``, one of
  :data:`WEIGHTS_KINDS`); the index repeats the banner when any report showed it.
- :func:`read_back` reads both back from an executed notebook.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
from collections.abc import Mapping
from typing import Any

SUMMARY_MIME = "application/vnd.mtbc.summary+json"
#: Mimetype of the answer that :func:`record_answer` displays (the index leads with it).
ANSWER_MIME = "application/vnd.mtbc.answer+json"
#: Mimetype of the fixture-weights marker that :func:`fixture_banner` displays.
FIXTURE_MIME = "application/vnd.mtbc.fixture-weights+json"
#: Allowed values of an extractor metadata's ``weights_kind``.
WEIGHTS_KINDS = ("pretrained", "fixture", "random", "none")  # "none": no weights (MFCC)
#: Shown whenever fixture or random weights produced the numbers on a page.
FIXTURE_TEXT = ("These numbers come from test-fixture/random weights: "
                "they are not model results.")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]()#|!~{}])")


def md_text(value: Any) -> str:
    """``value`` as literal text inside Markdown: HTML-escaped (so ``<img onerror=...>`` in a
    label or file name shows as text and never becomes an element) and with Markdown's
    special characters backslash-escaped. Use for every user string put into ``Markdown``."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(value), quote=False)).replace("\n", " ")


def record_summary(text: str) -> None:
    """Record the notebook's one-line summary for the index page (and show it here).

    Call from a notebook cell; newlines are folded into spaces. The last call wins.
    """
    line = " ".join(str(text).split())
    bundle = {SUMMARY_MIME: {"summary": line}, "text/markdown": f"**Summary.** {line}",
              "text/plain": f"Summary. {line}"}
    _display(bundle)


def record_answer(text: str) -> None:
    """Record the run's answer (one or two sentences; ``**bold**`` allowed) and show it here.

    The index page opens with the answer of every notebook that recorded one (the last call
    in a notebook wins).
    """
    line = " ".join(str(text).split())
    bundle = {ANSWER_MIME: {"answer": line}, "text/markdown": f"**Answer.** {line}",
              "text/plain": f"Answer. {line}"}
    _display(bundle)


def weights_kinds(weights_info: Any) -> dict[str, str]:
    """Label -> ``weights_kind`` from extractor metadata.

    ``weights_info``: a mapping label -> metadata dict (or Extractor), a list of metadata
    dicts / Extractors (labelled by their ``extractor`` key), or one metadata dict.
    Metadata without ``weights_kind`` gives ``"unknown"``; a value outside
    :data:`WEIGHTS_KINDS` raises ``ValueError``.
    """
    def meta(obj: Any) -> Mapping[str, Any]:
        return obj.metadata() if callable(getattr(obj, "metadata", None)) else obj

    if isinstance(weights_info, Mapping) and (
            "weights_kind" in weights_info or "extractor" in weights_info):
        items = [(weights_info.get("extractor", "extractor"), weights_info)]
    elif isinstance(weights_info, Mapping):
        items = list(weights_info.items())
    else:
        items = [(meta(m).get("extractor", f"extractor {i}"), m)
                 for i, m in enumerate(weights_info)]
    kinds = {}
    for label, m in items:
        kind = meta(m).get("weights_kind", "unknown")
        if kind not in (*WEIGHTS_KINDS, "unknown"):
            raise ValueError(f"{label}: weights_kind {kind!r} is not one of "
                             f"{', '.join(WEIGHTS_KINDS)}")
        kinds[str(label)] = kind
    return kinds


class FixtureBanner:
    """A displayable warning that fixture/random weights made the numbers on the page."""

    def __init__(self, kinds: Mapping[str, str]):
        self.kinds = dict(kinds)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        which = ", ".join(f"{k}: {v}" for k, v in self.kinds.items())
        html_text = (f'<div class="mtbc-fixture-banner" role="alert" style="border:2px solid '
                     f'#b45309;background:#fef3c7;color:#78350f;padding:0.8em 1em;'
                     f'border-radius:6px;font-weight:600">&#9888; {html.escape(FIXTURE_TEXT)}'
                     f'<div style="font-weight:400;font-size:0.9em">({html.escape(which)})'
                     f'</div></div>')
        return {FIXTURE_MIME: {"weights": self.kinds}, "text/html": html_text,
                "text/plain": f"WARNING: {FIXTURE_TEXT} ({which})"}

    def __repr__(self) -> str:
        return f"FixtureBanner({self.kinds!r})"


def fixture_banner(weights_info: Any) -> FixtureBanner | None:
    """A banner to display when any extractor's weights are ``"fixture"`` or ``"random"``.

    ``weights_info`` as in :func:`weights_kinds`. Returns ``None`` (displays nothing) when
    every extractor is pretrained or unknown. Put it as the last line of an early cell.
    """
    flagged = fixture_kinds(weights_info)
    return FixtureBanner(flagged) if flagged else None


def fixture_kinds(weights_info: Any) -> dict[str, str]:
    """Label -> kind for every extractor whose weights are ``"fixture"`` or ``"random"``
    (``weights_info`` as in :func:`weights_kinds`): the numbers they make are not results."""
    return {k: v for k, v in weights_kinds(weights_info).items() if v in ("fixture", "random")}


def _display(bundle: dict[str, Any]) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        print(bundle["text/plain"])
        return
    if get_ipython() is None:
        print(bundle["text/plain"])
    else:
        display(bundle, raw=True)


@dataclasses.dataclass(frozen=True)
class RecordedOutputs:
    """What a notebook recorded for the index: ``summary``, ``answer`` and the fixture
    ``weights`` (label -> kind) it warned about."""

    summary: str | None = None
    answer: str | None = None
    fixture_weights: dict = dataclasses.field(default_factory=dict)


def read_back(executed: str | os.PathLike) -> RecordedOutputs:
    """The summary, answer and fixture banner recorded in an executed notebook's outputs
    (the last summary and answer win)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    summary, answer, fixtures = None, None, {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if SUMMARY_MIME in data:
                summary = _as_json(data[SUMMARY_MIME]).get("summary")
            if ANSWER_MIME in data:
                answer = _as_json(data[ANSWER_MIME]).get("answer")
            if FIXTURE_MIME in data:
                fixtures.update(_as_json(data[FIXTURE_MIME]).get("weights", {}))
    return RecordedOutputs(summary, answer, fixtures)


def _as_json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)
