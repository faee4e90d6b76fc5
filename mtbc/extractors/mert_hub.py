"""Finding MERT-v1 weights (and, through :class:`HubSpec`, any Hugging Face checkpoint the
``hf`` extractor reads): the hub at a pinned revision, its local cache, or a local folder laid
out like a hub snapshot (``docs/models/mert.md``, ``docs/models/hf.md``).

Only ``config.json``, ``preprocessor_config.json`` and the weights are ever fetched, never
``*.py`` (the remote code is never run). The cache is read first with no network; when the
files are not cached and the hub cannot be reached, :class:`WeightsUnavailableError` says so
at once (with a one-line ``fix``) instead of waiting for the client's retries.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbc.extractors.base import WeightsUnavailableError

MODEL_95M = "m-a-p/MERT-v1-95M"
MODEL_330M = "m-a-p/MERT-v1-330M"

#: Pinned default revision per official repository: the commits that independent public
#: projects pin and cache for these repositories (95M: seen as a hub-cache snapshot folder
#: name; 330M: pinned, with a hash of the weights it served, by several projects). We could
#: not reach huggingface.co from here to confirm them ourselves; pass ``revision="main"`` (or
#: another commit) to override. The resolved commit is part of the fingerprint and metadata.
DEFAULT_REVISIONS: dict[str, str] = {
    MODEL_95M: "12af15fef9d0ac838c3f475bfbbf26d2060dd4f5",
    MODEL_330M: "5240c2708a5acaee1007f43fb9735c7dcd0b78c9",
}

#: Files fetched from the hub: never ``*.py`` (the remote code is never run).
ALLOW_PATTERNS = ["config.json", "preprocessor_config.json", "*.safetensors", "pytorch_model.bin"]
#: Downloaded in this order: safetensors first; the .bin only when a revision has no safetensors,
#: so a repository holding both formats is not fetched twice (1.3 GB each for 330M).
DOWNLOAD_STEPS = (["config.json", "preprocessor_config.json", "*.safetensors"],
                  ["config.json", "preprocessor_config.json", "pytorch_model.bin"])

#: Weights whose licence we know from the hub model card (as seen in stored copies of the hub
#: pages; huggingface.co itself was not reachable from here). Anything else is reported as
#: :data:`UNKNOWN_LICENCE`.
KNOWN_LICENCES: dict[str, str] = {
    "m-a-p/MERT-v1-95M": "cc-by-nc-4.0",
    "m-a-p/MERT-v1-330M": "cc-by-nc-4.0",
    "laion/larger_clap_music": "apache-2.0",
    "openai/whisper-base": "apache-2.0",
    "facebook/wav2vec2-base": "apache-2.0",
}
UNKNOWN_LICENCE = "unknown: see the model card"


def licence_of(model_id: str) -> str:
    """The weights' licence as the hub card states it, or :data:`UNKNOWN_LICENCE`."""
    return KNOWN_LICENCES.get(model_id, UNKNOWN_LICENCE)


_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubSpec:
    """What to fetch and require for one kind of checkpoint.

    ``what`` names the weights in messages (``"MERT"``); ``required`` are files a snapshot
    must hold besides the weights; ``steps`` are the download pattern lists, tried in order
    until one brings weights (never ``*.py``); ``default_revisions`` pins hub ids;
    ``examples`` are the hub ids suggested when an id is wrong.
    """

    what: str = "MERT"
    required: tuple[str, ...] = ("config.json", "preprocessor_config.json")
    steps: tuple[tuple[str, ...], ...] = tuple(tuple(p) for p in DOWNLOAD_STEPS)
    default_revisions: tuple[tuple[str, str], ...] = tuple(DEFAULT_REVISIONS.items())
    examples: tuple[str, ...] = (MODEL_95M, MODEL_330M)


MERT_SPEC = HubSpec()


@dataclass
class MertSnapshot:
    """A resolved model folder: where it is, what it is, and the files we read from it."""

    folder: Path
    model_id: str
    revision: str | None
    commit: str
    config: dict[str, Any]
    preprocessor: dict[str, Any]
    weights: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- resolving files

