"""benchmarks/run_all.py's command line: which rows --only selects, and bad input refused with one line
before any row runs (the benchmarks themselves never run in the test suite)."""
import os
import sys

import pytest

from conftest import REPO, assert_user_error, run_script

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
