"""Tests of report/visualizer.py, including a real local visdom server: losses, images and the mask search
sent to visdom, the loss log, and the figures (the HTML page: test_html.py; images: test_image.py)."""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from report.visualizer import Visualizer, mask_search_figure, plot_kept_channels
from tests.conftest import REPO
from tests.report.conftest import _opt, _records, _visuals

ROOT = Path(REPO)
SERVER_START_TIMEOUT_S = 30


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def visdom_server(tmp_path_factory):
    """A real visdom server on 127.0.0.1, started through scripts/start_visdom.sh; yields its port."""
    pytest.importorskip("visdom", reason="visdom is not installed in this interpreter: the live-server test "
                                         "needs it (pip install visdom)")
    tmp = tmp_path_factory.mktemp("visdom")
    port = _free_port()
    log_path = tmp / "server.log"
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", PYTHON=sys.executable)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "start_visdom.sh"), "-env_path", str(tmp / "env"),
                                 "-bind_local"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _answers(port):
            if proc.poll() is not None:
                pytest.fail(f"visdom server exited with {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"visdom server did not answer within {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _client(port, env):
    import visdom

    with warnings.catch_warnings():  # the stock client calls the deprecated Logger.warn
        warnings.simplefilter("ignore", DeprecationWarning)
        return visdom.Visdom(server="http://127.0.0.1", port=port, env=env, raise_exceptions=True,
                             use_incoming_socket=False)


def _window(client, win, env):
    text = client.get_window_data(win=win, env=env)
    assert text, f"window {win!r} not found in env {env!r}"
    return json.loads(text)


# --------------------------------------------------------------------------------------------------
# live visdom


def test_visdom_receives_losses_images_and_mask_search(visdom_server, tmp_path):
    env = "dmad_test_grid"
    vis = Visualizer(_opt(tmp_path, display_id=1, display_port=visdom_server, display_env=env))
    assert vis.visdom_enabled

    vis.plot_current_losses(1, 0.5, {"G_A": 0.25, "D_A": 1.5})
    vis.plot_current_losses(1, 1.0, {"G_A": 0.125, "D_A": 0.75})
    vis.display_current_results(_visuals(), epoch=1, save_result=True)
    vis.plot_mask_search(_records())
    assert vis.visdom_enabled, "a send failed against a live server"

    client = _client(visdom_server, env)
    losses = _window(client, "1", env)
    traces = {t["name"]: t for t in losses["content"]["data"]}
    assert set(traces) == {"G_A", "D_A"}
    assert traces["G_A"]["x"] == pytest.approx([1.5, 2.0])
    assert traces["G_A"]["y"] == pytest.approx([0.25, 0.125])
    assert traces["D_A"]["y"] == pytest.approx([1.5, 0.75])

    grid = _window(client, "2", env)
    assert grid["content"]["src"].startswith("data:image/png;base64,")
    labels = _window(client, "3", env)
    for label in ("real_A", "fake_B", "real_B"):
        assert f"<td>{label}</td>" in labels["content"]
    mask = _window(client, "4", env)
    assert mask["content"]["src"].startswith("data:image/png;base64,")
    assert mask["title"] == "run mask search"


def test_visdom_separate_windows_when_ncols_is_zero(visdom_server, tmp_path):
    env = "dmad_test_separate"
    vis = Visualizer(_opt(tmp_path, display_id=10, display_ncols=0, display_port=visdom_server, display_env=env))
    vis.display_current_results(_visuals(), epoch=1, save_result=False)
    client = _client(visdom_server, env)
    titles = [_window(client, str(win), env)["title"] for win in (11, 12, 13)]
    assert titles == ["real_A", "fake_B", "real_B"]


def test_send_failure_warns_once_and_disables_visdom(visdom_server, tmp_path, caplog, monkeypatch):
    vis = Visualizer(_opt(tmp_path, display_id=1, display_port=visdom_server, display_env="dmad_test_fail"))
    assert vis.visdom_enabled

    def broken(*args, **kwargs):
        raise ConnectionError("Error connecting to Visdom server")

    monkeypatch.setattr(vis.vis, "line", broken)
    with caplog.at_level(logging.WARNING):
        vis.plot_current_losses(1, 0.1, {"G": 1.0})
        vis.plot_current_losses(1, 0.2, {"G": 2.0})
        vis.display_current_results(_visuals(), epoch=1, save_result=True)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert "scripts/start_visdom.sh" in warned[0].getMessage()
    assert not vis.visdom_enabled
    assert vis.plot_data["Y"]["G"] == [1.0, 2.0]  # history kept without visdom


# --------------------------------------------------------------------------------------------------
# no server


def test_unreachable_server_warns_once_and_calls_keep_working(tmp_path, caplog):
    port = _free_port()  # nothing listens there
    with caplog.at_level(logging.WARNING):
        vis = Visualizer(_opt(tmp_path, display_id=1, display_port=port))
        vis.reset()
        vis.plot_current_losses(1, 0.5, {"G": 1.0})
        vis.display_current_results(_visuals(), epoch=1, save_result=True)
        vis.plot_mask_search(_records())
        message = vis.print_current_losses(1, 10, {"G": 1.0}, 0.1, 0.01)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    text = warned[0].getMessage()
    assert f"127.0.0.1:{port}" in text and "bash scripts/start_visdom.sh" in text
    assert not vis.visdom_enabled
    assert message.startswith("(epoch: 1, iters: 10,")
    web = tmp_path / "ckpt" / "run" / "web"
    assert (web / "images" / "epoch001_fake_B.png").is_file()
    assert (web / "images" / "mask_search.png").is_file()


# --------------------------------------------------------------------------------------------------
# loss log and plot


def test_loss_log_format_and_file(tmp_path):
    vis = Visualizer(_opt(tmp_path))
    message = vis.print_current_losses(3, 200, {"G_A": 0.25, "D_A": torch.tensor(1.5)}, 0.1234, 0.01)
    assert message == "(epoch: 3, iters: 200, time: 0.123, data: 0.010) G_A: 0.250 D_A: 1.500 "
    lines = (tmp_path / "ckpt" / "run" / "loss_log.txt").read_text().splitlines()
    assert lines[0].startswith("================ Training Loss (")
    assert lines[-1] == message


def test_plot_losses_history_handles_new_names(tmp_path):
    vis = Visualizer(_opt(tmp_path))
    vis.plot_current_losses(1, 0.25, {"G": 1.0})
    vis.plot_current_losses(1, 0.5, {"G": 2.0, "mask_weight": 3.0})
    assert vis.plot_data["X"] == [1.25, 1.5]
    assert vis.plot_data["Y"]["G"] == [1.0, 2.0]
    assert np.isnan(vis.plot_data["Y"]["mask_weight"][0]) and vis.plot_data["Y"]["mask_weight"][1] == 3.0


# --------------------------------------------------------------------------------------------------
# figures


def _png_ok(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert arr.std() > 0, "blank figure"
    return arr


def test_mask_search_figure_writes_png(tmp_path):
    records = _records()
    # a layer that shows up late and one with an unknown width must not break the heatmap
    records.append({"step": 2.5, "bound": 0.0, "layers": {"down1": 9, "up1": 4}, "widths": {"down1": 16}})
    out = mask_search_figure(records, tmp_path / "sub" / "mask_search.png")
    assert Path(out) == tmp_path / "sub" / "mask_search.png"
    _png_ok(out)
    with pytest.raises(ValueError):
        mask_search_figure([], tmp_path / "empty.png")


def test_plot_kept_channels_writes_png(tmp_path):
    out = plot_kept_channels({"down1": 10, "down2": 8}, {"down1": 16, "down2": 32}, tmp_path / "kept.png",
                             "G_A kept channels")
    _png_ok(out)
