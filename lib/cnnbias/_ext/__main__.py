"""``python -m cnnbias._ext``: build the compiled kernels now (the ``make setup`` step)."""

from cnnbias import _ext

if __name__ == "__main__":
    mod = _ext.build(verbose=False)
    print(f"cnnbias: one-hot max-pool kernel ready in {_ext.build_dir()}")
