"""What a chapter notebook needs before its first experiment, in one call.

:func:`start` prints the configuration that produces the chapter's numbers (scale, device, dtype,
torch version), applies the book's figure style and returns the chapter's :class:`~cnnbias.claims.Claims`::

    from cnnbias.notebook import start, glue
    claims = start("convlin")

:func:`glue` stores a value for ``{glue:text}`` / ``{glue:figure}`` in the chapter's text exactly as
``myst_nb.glue`` does, without importing myst-nb (whose import of nbformat and jsonschema costs a
chapter a second or more of start-up).
"""

from __future__ import annotations

from typing import Any

from cnnbias import config, plotting
from cnnbias.claims import Claims

__all__ = ["start", "glue", "GLUE_PREFIX"]

#: myst-nb's prefix for glued, not displayed, outputs (``myst_nb.ext.glue.GLUE_PREFIX``).
GLUE_PREFIX = "application/papermill.record/"


def start(prefix: str) -> Claims:
    """Print :func:`cnnbias.config.describe`, set the figure style, return ``Claims(prefix)``."""
    print(config.describe())
    plotting.use_style()
    return Claims(prefix)


def glue(name: str, value: Any, display: bool = True) -> None:
    """Glue ``value`` under ``name`` for myst-nb: the same output as ``myst_nb.glue(name, value, display)``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    mimebundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata = dict(metadata or {})
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)
