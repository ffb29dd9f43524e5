"""util/cli.py: a refused input is one line on stderr and exit 2, printed under torchrun by one process
per machine (LOCAL_RANK 0), or by each process whose own problem it is; Ctrl-C says "interrupted" once,
also while torch is still being imported."""
import os

import pytest

from util.errors import UserError
from util.cli import cli_entry, exit_on_user_error, launch_rank


@cli_entry
def _refuse():
    raise UserError("--foo 3 is refused: give --foo 2")


def _launched_as(monkeypatch, rank, local_rank):
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize("rank, local_rank, printed", [
    (None, None, True), ("0", "0", True), ("1", "1", False), ("3", "3", False),
    ("4", "0", True),  # the first process of a second machine: its files may differ from rank 0's
    ("5", "1", False)])
def test_one_process_per_machine_prints_a_refused_option(monkeypatch, capsys, rank, local_rank, printed):
    _launched_as(monkeypatch, rank, local_rank)
    for call in (lambda: exit_on_user_error(UserError("--foo 3 is refused: give --foo 2")), _refuse):
        with pytest.raises(SystemExit) as exit_:
            call()
        assert exit_.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == ("error: --foo 3 is refused: give --foo 2\n" if printed else "")


def test_launch_rank(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert launch_rank() == 0
    monkeypatch.setenv("RANK", "2")
    assert launch_rank() == 2
    monkeypatch.setenv("RANK", "")
    assert launch_rank() == 0


@pytest.mark.parametrize("rank, expected", [("0", "error: LOCAL_RANK 0 is bad\n"), ("2", "error: rank 2: LOCAL_RANK 2 is bad\n")])
def test_a_problem_of_one_process_is_printed_by_that_process(monkeypatch, capsys, rank, expected):
    _launched_as(monkeypatch, rank, rank)
    with pytest.raises(SystemExit) as exit_:
        exit_on_user_error(UserError(f"LOCAL_RANK {rank} is bad", every_rank=True))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == expected


@cli_entry
def _interrupted():
    raise KeyboardInterrupt


@pytest.mark.parametrize("local_rank, printed", [(None, True), ("0", True), ("1", False)])
def test_one_process_per_machine_says_interrupted(monkeypatch, capsys, local_rank, printed):
    _launched_as(monkeypatch, local_rank, local_rank)
    with pytest.raises(SystemExit) as exit_:
        _interrupted()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == ("interrupted\n" if printed else "")


@cli_entry
def _interrupted_and_reported():
    err = KeyboardInterrupt()
    err.reported = True  # as the Trainer marks it once it wrote how to resume
    raise err


def test_no_bare_interrupted_line_after_the_resume_line(monkeypatch, capsys):
    _launched_as(monkeypatch, None, None)
    with pytest.raises(SystemExit) as exit_:
        _interrupted_and_reported()
    assert exit_.value.code == 130 and capsys.readouterr().err == ""


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="watches the import through /proc (Linux)")
@pytest.mark.parametrize("script", ["train", "test", "prune", "export", "scripts/get_real_stat", "scripts/demo"])
def test_ctrl_c_while_torch_imports_ends_without_a_traceback(script):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    proc = subprocess.Popen([sys.executable, os.path.join(REPO, f"{script}.py"), "-h"], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    # torch's shared library is mapped early in `import torch`, whose Python part then loads for a while
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/maps") as maps:
            if "libtorch" in maps.read():
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert (proc.returncode, err.strip()) == (130, "interrupted"), (proc.returncode, err[-2000:], out[-500:])
