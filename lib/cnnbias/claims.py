"""Claims: what a chapter reproduces, as comparisons that can fail.

A claim has an id (``<chapter>.<name>``), a statement, the measured value(s), what the paper says,
the tolerance or rule, and PASS/FAIL.  A chapter collects its claims in a :class:`Claims` and shows
them with :meth:`Claims.report` in one cell.  The cell's output is one display bundle with

- ``text/plain``: one readable line per claim, ``<id>  PASS|FAIL  measured=<...> | paper=<...> | tol=<...>``
  followed by its statement, indented;
- ``text/html``: the same as a table (what the rendered book shows);
- :data:`CLAIMS_MIME` (``application/vnd.cnnbias.claims+json``): ``{"claims": [record, ...]}``, one
  machine-readable record per claim (:meth:`Claim.record`): id, statement, status, the measured
  value(s) as numbers, the standard error where there is one, the tolerance, the paper's value and
  the scale.  The claims summary and every tool read these records, never the text.

Numbers in records and lines are rounded to :data:`SIG_DIGITS` significant digits, so that a
record is the same on every machine; a claim's status is decided on the unrounded numbers, and
the chapters make the quantities a status depends on robust (ties with a tolerance, see
:func:`cnnbias.stats.near_max_threshold`).
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Claim", "Claims", "fmt", "fmt_bound", "fmt_se", "rounded", "CLAIMS_MIME", "SIG_DIGITS"]

#: MIME type of the claims records in a claims cell's output (read by ``tools/booktools``).
CLAIMS_MIME = "application/vnd.cnnbias.claims+json"
#: Significant digits of the numbers in claim lines and records.
SIG_DIGITS = 4

_ID = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_.]+")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def rounded(x, digits: int = SIG_DIGITS):
    """``x`` as a float rounded to ``digits`` significant digits (ints and None unchanged; NaN/inf kept)."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x
    v = float(x)
    if not math.isfinite(v) or v == 0:
        return v if math.isfinite(v) else v
    return float(f"{v:.{digits}g}")


