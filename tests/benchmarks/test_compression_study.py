"""The compression study (benchmarks/compression_study.py) at a tiny budget on the toy aligned data: every
model runs through train.py / prune.py / test.py, the page has the table, the Pareto plot, the reading
and the samples; plus the two baselines' constructions on their own."""
import importlib.util
import json
import os
import re

import pytest
import torch

from tests.conftest import REPO, randomise


def _study():
    spec = importlib.util.spec_from_file_location("dmad_compression_study",
                                                  os.path.join(REPO, "benchmarks", "compression_study.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study(toy_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("study")
    module = _study()
    module.main(["--task", "toy", "--quick", "--iterations", "2", "--work", str(base / "work"),
                 "--out", str(base / "out")])
    return module, base


def test_quick_study_runs_every_model_and_writes_the_page(study):
    module, base = study
    page = open(base / "out" / "index.html").read()
    names = module.Study.model_names()
    assert len(names) == 1 + 4 * len(module.LEVELS)
    data = json.load(open(base / "out" / "results.json"))
    assert data["seeds"] == [0, 1] and data["mode"] == "quick"
    for seed in (0, 1):
        for name in names:
            # every model was trained and tested by the project's entry points
            assert os.path.isfile(base / "work" / f"seed{seed}" / name / "checkpoints" / "latest.pth"), name
            metrics = json.load(open(next((base / "work" / f"seed{seed}" / "results" / name).glob("test_*/metrics.json"))))
            assert {"L1", "PSNR", "SSIM", "macs", "params"} <= set(metrics), name
            record = data["summary"][name]["per_seed"][str(seed)]
            assert record["L1"] == pytest.approx(metrics["L1"]["AtoB"]) and record["latency_ms"] > 0
    # the table: one row per model with MACs, params, latency, L1, PSNR, SSIM
    table = page.split("<h2>Models</h2>", 1)[1].split("</table>", 1)[0]
    assert all(h in table for h in ("MACs (M)", "params (K)", "CPU latency (ms)", "L1", "PSNR (dB)", "SSIM"))
    rows = re.findall(r"<tr>\s*<td>([a-z0-9_]+)</td>", table)
    assert rows == names
    teacher = data["summary"]["teacher"]["mean"]
    for name in names[1:]:
        assert data["summary"][name]["mean"]["macs"] < teacher["macs"], name
    # baseline A is matched to DMAD's MACs within 5 %; baseline B and the ablation have DMAD's widths
    for level in module.LEVELS:
        dmad = data["summary"][f"dmad_{level}x"]
        assert abs(data["summary"][f"thin_{level}x"]["mean"]["macs"] / dmad["mean"]["macs"] - 1) <= 0.05
        assert data["summary"][f"l1prune_{level}x"]["widths"] == dmad["widths"]
        assert data["summary"][f"nodistill_{level}x"]["widths"] == dmad["widths"]
    # the reading: a sentence per level naming the run-to-run spread (then one when students beat the
    # teacher, which is not converged at such a budget), and the goal's verdict
    levels = len(module.LEVELS)
    assert all("spread" in s for s in data["reading"][:levels])
    beaten = any(v["mean"]["L1"] < teacher["L1"] for n, v in data["summary"].items() if n != "teacher")
    assert len(data["reading"]) == levels + beaten and (not beaten or "not converged" in data["reading"][-1])
    # the goal's verdict is inconclusive, whatever the numbers (the study has no floors and unequal arms)
    assert "Goal" in page and data["goal"].startswith("Inconclusive") and data["goal_reached"] is None
    # the plot and the samples are files next to the page
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert "images/pareto.png" in sources
    assert len(sources) >= 1 + len(module.LEVELS) * 2 * 7
    for src in sources:
        assert os.path.getsize(base / "out" / src) > 0, src


def test_a_second_run_reuses_finished_stages(study):
    module, base = study
    before = os.path.getmtime(base / "work" / "seed0" / "teacher" / "checkpoints" / "latest.pth")
    module.main(["--task", "toy", "--quick", "--iterations", "2", "--work", str(base / "work"),
                 "--out", str(base / "out2")])
    assert os.path.getmtime(base / "work" / "seed0" / "teacher" / "checkpoints" / "latest.pth") == before
    assert json.load(open(base / "out2" / "results.json"))["reused_stages"] > 0


def test_l1_norm_ranking_and_uniform_widths():
    from models.families.unet import UnetGenerator

    module = _study()
    net = randomise(UnetGenerator(3, 3, ngf=8, num_downs=5), 0)
    ranking = module.l1_norm_ranking(net)
    for name, order in ranking.items():
        conv = net.structure().writers(name)[0]
        weight = net.get_submodule(conv.name).weight.detach().abs()
        norms = weight.sum(dim=(0, 2, 3) if conv.transposed else (1, 2, 3))
        assert torch.equal(order, torch.argsort(norms, descending=True, stable=True))
        assert sorted(order.tolist()) == list(range(net.widths[name]))
    widths = module.uniform_widths(net.structure(), 0.5)
    assert widths == {name: max(1, round(0.5 * w)) for name, w in net.widths.items()}
