"""Claims: what a chapter reproduces, as comparisons that can fail.

A claim has an id (``<chapter>.<name>``), a statement, the measured value, what the paper says, the
tolerance or rule, and PASS/FAIL.  A chapter collects its claims in a :class:`Claims` and prints them
with :meth:`Claims.report` in one cell; each printed line reads::

    <id>  PASS|FAIL  measured=<...> | paper=<...> | tol=<...>

so that :mod:`cnnbias.book` can read every notebook's stored output and list what the book
reproduces.  Numbers are printed with 4 significant digits so that stored outputs are stable.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

__all__ = ["Claim", "Claims", "fmt", "CLAIM_LINE"]

#: Regular expression matching one printed claim line (used by :mod:`cnnbias.book`).
CLAIM_LINE = re.compile(
    r"^(?P<id>[A-Za-z0-9_]+\.[A-Za-z0-9_.]+)\s+(?P<status>PASS|FAIL)\s+measured=(?P<measured>.*?)"
    r" \| paper=(?P<paper>.*?) \| tol=(?P<tol>.*)$"
)


def fmt(x) -> str:
    """Format a number with 4 significant digits (ints exactly); other values with ``str``."""
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
    return f"{v:.4g}"


@dataclass(frozen=True)
class Claim:
    """One checked claim."""

    id: str
    statement: str
    measured: str
    paper: str
    tolerance: str
    passed: bool

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def __repr__(self) -> str:  # short, so a notebook cell ending in a claim call stays readable
        return f"<claim {self.id}: {self.status}>"

    def line(self) -> str:
        return f"{self.id}  {self.status}  measured={self.measured} | paper={self.paper} | tol={self.tolerance}"


class Claims:
    """The claims of one chapter.  ``prefix`` (e.g. ``"convlin"``) must start every id."""

    def __init__(self, prefix: str):
        if not re.fullmatch(r"[A-Za-z0-9_]+", prefix or ""):
            raise ValueError(f"prefix must be a word such as 'convlin', got {prefix!r}")
        self.prefix = prefix
        self._claims: list[Claim] = []

    # -- adding -------------------------------------------------------------------------------
    def _add(self, claim: Claim) -> Claim:
        if not claim.id.startswith(self.prefix + "."):
            raise ValueError(f"claim id {claim.id!r} must start with {self.prefix + '.'!r}")
        if not re.fullmatch(r"[A-Za-z0-9_]+\.[A-Za-z0-9_.]+", claim.id):
            raise ValueError(f"claim id {claim.id!r} must look like '<prefix>.<name>' (letters, digits, _)")
        if any(c.id == claim.id for c in self._claims):
            raise ValueError(f"claim id {claim.id!r} was already added")
        self._claims.append(claim)
        return claim

    def check(self, id: str, statement: str, passed: bool, measured: str, paper: str, tolerance: str) -> Claim:
        """A general claim whose rule the caller evaluated (``passed``) and describes (``tolerance``)."""
        return self._add(Claim(id, statement, str(measured), str(paper), str(tolerance), bool(passed)))

    def at_least(self, id: str, statement: str, measured, bound, paper: str = "") -> Claim:
        """PASS iff ``measured >= bound`` (NaN fails)."""
        m = float(measured)
        return self.check(id, statement, m >= float(bound), fmt(m), paper or f">= {fmt(bound)}", f">= {fmt(bound)}")

    def at_most(self, id: str, statement: str, measured, bound, paper: str = "") -> Claim:
        """PASS iff ``measured <= bound`` (NaN fails)."""
        m = float(measured)
        return self.check(id, statement, m <= float(bound), fmt(m), paper or f"<= {fmt(bound)}", f"<= {fmt(bound)}")

    def close(self, id: str, statement: str, measured, target, tol, paper: str = "") -> Claim:
        """PASS iff ``|measured - target| <= tol``."""
        m, t, e = float(measured), float(target), float(tol)
        if e < 0:
            raise ValueError(f"tol must be >= 0, got {tol}")
        return self.check(id, statement, abs(m - t) <= e, fmt(m), paper or fmt(t), f"|x - {fmt(t)}| <= {fmt(e)}")

    def greater(self, id: str, statement: str, a, b, se, k: float = 2.0, paper: str = "") -> Claim:
        """PASS iff ``a - b > k * se`` (a difference larger than ``k`` standard errors)."""
        a, b, se = float(a), float(b), float(se)
        if se < 0:
            raise ValueError(f"se must be >= 0, got {se}")
        return self.check(
            id,
            statement,
            (a - b) > k * se,
            f"{fmt(a)} - {fmt(b)} = {fmt(a - b)} (se {fmt(se)})",
            paper or "a > b",
            f"diff > {fmt(k)} se",
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
        return [asdict(c) | {"status": c.status} for c in self._claims]

    def report(self, statements: bool = True) -> None:
        """Print one line per claim (id, PASS/FAIL, measured, paper, tolerance), then the counts.

        With ``statements`` each line is followed by the claim's statement, indented.
        """
        if not self._claims:
            raise ValueError("no claims to report")
        for c in self._claims:
            print(c.line())
            if statements:
                print(f"    {c.statement}")
        print(f"{self.prefix}: {self.n_passed} of {len(self._claims)} claims pass")