def _weight_files(folder: Path) -> list[Path]:
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    if (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    return []


def _missing_files(folder: Path, required: Sequence[str] = MERT_SPEC.required) -> list[str]:
    missing = [n for n in required if not (folder / n).is_file()]
    if not _weight_files(folder):
        missing.append("model.safetensors or pytorch_model.bin")
    return missing


def _fix_hint(model: str, required: Sequence[str] = MERT_SPEC.required) -> str:
    return (
        "Fix it in one of two ways: (1) connect to the internet once so that the files download "
        "into the Hugging Face cache (or set HF_HOME / HF_HUB_CACHE to a cache that already "
        f"holds {model}), or (2) pass model=<folder> pointing at a local folder that holds "
        f"{', '.join(required)} and model.safetensors or pytorch_model.bin."
    )


def _one_line_fix(model_id: str) -> str:
    return (f"connect to the internet once (mtbc downloads {model_id} into the Hugging Face "
            f"cache), or set `model:` to a local folder laid out like a hub snapshot")


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection (asked once per process).

    Without it the hub client retries for about 25 s before it gives up; this answers in
    milliseconds on an offline machine, so the offline path never waits.
    """
    import socket
    import urllib.parse

    import huggingface_hub

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return False
    url = urllib.parse.urlparse(huggingface_hub.constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download(model_id: str, revision: str, spec: HubSpec = MERT_SPEC) -> Path:
    """The snapshot folder of ``model_id`` at ``revision``: from the cache when it holds the
    files (no network at all), else downloaded (only ``spec.steps`` patterns)."""
    import huggingface_hub
    from huggingface_hub import errors

    def fetch(local_only: bool) -> Path:
        for patterns in spec.steps:
            folder = Path(huggingface_hub.snapshot_download(
                model_id, revision=revision, allow_patterns=list(patterns),
                local_files_only=local_only))
            if _weight_files(folder):
                break
        return folder

    try:
        folder = fetch(local_only=True)
        if not _missing_files(folder, spec.required):
            return folder
    except errors.LocalEntryNotFoundError:
        pass
    unavailable = WeightsUnavailableError(
        f"{spec.what} weights for {model_id!r} (revision {revision!r}) are not in the Hugging "
        f"Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) and the hub cannot be reached "
        f"(offline). {_fix_hint(model_id, spec.required)}", fix=_one_line_fix(model_id))
    if not hub_reachable():
        raise unavailable
    try:
        return fetch(local_only=False)
    except errors.LocalEntryNotFoundError as exc:
        raise unavailable from exc
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
        raise WeightsUnavailableError(
            f"{model_id!r} at revision {revision!r} was not found on the Hugging Face Hub "
            f"({exc.__class__.__name__}); use {' or '.join(map(repr, spec.examples))}, or a local "
            "folder.", fix=f"set `model:` to {', '.join(map(repr, spec.examples))} or a local folder"
        ) from exc


def _local_commit(folder: Path, weights: Sequence[Path],
                  required: Sequence[str] = MERT_SPEC.required) -> str:
    """Commit of a local folder: the snapshot's name if it is a hub snapshot, else a content hash."""
    if folder.parent.name == "snapshots" and _COMMIT_RE.match(folder.name):
        return folder.name
    digest = hashlib.sha256()
    for path in [*(folder / name for name in required), *weights]:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return "sha256-" + digest.hexdigest()[:40]


def _local_model_id(folder: Path) -> str:
    """``owner/name`` for a folder inside a hub cache (``models--owner--name/snapshots/<sha>``)."""
    repo = folder.parent.parent.name if folder.parent.name == "snapshots" else ""
    if repo.startswith("models--"):
        return repo.removeprefix("models--").replace("--", "/")
    return f"local:{folder}"


def resolve_snapshot(model: str | Path, *, revision: str | None = None,
                     spec: HubSpec = MERT_SPEC) -> MertSnapshot:
    """Find (downloading if needed, never ``*.py``) and read a model folder.

    ``model`` is a hub id (``m-a-p/MERT-v1-95M``, ``m-a-p/MERT-v1-330M``) or a local folder laid
    out like a hub snapshot; an existing folder wins over a hub id of the same spelling.
    ``spec`` says which files to fetch and require (MERT's by default).
    Raises :class:`WeightsUnavailableError` when files are missing and cannot be fetched.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        folder, model_id, revision = path.resolve(), None, None
    elif isinstance(model, Path) or str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise WeightsUnavailableError(
            f"model={str(model)!r} is neither an existing folder nor a hub id like "
            f"{spec.examples[0]!r}. {_fix_hint(str(model), spec.required)}")
    else:
        model_id = str(model)
        revision = revision or dict(spec.default_revisions).get(model_id, "main")
        folder = _download(model_id, revision, spec)
    missing = _missing_files(folder, spec.required)
    if missing:
        where = f"{model_id!r} (revision {revision!r}) in {folder}" if model_id else str(folder)
        raise WeightsUnavailableError(
            f"{spec.what} files missing for {where}: {', '.join(missing)}. "
            f"{_fix_hint(model_id or str(folder), spec.required)}")
    weights = _weight_files(folder)
    if model_id is None:
        model_id, commit = _local_model_id(folder), _local_commit(folder, weights, spec.required)
    else:
        commit = (folder.name if _COMMIT_RE.match(folder.name)
                  else _local_commit(folder, weights, spec.required))
    config = json.loads((folder / "config.json").read_text())
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    return MertSnapshot(folder=folder, model_id=model_id, revision=revision, commit=commit,
                        config=config, preprocessor=preprocessor, weights=weights)
