"""The demo pipeline (teacher, search, prune, fine-tune, test) at the tiny preset, and its report opened
in headless Chromium to check that every image on it loads."""
import importlib.util
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO
from pipeline.checkpoint import load_checkpoint

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _demo():
    spec = importlib.util.spec_from_file_location("dmad_demo", os.path.join(REPO, "scripts", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(toy_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    page = _demo().run_pipeline("tiny", str(base / "work"), str(base / "report"))
    return base, page


def test_pipeline_writes_report_with_compression(report):
    base, page = report
    assert os.path.isfile(page)
    html = open(page).read()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(sources) >= 4 * 4 + 2  # two directions x two samples x four columns, kept-channel plots
    for src in sources:
        assert os.path.getsize(os.path.join(os.path.dirname(page), src)) > 0, src
    pruned = load_checkpoint(str(base / "work" / "student" / "checkpoints" / "model_0.pth"))
    for name in ("G_A", "G_B"):
        rep = pruned["prune_report"][name]
        assert rep["macs_after"] < rep["macs_before"]
        assert rep["macs_ratio"] > 1
    for heading in ("Compression", "CPU latency", "Kept channels", "Translations"):
        assert heading in html
    # the fine-tuned student was trained with both distillation terms
    log = open(base / "work" / "student" / "loss_log.txt").read()
    assert "attention_distill" in log and "discriminator_distill" in log


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_images_load_in_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium): cannot open the report in a browser")
    _, page = report
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    total = re.search(r'data-images-total="(\d+)"', result.stdout)
    loaded = re.search(r'data-images-loaded="(\d+)"', result.stdout)
    assert total and loaded, "the page's load handler did not run"
    assert int(total.group(1)) >= 18
    assert loaded.group(1) == total.group(1), f"{loaded.group(1)} of {total.group(1)} images loaded"


class _Stop(Exception):
    pass


def test_a_second_run_starts_over(report, monkeypatch, caplog, tmp_path):
    """Running the demo again on the same folders removes the earlier run's stage folders and trains
    the teacher afresh (instead of refusing the teacher's folder); stopped after that first stage."""
    base, _ = report
    work = tmp_path / "work"
    shutil.copytree(base / "work", work)
    (work / "notes.txt").write_text("kept")
    demo = _demo()
    real = demo._entry
    done = []

    def first_stage_only(name):
        if done:
            raise _Stop
        done.append(name)
        return real(name)

    monkeypatch.setattr(demo, "_entry", first_stage_only)
    caplog.set_level("INFO")
    with pytest.raises(_Stop):
        demo.run_pipeline("tiny", str(work), str(tmp_path / "report"))
    assert done == ["train"]
    assert f"{work} holds an earlier demo run: starting over (removing teacher, search, student, results)" in caplog.text
    assert sorted(os.listdir(work)) == ["notes.txt", "teacher"]
    assert os.path.isfile(work / "teacher" / "checkpoints" / "latest.pth")


def test_make_clean_demo_removes_the_demo_folders(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "teacher").mkdir(parents=True)
    out.mkdir()
    (out / "index.html").write_text("")
    (tmp_path / "other").write_text("")
    subprocess.run(["make", "-s", "-C", REPO, "clean-demo", f"DEMO_WORK={work}", f"DEMO_OUT={out}"], check=True,
                   capture_output=True, timeout=60)
    assert sorted(os.listdir(tmp_path)) == ["other"]
