"""The results store: one JSON file per finished cell, written atomically, read with checks.

Layout: ``<root>/<experiment>/<scale>/<key>.json`` where ``key`` is :func:`~cnnbias.sweeps.spec.cell_key`
(experiment, scale, config, code version).  The root is ``CNNBIAS_RESULTS`` when set, else the
``results/`` folder at the repository root (next to ``pyproject.toml``), else ``./results``.

A file holds one top-level field per line (values compact JSON, floats written with ``repr``, so
they read back bit for bit)::

    {
    "checksum":"<sha256 of the canonical experiment, scale, key, code, config and result>",
    "code":"<code version>",
    "config":{...},
    "experiment":"convlin.fig2",
    "format":"cnnbias.sweeps/1",
    "key":"<key>",
    "provenance":{"date":...,"device":"cpu","dtype":"float64","git":...,"python":...,"torch":...,"wall_s":...},
    "result":{...},
    "scale":"paper"
    }

No hostnames or user names are recorded.  A file is written to a temporary name in the same
folder and moved into place with :func:`os.replace`, so a reader (or a killed writer) never sees a
half-written ``<key>.json``; temporary files (``.<key>.*.tmp``) are ignored.  Reading checks the
JSON, the format, that the key matches the file name and the content, and the checksum: a
corrupt file raises :class:`CorruptResult` naming it.  Reading needs neither torch nor the
experiments (:func:`read_file`, :func:`read_folder`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from cnnbias.sweeps.spec import SCALES, Sweep, canonical, cell_key

__all__ = [
    "FORMAT",
    "StoreError",
    "CorruptResult",
    "MissingCells",
    "Store",
    "default_root",
    "jsonable",
    "read_file",
    "read_folder",
    "git_commit",
]

FORMAT = "cnnbias.sweeps/1"
_FIELDS = ("checksum", "code", "config", "experiment", "format", "key", "provenance", "result", "scale")


class StoreError(RuntimeError):
    """A problem with the results store."""


class CorruptResult(StoreError):
    """A result file that cannot be read or fails its checks (the message names the file)."""


class MissingCells(StoreError, LookupError):
    """Cells of a sweep with no result in the store (the message says how to compute them)."""


def default_root() -> Path:
    """``CNNBIAS_RESULTS``, else ``<repo>/results`` (repo = the folder holding pyproject.toml above
    the package), else ``./results``."""
    env = os.environ.get("CNNBIAS_RESULTS", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "lib" / "cnnbias").is_dir():
        return repo / "results"
    return Path.cwd() / "results"


def jsonable(x: Any, where: str = "result") -> Any:
    """``x`` with tensors/arrays (``tolist()``), numpy scalars (``item()``) and tuples made JSON values."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x
    if isinstance(x, Mapping):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            out[k] = jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(x, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if hasattr(x, "tolist"):  # torch.Tensor, numpy array or scalar
        return jsonable(x.tolist(), where)
    if hasattr(x, "item"):
        return jsonable(x.item(), where)
    raise ValueError(f"{where}: {type(x).__name__} is not a JSON value (numbers, strings, bools, lists, dicts)")


def _checksum(rec: Mapping[str, Any]) -> str:
    body = {k: rec[k] for k in ("experiment", "scale", "key", "code", "config", "result")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _dumps(rec: Mapping[str, Any]) -> str:
    lines = [json.dumps(k) + ":" + json.dumps(rec[k], sort_keys=True, separators=(",", ":")) for k in sorted(rec)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the repository holding the package (``+dirty`` when tracked files changed), or None."""
    repo = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def read_file(path: str | os.PathLike) -> dict:
    """Read and check one result file; :class:`CorruptResult` (naming the file) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorruptResult(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptResult(f"result file {path} cannot be read: {e}") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptResult(f"result file {path} is corrupt (not valid JSON: {e}); delete it and rerun the sweep") from None
    if not isinstance(rec, dict) or sorted(rec) != sorted(_FIELDS):
        got = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
        raise CorruptResult(f"result file {path} is corrupt: fields {got}, expected {list(_FIELDS)}")
    if rec["format"] != FORMAT:
        raise CorruptResult(f"result file {path} has format {rec['format']!r}, expected {FORMAT!r}")
    if path.stem != rec["key"]:
        raise CorruptResult(f"result file {path} holds the cell {rec['key']!r}, not the one its name says")
    if rec["scale"] not in SCALES or not isinstance(rec["config"], dict):
        raise CorruptResult(f"result file {path} is corrupt: bad scale or config")
    try:
        key = cell_key(rec["experiment"], rec["scale"], rec["config"], rec["code"])
    except (TypeError, ValueError) as e:
        raise CorruptResult(f"result file {path} is corrupt: {e}") from None
    if key != rec["key"]:
        raise CorruptResult(f"result file {path} is corrupt: its config/code do not hash to its key")
    if _checksum(rec) != rec["checksum"]:
        raise CorruptResult(f"result file {path} is corrupt: checksum mismatch (edited or damaged)")
    return rec


def read_folder(folder: str | os.PathLike) -> list[dict]:
    """Every result file of a folder (``<root>/<experiment>/<scale>``), checked, sorted by key."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [read_file(p) for p in sorted(folder.glob("*.json"))]


class Store:
    """The results store rooted at ``root`` (default :func:`default_root`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def folder(self, experiment: str, scale: str) -> Path:
        return self.root / experiment / scale

    def path(self, experiment: str, scale: str, key: str) -> Path:
        return self.folder(experiment, scale) / f"{key}.json"

    # -- writing -----------------------------------------------------------------------------------
    def write(self, sweep: Sweep, scale: str, config: Mapping[str, Any], result: Mapping[str, Any],
              version: str, provenance: Mapping[str, Any]) -> Path:
        """Write one finished cell atomically (temporary file, fsync, ``os.replace``); returns its path."""
        if not isinstance(result, Mapping):
            raise ValueError(f"sweep {sweep.name!r}: cell_fn must return a dict, got {type(result).__name__}")
        res = json.loads(json.dumps(jsonable(result), allow_nan=True))
        cfg = json.loads(canonical(dict(config)))
        key = cell_key(sweep.name, scale, cfg, version)
        rec = {
            "format": FORMAT,
            "experiment": sweep.name,
            "scale": scale,
            "key": key,
            "code": version,
            "config": cfg,
            "result": res,
            "provenance": dict(provenance),
        }
        rec["checksum"] = _checksum(rec)
        folder = self.folder(sweep.name, scale)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{key}.json"
        tmp = folder / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(_dumps(rec))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    # -- reading -----------------------------------------------------------------------------------
    def status(self, sweep: Sweep, scale: str) -> dict[str, list]:
        """``{"done": [config...], "missing": [...], "corrupt": [(config, message)...], "stale": n}``:
        the state of the sweep's current cells, and how many files in its folder belong to other
        configs or code versions."""
        version = sweep.code_version()
        out: dict[str, Any] = {"done": [], "missing": [], "corrupt": []}
        keys = set()
        for cfg in sweep.configs(scale):
            key = sweep.key(scale, cfg, version)
            keys.add(key)
            p = self.path(sweep.name, scale, key)
            if not p.exists():
                out["missing"].append(cfg)
                continue
            try:
                read_file(p)
            except CorruptResult as e:
                out["corrupt"].append((cfg, str(e)))
            else:
                out["done"].append(cfg)
        folder = self.folder(sweep.name, scale)
        files = folder.glob("*.json") if folder.is_dir() else []
        out["stale"] = sum(1 for p in files if p.stem not in keys)
        return out

    def stale_files(self, sweep: Sweep, scale: str) -> list[Path]:
        """Files in the sweep's folder at ``scale`` that no current cell reads (another config or an
        older code version), sorted."""
        version = sweep.code_version()
        keys = {sweep.key(scale, cfg, version) for cfg in sweep.configs(scale)}
        folder = self.folder(sweep.name, scale)
        return sorted(p for p in folder.glob("*.json") if p.stem not in keys) if folder.is_dir() else []

    def prune(self, sweep: Sweep, scale: str) -> list[Path]:
        """Delete :meth:`stale_files`; returns the deleted paths (the store keeps only current cells)."""
        gone = self.stale_files(sweep, scale)
        for p in gone:
            p.unlink()
        return gone

    def load(self, sweep: Sweep, scale: str, select=None) -> list[tuple[dict, dict]]:
        """``[(config, result), ...]`` of the sweep's cells at ``scale`` in declaration order
        (restricted to ``select(config)`` when given).  Raises :class:`MissingCells` when cells have
        no result (saying how many, which, and the command that computes them) and
        :class:`CorruptResult` naming a damaged file."""
        version = sweep.code_version()
        cfgs = [c for c in sweep.configs(scale) if select is None or select(c)]
        if not cfgs:
            raise MissingCells(f"sweep {sweep.name!r} declares no cells at scale {scale!r}")
        out, missing = [], []
        for cfg in cfgs:
            p = self.path(sweep.name, scale, sweep.key(scale, cfg, version))
            if not p.exists():
                missing.append(cfg)
                continue
            out.append((cfg, read_file(p)["result"]))
        if missing:
            folder = self.folder(sweep.name, scale)
            n_files = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
            stale = (f"; {folder} holds {n_files} result files of other configs or code versions "
                     "(the code that computes this sweep changed since they were made)" if n_files else "")
            shown = "; ".join(sweep.cell_label(c) for c in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise MissingCells(
                f"{len(missing)} of {len(cfgs)} cells of sweep {sweep.name!r} at scale {scale!r} have no result "
                f"in {self.root} ({shown}){stale}. Compute them with: "
                f"python -m cnnbias sweep {sweep.name} --scale {scale}"
            )
        return out


def provenance(device: str, dtype: str, wall_s: float) -> dict:
    """Where and how a cell was computed (no host or user names)."""
    import platform

    import torch

    return {
        "device": device,
        "dtype": dtype,
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git": git_commit(),
        "wall_s": round(float(wall_s), 3) if math.isfinite(wall_s) else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
