"""Tests of cnnbias.models.init: per-run draws independent of batching."""

import pytest
import torch
from cnnbias.models import init


def test_normal_rows_come_from_their_own_generator():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    W = init.normal(gens, (4, 5), 0.5)
    assert W.shape == (3, 4, 5) and W.dtype == torch.float64
    one = init.normal([torch.Generator().manual_seed(2)], (4, 5), 0.5)
    assert torch.equal(W[1], one[0])
    assert torch.equal(one[0], 0.5 * torch.randn(4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64))


@pytest.mark.parametrize("kw", [dict(gens=[]), dict(std=float("nan")), dict(std=-1.0), dict(shape=(-1,))])
def test_normal_rejects_bad_input(kw):
    args = dict(gens=[torch.Generator()], shape=(2,), std=1.0) | kw
    with pytest.raises(ValueError):
        init.normal(**args)
