"""What a run leaves in its folder on short runs, and the messages around an existing run folder."""
import os

from tests.conftest import run_main, tiny_args


def test_short_run_still_writes_the_html_page_and_a_loss_line(toy_root, tmp_path):
    """--display_freq 400 and --print_freq 100 (the defaults) are longer than a 4-image epoch: the
    epoch's last batch reports anyway."""
    argv = tiny_args(tmp_path, "short", display_freq=400, print_freq=100)
    assert run_main("train", argv) == 0
    web = tmp_path / "short" / "web"
    assert (web / "index.html").is_file()
    assert any(name.startswith("epoch001_") for name in os.listdir(web / "images"))
    lines = (tmp_path / "short" / "loss_log.txt").read_text().splitlines()
    assert any(line.startswith("(epoch: 1, iters: 4") for line in lines)


def test_a_fresh_run_on_an_existing_name_warns(toy_root, tmp_path, caplog):
    argv = tiny_args(tmp_path, "again")
    assert run_main("train", argv) == 0
    assert "already holds checkpoints" not in caplog.text
    assert run_main("train", argv) == 0
    assert "already holds checkpoints of an earlier run" in caplog.text


def test_test_py_names_the_model_of_the_checkpoint(toy_root, tmp_path, capsys):
    assert run_main("train", tiny_args(tmp_path, "p2p", model="pix2pix")) == 0
    argv = tiny_args(tmp_path, "p2p")  # --model cyclegan, as a user who forgot --model pix2pix
    argv += ["--load_path", str(tmp_path / "p2p" / "checkpoints" / "latest.pth")]
    assert run_main("test", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--model pix2pix" in err and len(err.splitlines()) == 1
