"""benchmarks/run_all.py's command line: which rows --only selects, and bad input refused with one line
before any row runs (the benchmarks themselves never run in the test suite); scripts/gpu_check.sh's checks
of its Python before anything runs."""
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, assert_user_error, run_script

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import run_all  # noqa: E402

SPECS = ["train:search64/fp32", "train:search64/amp", "train:plain256/fp32", "mask_update:", "prune:",
         "latency:resnet9", "latency:unet256"]


@pytest.mark.parametrize("only, expected", [
    ("latency", ["latency:resnet9", "latency:unet256"]),
    ("search64", ["train:search64/fp32", "train:search64/amp"]),
    ("train:plain256/fp32,prune", ["train:plain256/fp32", "prune:"]),
    ("resnet9,mask_update", ["mask_update:", "latency:resnet9"]),
])
def test_only_takes_row_kinds_rows_and_row_keys(only, expected):
    assert run_all.select_rows(SPECS, only) == expected


@pytest.mark.parametrize("argv, words", [
    (["--only", "bogus"], "--only bogus names no row"),
    (["--runs", "0"], "--runs"),
    (["--threads", "0"], "--threads"),
    (["--iters", "-1"], "--iters"),
    (["--onyl", "latency"], "did you mean --only"),
])
def test_bad_options_are_one_line_and_leave_the_results_file(tmp_path, argv, words):
    output = tmp_path / "results.md"
    output.write_text("earlier results\n")
    line = assert_user_error(run_script("benchmarks/run_all", argv + ["--output", output]))
    assert words in line
    assert output.read_text() == "earlier results\n"


def test_an_output_that_cannot_be_written_is_refused_before_any_row_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    proc = run_script("benchmarks/run_all", ["--only", "latency", "--output", blocker / "results.md"])
    assert "is a file, not a folder" in assert_user_error(proc)
    assert "latency:" not in proc.stderr  # no row started


GPU_CHECK = os.path.join(REPO, "scripts", "gpu_check.sh")


def _gpu_check(python):
    """scripts/gpu_check.sh run with GPU_CHECK_PYTHON=python; (exit status, output)."""
    env = dict(os.environ, GPU_CHECK_PYTHON=str(python))
    done = subprocess.run(["bash", GPU_CHECK], env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_gpu_check_names_the_packages_its_python_lacks(tmp_path):
    """A Python with a CUDA PyTorch but without some requirements (a GPU machine's own environment, offline)
    gets one line naming what to install, before anything runs."""
    site = tmp_path / "site"
    site.mkdir()
    # sys.modules[name] = None makes importlib.util.find_spec(name) answer None: the package looks absent
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['dominate'] = sys.modules['pytorch_fid'] = None\n")
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    status, out = _gpu_check(python)
    assert status == 2, out
    assert out.strip().splitlines() == [f"gpu-check: {python} (GPU_CHECK_PYTHON) lacks dominate pytorch-fid: install "
                                        "them into it (pip install dominate pytorch-fid) or use .venv (make install)"]


def test_gpu_check_refuses_a_missing_python(tmp_path):
    status, out = _gpu_check(tmp_path / "no-python")
    assert status == 2
    assert "no Python at" in out and "GPU_CHECK_PYTHON" in out and len(out.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_gpu_check_without_a_gpu_says_so_in_one_line():
    status, out = _gpu_check(sys.executable)
    assert status == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: the torch of")
    assert ("sees no GPU" if torch.version.cuda else "is a CPU build") in lines[0]


def test_gpu_check_refuses_what_is_not_a_python():
    status, out = _gpu_check("/bin/false")
    assert status == 2 and out.strip() == ("gpu-check: '/bin/false' (GPU_CHECK_PYTHON) is not a Python 3 interpreter: "
                                           "give one as GPU_CHECK_PYTHON=...")


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU this would run the whole check")
def test_gpu_check_takes_a_relative_python_from_where_it_was_started(tmp_path):
    os.symlink(sys.executable, tmp_path / "python")
    done = subprocess.run(["bash", GPU_CHECK], cwd=tmp_path, env=dict(os.environ, GPU_CHECK_PYTHON="./python"),
                          capture_output=True, text=True, timeout=120)
    assert "no Python at" not in done.stdout and "(GPU_CHECK_PYTHON" in done.stdout
