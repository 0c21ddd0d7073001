"""Tests of cnnbias.notebook: start-up and the light glue (same output as myst_nb.glue, rounded floats)."""

import numpy as np
import pytest
import torch
from cnnbias import notebook
from cnnbias.claims import Claims


def test_start_prints_config_and_returns_claims(capsys):
    c = notebook.start("demo")
    assert isinstance(c, Claims) and c.prefix == "demo"
    assert "scale=" in capsys.readouterr().out


def test_rounded_float():
    r = notebook._rounded_float
    assert r(0.12054976851851851) == 0.12055 and r(0.12054976851851854) == 0.12055
    assert r(np.float64(1 / 3)) == 0.333333 and r(torch.tensor(2 / 3, dtype=torch.float64)) == 0.666667
    assert r(7) == 7 and r(True) is True and r("x") == "x" and r(np.int64(3)) == 3


def test_glue_matches_myst_nb(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append((a, k)))
    notebook.glue("x", 0.12054976851851851, display=False)
    (args, kwargs), = shown
    assert args[0] == {"application/papermill.record/text/plain": "0.12055"}
    assert kwargs["metadata"]["scrapbook"] == {"name": "x", "mime_prefix": "application/papermill.record/"}
    with pytest.raises(ValueError, match="name"):
        notebook.glue("", 1)
