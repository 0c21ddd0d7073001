"""Sweep and claim declarations, their registry, cell keys and code versions.

A *sweep* is the computation behind one figure (or table) of a paper, split into independent
*cells*: one cell is a config (a dict of JSON values) -> a result (a dict of JSON numbers and
lists), computed by ``cell_fn(config, device, dtype)``, which batches all runs of the cell through
the engine.  A sweep lists its cells per scale (``smoke``, ``book``, ``paper``) and names the library
modules whose source determines its results (``code``); the module defining ``cell_fn`` always
counts.

Cell key.  ``sha256(experiment, scale, canonical config, code version)`` (first 20 hex digits): the
name of the cell's file in the results store.  The *code version* is a sha256 of the listed
modules' source with comments, docstrings and blank lines removed, so a change of the code that
computes a result gives new keys (stale results are never reused), while an edited comment or
docstring keeps them.

A *claim spec* maps a claim id (as in the chapters, ``<prefix>.<name>``) to a sweep, an optional
selection of its cells, and a function adding the claim to a :class:`cnnbias.claims.Claims` from
the selected cells' ``(config, result)`` pairs: ``python -m cnnbias reproduce <id>`` runs (or
reuses) exactly those cells and prints the claim's record.

Experiment modules declare sweeps at their end::

    SWEEP_FIG2 = sweeps.register(sweeps.Sweep("convlin.fig2", fig2_cell, cells={...}, code=(...)))

and :func:`discover` imports every module of :mod:`cnnbias.experiments` (and the self-test sweeps)
so that the registry is complete.  This module imports neither torch nor the experiments.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import io
import json
import pkgutil
import re
import tokenize
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "SCALES",
    "Sweep",
    "ClaimSpec",
    "register",
    "register_claim",
    "get",
    "get_claim",
    "names",
    "claim_ids",
    "sweeps",
    "claims_of",
    "discover",
    "canonical",
    "cell_key",
    "code_version",
    "normalized_source",
]

SCALES: tuple[str, ...] = ("smoke", "book", "paper")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
_CLAIM_ID = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_.]+$")
#: Hex digits of a cell key (80 bits).
KEY_DIGITS = 20


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces, no NaN): the text hashed into keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_config(sweep: str, scale: str, i: int, cfg: Any) -> dict:
    if not isinstance(cfg, Mapping):
        raise ValueError(f"sweep {sweep!r}, scale {scale!r}: cell {i} must be a dict of JSON values, got {cfg!r}")
    cfg = dict(cfg)
    for k in cfg:
        if not isinstance(k, str):
            raise ValueError(f"sweep {sweep!r}, scale {scale!r}: cell {i} has a non-string key {k!r}")
    try:
        text = canonical(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"sweep {sweep!r}, scale {scale!r}: cell {i} config {cfg!r} is not JSON-serializable "
            f"(finite numbers, strings, bools, lists, dicts only): {e}"
        ) from None
    return json.loads(text)  # tuples -> lists: the config as it will be stored and read back


@dataclass(frozen=True)
class Sweep:
    """The cells behind one figure.

    - ``name``: lower-case dotted id, e.g. ``"convlin.fig2"`` (the store folder and CLI name);
    - ``cell_fn(config, device, dtype) -> dict``: computes one cell (all its runs batched); the
      result holds JSON numbers, strings, bools and (nested) lists; tensors and arrays are
      converted with ``tolist()`` by the store;
    - ``cells``: ``{"smoke": [config, ...], "book": [...], "paper": [...]}`` (a list may be empty:
      the sweep is not declared at that scale);
    - ``code``: names of the modules whose source determines the results (besides ``cell_fn``'s);
    - ``description``: one line for ``python -m cnnbias sweep --help``;
    - ``label(config) -> str``: a short name of a cell in reports (default: ``k=v,...``);
    - ``rtol``, ``atol``: how close a recomputed float must be to the stored one in the integrity
      check (ints, bools and strings must be equal);
    - ``cpu_only``: the cells always run on the CPU in float64 (``cell_fn`` gets that device and dtype
      whatever the worker's default or ``--device``), and the provenance says so.
    """

    name: str
    cell_fn: Callable[..., Mapping[str, Any]]
    cells: Mapping[str, Sequence[Mapping[str, Any]]]
    code: tuple[str, ...] = ()
    description: str = ""
    label: Callable[[Mapping[str, Any]], str] | None = None
    rtol: float = 1e-9
    atol: float = 1e-12
    cpu_only: bool = False
    _configs: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"Sweep name must be lower-case letters, digits and '_' in dot-separated parts "
                f"(e.g. 'convlin.fig2'), got {self.name!r}"
            )
        if not callable(self.cell_fn):
            raise ValueError(f"sweep {self.name!r}: cell_fn must be callable (config, device, dtype) -> dict")
        if not isinstance(self.cells, Mapping) or set(self.cells) != set(SCALES):
            got = sorted(self.cells) if isinstance(self.cells, Mapping) else self.cells
            raise ValueError(f"sweep {self.name!r}: cells must map exactly the scales {SCALES} to lists, got {got}")
        code = tuple(self.code)
        if not all(isinstance(m, str) and m for m in code):
            raise ValueError(f"sweep {self.name!r}: code must be module names, got {self.code!r}")
        object.__setattr__(self, "code", code)
        if not (self.rtol >= 0 and self.atol >= 0):
            raise ValueError(f"sweep {self.name!r}: rtol and atol must be >= 0")
        for scale in SCALES:
            cfgs = [_check_config(self.name, scale, i, c) for i, c in enumerate(self.cells[scale])]
            seen: dict[str, int] = {}
            for i, c in enumerate(cfgs):
                t = canonical(c)
                if t in seen:
                    raise ValueError(f"sweep {self.name!r}, scale {scale!r}: cells {seen[t]} and {i} have the same config {c}")
                seen[t] = i
            self._configs[scale] = cfgs

    def configs(self, scale: str) -> list[dict]:
        """The cell configs at ``scale`` (copies)."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        return [json.loads(canonical(c)) for c in self._configs[scale]]

    @property
    def modules(self) -> tuple[str, ...]:
        """Modules whose source makes the code version (``cell_fn``'s module, then ``code``; sorted, unique)."""
        return tuple(sorted({self.cell_fn.__module__, *self.code}))

    def code_version(self) -> str:
        return code_version(self.modules)

    def key(self, scale: str, config: Mapping[str, Any], version: str | None = None) -> str:
        return cell_key(self.name, scale, config, self.code_version() if version is None else version)

    def cell_label(self, config: Mapping[str, Any]) -> str:
        if self.label is not None:
            return str(self.label(config))
        return ",".join(f"{k}={canonical(v)}" for k, v in sorted(config.items()))


@dataclass(frozen=True)
class ClaimSpec:
    """A claim computed from a sweep's cells.

    ``compute(cells, claims)`` adds the claim ``id`` (and possibly others) to ``claims`` (a
    :class:`cnnbias.claims.Claims` with the id's prefix and the run's scale); ``cells`` is the list of
    ``(config, result)`` of the sweep's cells at the scale, in declaration order, restricted to
    those for which ``select(config)`` is true (all when ``select`` is None).
    """

    id: str
    sweep: str
    compute: Callable[[list[tuple[dict, dict]], Any], Any]
    select: Callable[[Mapping[str, Any]], bool] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _CLAIM_ID.match(self.id):
            raise ValueError(f"claim id must look like '<prefix>.<name>', got {self.id!r}")
        if not callable(self.compute):
            raise ValueError(f"claim {self.id!r}: compute must be callable (cells, claims) -> None")

    @property
    def prefix(self) -> str:
        return self.id.split(".", 1)[0]


_SWEEPS: dict[str, Sweep] = {}
_CLAIMS: dict[str, ClaimSpec] = {}
_DISCOVERED = False


def register(sweep: Sweep) -> Sweep:
    """Add ``sweep`` to the registry (re-registering from the same module, e.g. a reload, replaces it)."""
    if not isinstance(sweep, Sweep):
        raise ValueError(f"register expects a Sweep, got {type(sweep).__name__}")
    old = _SWEEPS.get(sweep.name)
    if old is not None and old.cell_fn.__module__ != sweep.cell_fn.__module__:
        raise ValueError(
            f"sweep {sweep.name!r} is declared twice: in {old.cell_fn.__module__} and {sweep.cell_fn.__module__}"
        )
    _SWEEPS[sweep.name] = sweep
    return sweep


def register_claim(spec: ClaimSpec) -> ClaimSpec:
    """Add a claim spec (its sweep must be registered first)."""
    if not isinstance(spec, ClaimSpec):
        raise ValueError(f"register_claim expects a ClaimSpec, got {type(spec).__name__}")
    if spec.sweep not in _SWEEPS:
        raise ValueError(f"claim {spec.id!r}: sweep {spec.sweep!r} is not registered (register the Sweep first)")
    _CLAIMS[spec.id] = spec
    return spec


#: Modules imported by :func:`discover` besides every module of ``cnnbias.experiments``.
EXTRA_MODULES: tuple[str, ...] = ("cnnbias.sweeps.selftest",)


def discover() -> None:
    """Import every module of :mod:`cnnbias.experiments` (recursively) and the self-test sweeps, so
    that every declared sweep and claim is registered.  Import errors are raised, not hidden."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    pkg = importlib.import_module("cnnbias.experiments")
    mods = [info.name for info in pkgutil.walk_packages(pkg.__path__, prefix="cnnbias.experiments.")]
    for name in [*mods, *EXTRA_MODULES]:
        try:
            importlib.import_module(name)
        except Exception as e:
            raise ImportError(f"finding the sweeps: importing {name} failed: {type(e).__name__}: {e}") from e
    _DISCOVERED = True


def names() -> list[str]:
    """Names of all registered sweeps (after :func:`discover`), sorted."""
    discover()
    return sorted(_SWEEPS)


def sweeps() -> list[Sweep]:
    return [_SWEEPS[n] for n in names()]


def claim_ids() -> list[str]:
    discover()
    return sorted(_CLAIMS)


def claims_of(sweep: str) -> list[ClaimSpec]:
    """The claim specs computed from ``sweep``."""
    discover()
    return [c for _, c in sorted(_CLAIMS.items()) if c.sweep == sweep]


def _import_home(name: str) -> None:
    """Import the module a sweep or claim named ``<paper>.<...>`` most likely lives in
    (``cnnbias.experiments.<paper>``, or the self-test sweeps), so that a worker need not import every
    experiment module; :func:`discover` remains the fallback."""
    prefix = name.split(".", 1)[0]
    candidates = list(EXTRA_MODULES) if prefix.startswith("selftest") else [f"cnnbias.experiments.{prefix}"]
    for mod in candidates:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


def get(name: str) -> Sweep:
    """The registered sweep ``name``; a ValueError lists the known names otherwise."""
    if name not in _SWEEPS:
        _import_home(name)
    if name not in _SWEEPS:
        discover()
    if name not in _SWEEPS:
        raise ValueError(f"unknown sweep {name!r}; known sweeps: {', '.join(sorted(_SWEEPS)) or 'none'}")
    return _SWEEPS[name]


def get_claim(claim_id: str) -> ClaimSpec:
    if claim_id not in _CLAIMS:
        _import_home(claim_id)
    if claim_id not in _CLAIMS:
        discover()
    if claim_id not in _CLAIMS:
        raise ValueError(
            f"unknown claim {claim_id!r}; claims with a sweep: {', '.join(sorted(_CLAIMS)) or 'none'}"
        )
    return _CLAIMS[claim_id]


def cell_key(experiment: str, scale: str, config: Mapping[str, Any], version: str) -> str:
    """The cell's key: sha256 of (experiment, scale, canonical config, code version), 20 hex digits."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    payload = canonical({"experiment": experiment, "scale": scale, "config": dict(config), "code": version})
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_DIGITS]


def _docstring_lines(tree: ast.AST, lines: list[str]) -> set[int]:
    """1-based line numbers occupied only by docstrings (module, class, function)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = getattr(node, "body", [])
        if not body or not isinstance(body[0], ast.Expr):
            continue
        c = body[0].value
        if not (isinstance(c, ast.Constant) and isinstance(c.value, str)):
            continue
        first, last = c.lineno, c.end_lineno or c.lineno
        # only when the docstring has its lines to itself
        if lines[first - 1][: c.col_offset].strip() or lines[last - 1][c.end_col_offset or 0:].strip():
            continue
        out.update(range(first, last + 1))
    return out


def normalized_source(text: str) -> str:
    """Source without comments, docstrings, trailing blanks and blank lines (what a code version hashes)."""
    lines = text.replace("\r\n", "\n").split("\n")
    drop = _docstring_lines(ast.parse(text), lines)
    cut: dict[int, int] = {}  # line -> column where a comment starts
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            cut[tok.start[0]] = tok.start[1]
    out = []
    for i, line in enumerate(lines, start=1):
        if i in drop:
            continue
        if i in cut:
            line = line[: cut[i]]
        line = line.rstrip()
        if line:
            out.append(line)
    return "\n".join(out) + "\n"


@lru_cache(maxsize=None)
def _module_digest(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"code module {module!r} has no Python source file (find_spec: {spec})")
    with open(spec.origin, encoding="utf-8") as f:
        text = f.read()
    return hashlib.sha256(normalized_source(text).encode()).hexdigest()


def code_version(modules: Sequence[str]) -> str:
    """sha256 (16 hex digits) of the normalized source of ``modules`` (names sorted, each with its digest)."""
    mods = sorted(set(modules))
    if not mods:
        raise ValueError("code_version needs at least one module name")
    payload = "\n".join(f"{m} {_module_digest(m)}" for m in mods)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
