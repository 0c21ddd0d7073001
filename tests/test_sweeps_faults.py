"""Faults of a sweep: a killed sweep process resumes, a killed Dask worker loses nothing, a failing
cell is named while the others finish.  All on the tiny ``selftest`` sweeps (CPU, float64)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cnnbias import sweeps
from cnnbias.sweeps.runner import local_cluster, run_sweep
from cnnbias.sweeps.store import read_file

N_CELLS = 12


def _quiet():
    return dict(progress=False, log=lambda s: None, device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted serial run of the selftest sweep."""
    root = tmp_path_factory.mktemp("reference")
    s = run_sweep("selftest", "smoke", store=root, **_quiet())
    assert s.ok and s.computed == N_CELLS
    return sweeps.load("selftest", "smoke", store=root)


def _wait_for_files(folder, n, timeout=90.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.glob("*.json"))) >= n:
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep process ended early (status {proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} result files in {folder} after {timeout} s")


def _all_files_whole(folder):
    files = sorted(folder.glob("*.json"))
    for p in files:
        read_file(p)  # raises CorruptResult on a half-written file
    return len(files)


def test_sigkilled_sweep_resumes_to_the_uninterrupted_result(tmp_path, reference):
    folder = tmp_path / "selftest" / "smoke"
    env = dict(os.environ, CNNBIAS_SELFTEST_DELAY="0.25", CNNBIAS_PROGRESS="0", CNNBIAS_DEVICE="cpu",
               CNNBIAS_DTYPE="float64", CNNBIAS_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cnnbias", "sweep", "selftest", "--scale", "smoke",
                             "--store", str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for_files(folder, 3, proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = _all_files_whole(folder)
    assert 3 <= done < N_CELLS, f"{done} cells finished before the kill"
    s = run_sweep("selftest", "smoke", store=tmp_path, **_quiet())
    assert (s.ok, s.reused, s.computed) == (True, done, N_CELLS - done)
    assert sweeps.load("selftest", "smoke", store=tmp_path) == reference
    assert _all_files_whole(folder) == N_CELLS


def test_killed_dask_worker_loses_no_cell(tmp_path, reference, monkeypatch):
    from distributed import Client

    monkeypatch.setenv("CNNBIAS_SELFTEST_DELAY", "0.4")  # inherited by the worker processes
    folder = tmp_path / "selftest" / "smoke"
    killed = []
    with local_cluster(2) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2

        def kill_one():
            _wait_for_files(folder, 2)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        t = threading.Thread(target=kill_one, daemon=True)
        t.start()
        s = run_sweep("selftest", "smoke", store=tmp_path, client=client, **_quiet())
        t.join(timeout=60)
        assert killed, "no worker was killed"
        assert killed[0] not in client.run(os.getpid).values()
    assert s.ok and s.computed == N_CELLS and not s.failures, s.report()
    assert sweeps.load("selftest", "smoke", store=tmp_path) == reference
    assert _all_files_whole(folder) == N_CELLS


def test_failing_cell_is_named_and_the_others_finish(tmp_path):
    logs = []
    s = run_sweep("selftest_fail", "smoke", store=tmp_path, progress=False, log=logs.append, device="cpu",
                  dtype="float64")
    assert not s.ok and (s.computed, s.failed) == (3, 1)
    f = s.failures[0]
    assert f.label == "i=2" and "ValueError: selftest cell i=2 fails on purpose" in f.error
    assert "FAILED selftest_fail [smoke] cell i=2" in s.report() and "1 failed" in s.report()
    assert any("cell i=2" in m for m in logs)
    stored = sweeps.load("selftest_fail", "smoke", select=lambda c: not c.get("fail"), store=tmp_path)
    assert [c["i"] for c, _ in stored] == [0, 1, 3]
