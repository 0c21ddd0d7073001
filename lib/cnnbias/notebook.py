"""What a chapter notebook needs before its first experiment, in one call.

:func:`start` prints the configuration that produces the chapter's numbers (scale, device, dtype,
torch version), applies the book's figure style and returns the chapter's :class:`~cnnbias.claims.Claims`::

    from cnnbias.notebook import start, glue
    claims = start("convlin")

:func:`~cnnbias.claims.fmt_bound` and :func:`~cnnbias.claims.fmt_se` format residuals (as bounds) and Monte Carlo
means (to their standard error) so that printed numbers are the same on every CPU.

:func:`glue` stores a value for ``{glue:text}`` / ``{glue:figure}`` in the chapter's text exactly as
``myst_nb.glue`` does, without importing myst-nb (whose import of nbformat and jsonschema costs a
chapter a second or more of start-up).
"""

from __future__ import annotations

from typing import Any

from cnnbias import config, plotting
from cnnbias.claims import Claims, fmt_bound, fmt_se, rounded

__all__ = ["start", "glue", "fmt_bound", "fmt_se", "GLUE_PREFIX", "GLUE_DIGITS"]

#: myst-nb's prefix for glued, not displayed, outputs (``myst_nb.ext.glue.GLUE_PREFIX``).
GLUE_PREFIX = "application/papermill.record/"


def start(prefix: str) -> Claims:
    """Print :func:`cnnbias.config.describe`, set the figure style, return ``Claims(prefix)``."""
    print(config.describe())
    plotting.use_style()
    return Claims(prefix)


#: Significant digits kept when a float is glued (its stored repr must not carry last-bit noise).
GLUE_DIGITS = 6


def _rounded_float(value: Any) -> Any:
    """Floats (Python, numpy, 0-d tensors) rounded to :data:`GLUE_DIGITS` significant digits; other values as given."""
    if isinstance(value, bool) or isinstance(value, int):
        return value
    try:
        import numpy as np

        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            value = float(value)
    except ImportError:  # pragma: no cover
        pass
    if hasattr(value, "dim") and hasattr(value, "item") and value.dim() == 0:
        value = value.item()
    return rounded(value, GLUE_DIGITS) if isinstance(value, float) else value


def glue(name: str, value: Any, display: bool = True) -> None:
    """Glue ``value`` under ``name`` for myst-nb: the same output as ``myst_nb.glue(name, value, display)``,
    except that a float is rounded to :data:`GLUE_DIGITS` significant digits first, so that its stored
    representation (compared by nbval) does not carry the last bits of a CPU's arithmetic.  Format it
    in the text as usual (``{glue:text}`name:.3f```)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    value = _rounded_float(value)
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    mimebundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata = dict(metadata or {})
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)
