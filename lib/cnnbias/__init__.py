"""cnnbias: the library behind the executable book on the inductive bias of CNNs trained by GD.

Modules are organized by concept, not by paper, because chapters share models and data:

- :mod:`cnnbias.config`   scale (smoke | book | paper), device, dtype, per-run seeds
- :mod:`cnnbias.engine`   train R independent runs as one batched tensor program
- :mod:`cnnbias.claims`   claims: measured value vs paper value, PASS/FAIL
- :mod:`cnnbias.stats`    means, standard errors, error rates with ties counted 1/2
- :mod:`cnnbias.plotting` one figure style, paper-vs-ours overlays
- :mod:`cnnbias.data`     positions, orthogonal patterns, XORD, digits
- :mod:`cnnbias.models`   linear, max-pooling, MLP and small CNN models, batched over runs
- :mod:`cnnbias.theory`   closed forms and constructions from the papers
"""

__version__ = "0.1.0"

from cnnbias import config as _config

_config.apply_threads()