def fmt(x) -> str:
    """Format a number with :data:`SIG_DIGITS` significant digits (ints exactly); other values with ``str``."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.{SIG_DIGITS}g}"


def fmt_bound(x, tol) -> str:
    """A residual of an exact identity against its tolerance: ``"< 1e-12"`` when ``x <= tol`` (its noise
    digits are not shown: they depend on the CPU's kernels), else the value and the tolerance it exceeds.

    ``tol`` is printed with one significant digit; NaN is reported as such."""
    x, tol = float(x), float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if math.isnan(x):
        return "nan"
    return f"< {tol:.0e}" if abs(x) <= tol else f"{x:.1e} (exceeds {tol:.0e})"


def fmt_se(mean, se, digits: int = 1) -> str:
    """``"m ± s"`` with the standard error to ``digits`` significant digits and the mean to the same
    decimal place: a Monte Carlo mean shown to the digits its own error supports."""
    m, s = float(mean), float(se)
    if not s >= 0:
        raise ValueError(f"se must be a number >= 0, got {se!r}")
    if math.isnan(m):
        return "nan"
    if s == 0:
        return f"{fmt(m)} ± 0"
    place = digits - 1 - math.floor(math.log10(s))
    if place <= 0:
        q = 10 ** (-place)
        return f"{round(m / q) * q:.0f} ± {round(s / q) * q:.0f}"
    return f"{m:.{place}f} ± {s:.{place}f}"


def _json_number(v):
    """A JSON-safe number: NaN and infinities become strings (JSON has no literal for them)."""
    if v is None or isinstance(v, (bool, int)):
        return v
    v = rounded(v)
    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def _values(value, measured: str) -> dict[str, object]:
    """The measured numbers of a claim: ``value`` (a number or a mapping name -> number); without
    it, the numbers written in ``measured`` (``x0``, ``x1``, ...)."""
    if value is None:
        return {f"x{i}": _json_number(int(t) if re.fullmatch(r"[-+]?\d+", t) else float(t))
                for i, t in enumerate(_NUMBER.findall(measured))}
    if isinstance(value, Mapping):
        return {str(k): _json_number(float(v)) for k, v in value.items()}
    return {"value": _json_number(float(value))}


def _scale() -> str:
    # The scale as config.scale() reads it, without importing torch here.
    return (os.environ.get("CNNBIAS_SCALE", "book").strip().lower() or "book")


@dataclass(frozen=True)
class Claim:
    """One checked claim.  ``values`` holds the measured numbers (rounded), ``se`` the standard error
    of the measured quantity when it is a Monte Carlo estimate, ``paper_value`` the paper's number
    when it states one."""

    id: str
    statement: str
    measured: str
    paper: str
    tolerance: str
    passed: bool
    values: dict = field(default_factory=dict)
    se: float | None = None
    paper_value: float | None = None
    scale: str = "book"

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def __repr__(self) -> str:  # short, so a notebook cell ending in a claim call stays readable
        return f"<claim {self.id}: {self.status}>"

    def line(self) -> str:
        return f"{self.id}  {self.status}  measured={self.measured} | paper={self.paper} | tol={self.tolerance}"

    def record(self) -> dict:
        """The machine-readable record (JSON-serializable)."""
        return {
            "id": self.id,
            "statement": self.statement,
            "status": self.status,
            "values": dict(self.values),
            "se": _json_number(self.se),
            "tolerance": self.tolerance,
            "paper": self.paper,
            "paper_value": _json_number(self.paper_value),
            "measured": self.measured,
            "scale": self.scale,
        }


def _nonneg(name: str, x) -> float:
    v = float(x)
    if not v >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be a number >= 0, got {x!r}")
    return v


class Claims:
    """The claims of one chapter.  ``prefix`` (e.g. ``"convlin"``) must start every id.

    ``scale`` is written into every record (default: ``CNNBIAS_SCALE``, i.e. the scale that
    produced the chapter's numbers).
    """

    def __init__(self, prefix: str, scale: str | None = None, kind: str = "claim"):
        if not re.fullmatch(r"[A-Za-z0-9_]+", prefix or ""):
            raise ValueError(f"prefix must be a word such as 'convlin', got {prefix!r}")
        if kind not in ("claim", "check"):
            raise ValueError(f"kind must be 'claim' or 'check', got {kind!r}")
        self.prefix = prefix
        self.scale = scale or _scale()
        self.kind = kind
        self._claims: list[Claim] = []
        self._checks: Claims | None = None

    @property
    def checks(self) -> Claims:
        """The chapter's *library checks*: comparisons that verify the code (an equivalence, a generator's
        design, a residual of an identity the implementation relies on), not claims of the paper.  Same
        API; shown by :meth:`report` in a separate table and recorded under ``"checks"``, never counted
        among the claims.  Each has a unit test in ``tests/`` as well."""
        if self.kind != "claim":
            raise ValueError("a checks collection has no checks of its own")
        if self._checks is None:
            self._checks = Claims(self.prefix, self.scale, kind="check")
        return self._checks

    # -- adding -------------------------------------------------------------------------------
    def _add(self, claim: Claim) -> Claim:
        if not claim.id.startswith(self.prefix + "."):
            raise ValueError(f"claim id {claim.id!r} must start with {self.prefix + '.'!r}")
        if not _ID.fullmatch(claim.id):
            raise ValueError(f"claim id {claim.id!r} must look like '<prefix>.<name>' (letters, digits, _)")
        if any(c.id == claim.id for c in self._claims):
            raise ValueError(f"claim id {claim.id!r} was already added")
        self._claims.append(claim)
        return claim

    def check(self, id: str, statement: str, passed: bool, measured, paper, tolerance, *,
              value=None, se=None, paper_value=None) -> Claim:
        """A general claim whose rule the caller evaluated (``passed``) and describes (``tolerance``).

        ``value``: the measured number, or a mapping of named numbers, for the record (default: the
        numbers written in ``measured``); ``se``: its standard error; ``paper_value``: the paper's number.
        """
        measured = str(measured)
        return self._add(Claim(
            id, statement, measured, str(paper), str(tolerance), bool(passed),
            values=_values(value, measured), se=None if se is None else rounded(_nonneg("se", se)),
            paper_value=None if paper_value is None else rounded(float(paper_value)), scale=self.scale))

    def at_least(self, id: str, statement: str, measured, bound, paper: str = "", *, se=None,
                 paper_value=None) -> Claim:
        """PASS iff ``measured >= bound`` (NaN fails)."""
        m = float(measured)
        return self.check(id, statement, m >= float(bound), fmt(m), paper or f">= {fmt(bound)}", f">= {fmt(bound)}",
                          value=m, se=se, paper_value=paper_value)

    def at_most(self, id: str, statement: str, measured, bound, paper: str = "", *, se=None,
                paper_value=None) -> Claim:
        """PASS iff ``measured <= bound`` (NaN fails)."""
        m = float(measured)
        return self.check(id, statement, m <= float(bound), fmt(m), paper or f"<= {fmt(bound)}", f"<= {fmt(bound)}",
                          value=m, se=se, paper_value=paper_value)

    def close(self, id: str, statement: str, measured, target, tol, paper: str = "", *, se=None) -> Claim:
        """PASS iff ``|measured - target| <= tol``."""
        m, t, e = float(measured), float(target), _nonneg("tol", tol)
        return self.check(id, statement, abs(m - t) <= e, fmt(m), paper or fmt(t), f"|x - {fmt(t)}| <= {fmt(e)}",
                          value=m, se=se, paper_value=t)

    def residual(self, id: str, statement: str, measured, tol, paper: str = "") -> Claim:
        """PASS iff the residual of an exact identity is ``<= tol``; shown (and recorded) as the bound
        ``"< tol"``, not as its noise digits, so the record is the same on every CPU."""
        m, t = abs(float(measured)), float(tol)
        if not t > 0:
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        ok = m <= t
        return self.check(id, statement, ok, fmt_bound(m, t), paper or "exact identity", f"<= {t:.0e}",
                          value={"bound": t} if ok else {"value": m})

    def greater(self, id: str, statement: str, a, b, se, k: float = 2.0, paper: str = "") -> Claim:
        """PASS iff ``a - b > k * se`` (a difference larger than ``k`` standard errors)."""
        a, b, se = float(a), float(b), _nonneg("se", se)
        return self.check(
            id,
            statement,
            (a - b) > k * se,
            f"{fmt(a)} - {fmt(b)} = {fmt_se(a - b, se) if se > 0 else fmt(a - b)} (se)",
            paper or "a > b",
            f"diff > {fmt(k)} se",
            value={"a": a, "b": b, "diff": a - b},
            se=se,
        )

    # -- reading ------------------------------------------------------------------------------
    def __iter__(self):
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)

    @property
    def n_failed(self) -> int:
        return sum(not c.passed for c in self._claims)

    @property
    def n_passed(self) -> int:
        return sum(c.passed for c in self._claims)

    def as_records(self) -> list[dict]:
        """One record per claim (see :meth:`Claim.record`)."""
        return [c.record() for c in self._claims]

    def text(self, statements: bool = True) -> str:
        """The readable lines: one per claim (with its statement, indented), then the counts."""
        out = []
        for c in self._claims:
            out.append(c.line())
            if statements:
                out.append(f"    {c.statement}")
        out.append(f"{self.prefix}: {self.n_passed} of {len(self._claims)} {self.kind}s pass")
        return "\n".join(out)

    def html(self) -> str:
        """The claims as an HTML table (id, status, measured, paper, tolerance, statement)."""
        esc = html.escape
        rows = []
        for c in self._claims:
            status = f"<strong>{c.status}</strong>" if not c.passed else c.status
            rows.append(
                f"<tr><td><code>{esc(c.id)}</code></td><td>{status}</td><td>{esc(c.measured)}</td>"
                f"<td>{esc(c.paper)}</td><td>{esc(c.tolerance)}</td><td>{esc(c.statement)}</td></tr>")
        return (
            '<table class="cnnbias-claims"><thead><tr><th>claim</th><th>status</th><th>measured</th>'
            "<th>paper</th><th>tolerance</th><th>statement</th></tr></thead><tbody>"
            + "".join(rows)
            + f"</tbody></table><p>{esc(self.prefix)}: {self.n_passed} of {len(self._claims)} {self.kind}s pass "
            f"(scale {esc(self.scale)}).</p>")

    def bundle(self) -> dict:
        """The display bundle of :meth:`report`: text, HTML table and the JSON records (claims, and the
        library checks under ``"checks"`` when there are any)."""
        text, page, payload = self.text(), self.html(), {"claims": self.as_records()}
        if self._checks is not None and len(self._checks):
            text += "\nLibrary checks (tests of the code, not claims of the paper):\n" + self._checks.text()
            page += "<p>Library checks (tests of the code, not claims of the paper):</p>" + self._checks.html()
            payload["checks"] = self._checks.as_records()
        return {"text/plain": text, "text/html": page, CLAIMS_MIME: payload}

    def report(self, statements: bool = True) -> None:
        """Show the claims: in IPython one display bundle (text, HTML table, JSON records); else print
        the readable lines."""
        if not self._claims and (self._checks is None or not len(self._checks)):
            raise ValueError("no claims or checks to report")
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython is a dependency of the book extra
            get_ipython = lambda: None  # noqa: E731
        if get_ipython() is None:
            print(self.bundle()["text/plain"] if statements else self.text(False))
            return
        display(self.bundle(), raw=True)
