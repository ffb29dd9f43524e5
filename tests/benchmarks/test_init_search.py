"""benchmarks/init_search.py's table and command line (the benchmark itself never runs in the test
suite; its numbers are in docs/results.md)."""
import os
import sys

from tests.conftest import REPO, assert_user_error, run_script

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import init_search  # noqa: E402


def test_the_table_has_a_row_per_search_and_the_mean_and_spread_of_each_arm():
    row = {"L1": 0.05, "PSNR": 22.0, "macs": 30e6, "stop": 120}
    results = {("scratch", "0.002"): {0: dict(row, PSNR=20.0), 1: dict(row, PSNR=21.0, stop=None)},
               ("init", "0.002"): {0: dict(row, PSNR=24.0, stop=100), 1: dict(row, PSNR=25.0, stop=110)}}
    text = init_search.table(results, {"L1": 0.04, "PSNR": 26.0, "macs": 74e6}, {"L1": 0.03, "PSNR": 27.0}, 250,
                             37e6)
    lines = text.splitlines()
    assert lines[0].startswith("| model | search lr | seed | target reached at iteration (of 250) |")
    assert "| bicubic x4 input (no network) | | | | 0 | 0.0300 | 27.00 |" in lines
    assert "| search from random weights, pruned | 0.002 | 1 | not reached | 30.00M | 0.0500 | 21.00 |" in lines
    assert "| **search from the teacher (--init_path): mean ± half-range** | 0.002 | 2 seeds | 105.0 ± 5.0 | 30.00M | " \
           "0.0500 ± 0.0000 | 24.50 ± 0.50 |" in lines
    assert "| 2 seeds | 1 of 2 not reached |" in text
    assert text.rstrip().endswith("2 seeds: indicative, not a significance test.")


def test_bad_options_are_one_line_before_anything_runs(tmp_path):
    for argv, words in ((["--target", "1.5"], "--target must lie between 0 and 1"),
                        (["--iterations", "0"], "--iterations and --teacher_iterations must be at least 1"),
                        (["--seeds", "1", "1"], "--seeds must differ"),
                        (["--search_lrs", "0"], "--search_lrs and --teacher_lr must lie between 0 and 1")):
        line = assert_user_error(run_script("benchmarks/init_search", argv + ["--work", tmp_path / "work"]))
        assert words in line
        assert not (tmp_path / "work").exists()
