"""util/errors.py: a refused input is one line on stderr and exit 2, printed by rank 0 only under torchrun."""
import pytest

from util.errors import UserError, cli_entry, exit_on_user_error, launch_rank


@cli_entry
def _refuse():
    raise UserError("--foo 3 is refused: give --foo 2")


@pytest.mark.parametrize("rank, printed", [(None, True), ("0", True), ("1", False), ("3", False)])
def test_only_rank_0_prints_a_refused_option(monkeypatch, capsys, rank, printed):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
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
