"""The training loop (train.py, pipeline/trainer.py): tiny toy runs (32 px, ngf/ndf 8, 4 images, CPU),
run in-process, with their checkpoints and test.py on them, the learning-rate policies in a run,
epochs, saving and printing, a resume that is bit-identical, and failing commands that damage nothing."""
import json
import os
import shutil
import types

import pytest
import torch
from PIL import Image

import options
from models import create_model
from models.base_model import BaseModel
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from pipeline.checkpoint import load_checkpoint, load_generator
from tests.conftest import ALIGNED, UNALIGNED, hash_tree, run_main, tiny_args
from tests.helpers import schedule
from tests.pipeline.conftest import load
from util.errors import UserError
from util.flops import count_macs_params, format_count


LOSSES = {"cyclegan": ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"),
          "pix2pix": ("G_GAN", "G_L1", "D_real", "D_fake")}
VISUALS = {"cyclegan": ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"),
           "pix2pix": ("real_A", "fake_B", "real_B")}
NETS = {"cyclegan": {"G_A", "G_B", "D_A", "D_B"}, "pix2pix": {"G", "D"}}


def train(ckpt, name, model="cyclegan", **extra):
    return run_main("train", tiny_args(ckpt, name, model, **extra))


def lr_lines(run_dir):
    with open(os.path.join(run_dir, "logger.log")) as handle:
        return [line for line in handle if "learning rate = " in line]


def assert_same_tree(a, b, path="state"):
    """Tensors compared with torch.equal, everything else with ==, recursively."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


# ---------------------------------------------------------------- a full toy run per family

@pytest.fixture(scope="module", params=["cyclegan", "pix2pix"])
def toy_run(request, toy_root, tmp_path_factory):
    """1 epoch, --continue_train for a second, then test.py; returns the paths and exit codes."""
    model = request.param
    tmp = tmp_path_factory.mktemp(model)
    ckpt, results = tmp / "ckpt", tmp / "results"
    codes = [train(ckpt, "toy", model, display_freq=1, print_freq=2),
             train(ckpt, "toy", model, display_freq=1, print_freq=2, n_epochs=2, continue_train=True)]
    argv = tiny_args(ckpt, "toy", model) + ["--results_dir", str(results)]
    codes.append(run_main("test", argv))
    return types.SimpleNamespace(model=model, ckpt=ckpt, results=results, dir=ckpt / "toy", codes=codes,
                                 test_argv=argv)


def test_toy_run_writes_everything(toy_run):
    assert toy_run.codes == [0, 0, 0]
    run = toy_run.dir
    for rel in ("opt.txt", "logger.log", "loss_log.txt", "checkpoints/model_1.pth", "checkpoints/model_2.pth",
                "checkpoints/latest.pth", "web/index.html"):
        assert (run / rel).is_file(), rel
    for epoch in (1, 2):
        for label in VISUALS[toy_run.model]:
            assert (run / "web" / "images" / f"epoch{epoch:03d}_{label}.png").is_file()
    html = (run / "web" / "index.html").read_text()
    assert "epoch002_fake_B.png" in html and "epoch001_fake_B.png" in html
    assert not list(run.rglob(".*"))  # no temporary files left by the atomic writes


def test_toy_run_logs(toy_run):
    opt_txt = (toy_run.dir / "opt.txt").read_text()
    assert "ngf: 8" in " ".join(opt_txt.split()) and "[default: 64]" in opt_txt
    log = (toy_run.dir / "logger.log").read_text()
    assert log.count("running on cpu") == 2 and log.count("resuming from") == 1  # one line per run
    assert "Epoch:1 " in log and "Epoch:2 " in log and "End of epoch 2 / 2" in log
    loss_lines = [line for line in (toy_run.dir / "loss_log.txt").read_text().splitlines()
                  if line.startswith("(epoch:")]
    assert len(loss_lines) == 4  # print_freq 2, 4 images per epoch, 2 epochs
    assert loss_lines[-1].startswith("(epoch: 2, iters: 8,")
    for name in LOSSES[toy_run.model]:
        assert f" {name}: " in loss_lines[0]


def test_checkpoint_contents(toy_run):
    state = load(toy_run.dir / "checkpoints" / "latest.pth")
    for key in ("format", "version", "nets", "optimizers", "epoch", "iteration", "rng", "options"):
        assert key in state, key
    assert state["format"] == "dmad" and isinstance(state["version"], int)
    assert state["epoch"] == 2 and state["iteration"] == 8 and state["model"] == toy_run.model
    assert set(state["nets"]) == NETS[toy_run.model]
    assert set(state["optimizers"]) == {"G", "D"}
    assert state["optimizers"]["G"]["state"], "Adam moments are saved"
    assert state["options"]["ngf"] == 8 and state["options"]["model"] == toy_run.model
    assert torch.is_tensor(state["rng"]["torch"])
    if toy_run.model == "cyclegan":
        assert set(state["pools"]) == {"A", "B"} and len(state["pools"]["A"]["images"]) == 8
    first = load(toy_run.dir / "checkpoints" / "model_1.pth")
    assert first["epoch"] == 1 and first["iteration"] == 4
    name = "G_A" if toy_run.model == "cyclegan" else "G"
    assert any(not torch.equal(first["nets"][name][k], state["nets"][name][k]) for k in first["nets"][name])


def test_test_py_results(toy_run):
    page = toy_run.results / "toy" / "test_2"
    assert (page / "index.html").is_file()
    report = json.loads((page / "metrics.json").read_text())
    assert report["checkpoint"].endswith(os.path.join("checkpoints", "latest.pth"))
    state = load(toy_run.dir / "checkpoints" / "latest.pth")
    directions = ("AtoB", "BtoA") if toy_run.model == "cyclegan" else ("AtoB",)
    assert set(report["macs"]) == set(report["params"]) == set(directions)
    for direction in directions:
        net = load_generator(str(toy_run.dir / "checkpoints" / "latest.pth"), direction)
        assert (report["macs"][direction], report["params"][direction]) == count_macs_params(net, (1, 3, 32, 32))
        assert report["macs"][direction] > 0
    assert state["epoch"] == 2
    fakes = list((page / "images" / "fake_B").glob("*.png"))
    assert len(fakes) == 4  # the test split, capped by --max_dataset_size 4


def test_load_generator(toy_run):
    path = str(toy_run.dir / "checkpoints" / "latest.pth")
    state = load(path)
    expected = {"cyclegan": (ResnetGenerator, {"AtoB": "G_A", "BtoA": "G_B"}),
                "pix2pix": (UnetGenerator, {"AtoB": "G", "BtoA": "G"})}[toy_run.model]
    for direction, name in expected[1].items():
        net = load_generator(path, direction)
        assert type(net) is expected[0] and not net.training
        assert all(not m.training for m in net.modules())
        assert net.ngf == 8 and dict(net.widths) == state["configs"][name]["widths"]
        assert_same_tree(net.state_dict(), state["nets"][name])
    if toy_run.model == "pix2pix":
        assert net.num_downs == 5  # 32 px
    with pytest.raises(UserError):
        load_generator(path, "sideways")


def test_test_py_prefers_model_best(toy_run, tmp_path, capsys):
    shutil.copy(toy_run.dir / "checkpoints" / "model_1.pth", toy_run.dir / "model_best.pth")
    capsys.readouterr()
    try:
        argv = tiny_args(toy_run.ckpt, "toy", toy_run.model) + ["--results_dir", str(tmp_path)]
        assert run_main("test", argv) == 0
    finally:
        os.remove(toy_run.dir / "model_best.pth")
    report = json.loads((tmp_path / "toy" / "test_best" / "metrics.json").read_text())
    assert report["checkpoint"].endswith("model_best.pth")
    # the per-generator line writes the 32 px counts in a unit that shows them (not 0.00G)
    out = capsys.readouterr().out
    macs, params = report["macs"]["AtoB"], report["params"]["AtoB"]
    assert macs < 1e8 and "0.00G" not in out
    assert f"AtoB generator | Params: {format_count(params)} | MACs: {format_count(macs)}" in out


def test_test_py_ntest_and_aspect_ratio(toy_run, tmp_path):
    argv = tiny_args(toy_run.ckpt, "toy", toy_run.model) + [
        "--results_dir", str(tmp_path), "--ntest", "3", "--aspect_ratio", "2.0",
        "--load_path", str(toy_run.dir / "checkpoints" / "model_1.pth")]
    assert run_main("test", argv) == 0
    page = tmp_path / "toy" / "test_1"
    fakes = sorted((page / "images" / "fake_B").glob("*.png"))
    assert len(fakes) == 3
    with Image.open(fakes[0]) as image:
        assert image.size == (64, 32)  # width x height: 32 px results stretched to aspect ratio 2
    assert json.loads((page / "metrics.json").read_text())["checkpoint"].endswith("model_1.pth")


# ---------------------------------------------------------------- learning-rate schedule in a run

@pytest.mark.parametrize("policy", ["step", "cosine", "plateau"])
def test_policies_in_a_run(policy, toy_root, tmp_path):
    assert train(tmp_path, "lr", lr_policy=policy, lr_decay_iters=1, n_epochs=2) == 0
    factor = schedule(lr_policy=policy, lr_decay_iters=1, n_epochs=2, n_epochs_decay=0).factor(2)
    lines = lr_lines(tmp_path / "lr")
    assert len(lines) == 2 and f"learning rate = {2e-4 * factor:.7f}" in lines[1]
    state = load(tmp_path / "lr" / "checkpoints" / "latest.pth")
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * factor)


def test_resume_with_a_longer_schedule_recomputes_the_rate(toy_root, tmp_path):
    assert train(tmp_path, "lr", n_epochs=1, n_epochs_decay=1) == 0
    saved = load(tmp_path / "lr" / "checkpoints" / "latest.pth")
    assert saved["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # 1 - 1/2
    assert train(tmp_path, "lr", n_epochs=2, n_epochs_decay=2, continue_train=True) == 0
    lines = lr_lines(tmp_path / "lr")
    assert len(lines) == 4
    assert "Epoch:3 " in lines[2] and f"learning rate = {2e-4 * 2 / 3:.7f}" in lines[2]
    assert "Epoch:4 " in lines[3] and f"learning rate = {2e-4 / 3:.7f}" in lines[3]
    state = load(tmp_path / "lr" / "checkpoints" / "latest.pth")
    for optimizer in state["optimizers"].values():
        assert optimizer["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)


@pytest.mark.parametrize("decay, warned", [(2, True), (0, False)])
def test_a_cosine_schedule_that_rises_again_is_said(tmp_path, capsys, decay, warned):
    argv = tiny_args(tmp_path, "cos", lr_policy="cosine", n_epochs=1, n_epochs_decay=decay, max_dataset_size=1)
    assert run_main("train", argv) == 0
    out = capsys.readouterr()
    assert ("rises again after it: epochs 3-3 train at rising rates" in out.out + out.err) == warned


# ---------------------------------------------------------------- epochs, saving, printing

def test_epoch_count_overrides_the_stored_epoch(toy_root, tmp_path):
    assert train(tmp_path, "ec") == 0
    assert train(tmp_path, "ec", continue_train=True, epoch_count=5, n_epochs=5) == 0
    ckpts = tmp_path / "ec" / "checkpoints"
    assert (ckpts / "model_5.pth").is_file()
    assert not any((ckpts / f"model_{e}.pth").exists() for e in (2, 3, 4))
    state = load(ckpts / "latest.pth")
    assert state["epoch"] == 5 and state["iteration"] == 8  # one resumed epoch of 4 images
    log = (tmp_path / "ec" / "logger.log").read_text()
    assert "Epoch:5 " in log and "Epoch:2 " not in log


def test_continue_train_takes_a_value(toy_root, tmp_path):
    assert train(tmp_path, "ct") == 0
    # starts afresh: epoch 1 again (replacing the checkpoints needs --overwrite)
    assert train(tmp_path, "ct", continue_train="False", overwrite=True) == 0
    log = (tmp_path / "ct" / "logger.log").read_text()
    assert "resuming from" not in log and log.count("Epoch:1 ") == 2
    assert train(tmp_path, "ct", continue_train="True", n_epochs=2) == 0
    log = (tmp_path / "ct" / "logger.log").read_text()
    assert log.count("resuming from") == 1 and "Epoch:2 " in log
    assert load(tmp_path / "ct" / "checkpoints" / "latest.pth")["epoch"] == 2


def test_save_epoch_freq(toy_root, tmp_path):
    assert train(tmp_path, "sf", save_epoch_freq=2, n_epochs=2, no_html=True, display_freq=1) == 0
    ckpts = tmp_path / "sf" / "checkpoints"
    assert (ckpts / "model_2.pth").is_file() and not (ckpts / "model_1.pth").exists()
    assert load(ckpts / "latest.pth")["epoch"] == 2
    assert not (tmp_path / "sf" / "web" / "index.html").exists()  # --no_html


def test_print_freq_not_a_multiple_of_the_batch_size(toy_root, tmp_path):
    # batches of 3 and 1 image: the image counter goes 3, 4, 7, 8 and crosses 5 once (at 7); epoch 1
    # crosses nothing, so its last batch reports instead
    assert train(tmp_path, "pf", batch_size=3, print_freq=5, n_epochs=2) == 0
    lines = [line for line in (tmp_path / "pf" / "loss_log.txt").read_text().splitlines()
             if line.startswith("(epoch:")]
    assert len(lines) == 2
    assert lines[0].startswith("(epoch: 1, iters: 4,") and lines[1].startswith("(epoch: 2, iters: 7,")


# ---------------------------------------------------------------- resume is bit-identical

@pytest.mark.parametrize("model,threads", [("cyclegan", 0), ("pix2pix", 0), ("cyclegan", 2)])
def test_resume_is_bit_identical(model, threads, toy_root, tmp_path):
    """Epochs 1-2 of `--n_epochs 2` in one go == epoch 1 of `--n_epochs 1` + `--continue_train` (the
    linear schedule gives epoch 1 the same rate in both)."""
    common = dict(num_threads=threads, n_epochs_decay=0)
    assert train(tmp_path, "whole", model, n_epochs=2, **common) == 0
    assert train(tmp_path, "split", model, n_epochs=1, **common) == 0
    halfway = load(tmp_path / "split" / "checkpoints" / "latest.pth")
    assert train(tmp_path, "split", model, n_epochs=2, continue_train=True, **common) == 0
    whole = load(tmp_path / "whole" / "checkpoints" / "latest.pth")
    split = load(tmp_path / "split" / "checkpoints" / "latest.pth")
    for key in ("nets", "optimizers", "epoch", "iteration", "lr_state") + (("pools",) if model == "cyclegan" else ()):
        assert_same_tree(whole[key], split[key], key)
    assert_same_tree(whole["rng"]["torch"], split["rng"]["torch"])
    name = "G_A" if model == "cyclegan" else "G"
    assert any(not torch.equal(halfway["nets"][name][k], whole["nets"][name][k]) for k in whole["nets"][name])


def test_the_resume_command_names_the_script_as_it_was_started(monkeypatch):
    from pipeline import trainer as training

    opt = types.SimpleNamespace(script="train", argv=["--dataroot", "my data", "--name", "x"])
    monkeypatch.setattr("sys.argv", ["../dmad/train.py"])  # started from another folder
    assert training.resume_command(opt) == "python ../dmad/train.py --dataroot 'my data' --name x --continue_train"
    monkeypatch.setattr("sys.argv", ["scripts/demo.py"])  # another entry point ran the stage
    assert training.resume_command(opt).startswith("python train.py ")


# ---------------------------------------------------------------- bad checkpoints and failing commands

@pytest.fixture(scope="module")
def saved_runs(toy_root, tmp_path_factory):
    """A cyclegan run and a pix2pix run of one epoch (ngf 8)."""
    ckpt = tmp_path_factory.mktemp("saved")
    assert train(ckpt, "cg") == 0
    assert train(ckpt, "p2p", "pix2pix") == 0
    return ckpt


FAILING = {
    "other model": lambda ckpt: dict(continue_train=True, load_path=ckpt / "p2p" / "checkpoints" / "latest.pth"),
    "wider G": lambda ckpt: dict(continue_train=True, ngf=16),
    "wider D": lambda ckpt: dict(continue_train=True, ndf=16),
    "6 blocks": lambda ckpt: dict(continue_train=True, netG="resnet_6blocks"),
    "missing load_path": lambda ckpt: dict(continue_train=True, load_path=ckpt / "missing.pth"),
    "gan_mode": lambda ckpt: dict(gan_mode="nonsense"),
    "no gpu": lambda ckpt: dict(gpu_ids=7),
    "not a checkpoint": lambda ckpt: dict(continue_train=True, load_path=ckpt / "cg" / "opt.txt"),
}
# a path the user gave is named by its option
NAMED = {"missing load_path": "error: --load_path ", "not a checkpoint": "error: --load_path "}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_failing_command_damages_nothing(case, saved_runs, capsys):
    before = hash_tree(saved_runs)
    assert train(saved_runs, "cg", **FAILING[case](saved_runs)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(NAMED.get(case, "error:"))
    assert hash_tree(saved_runs) == before


def test_wrong_checkpoint_is_never_partly_loaded(saved_runs):
    import options

    argv = tiny_args(saved_runs, "cg", "cyclegan", ndf=16)
    model = create_model(options.parse("train", argv), torch.device("cpu"))
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    state = load_checkpoint(str(saved_runs / "cg" / "checkpoints" / "latest.pth"))
    with pytest.raises(UserError):
        model.load_state_dict(state, "latest.pth")
    # same architecture recorded, but one network's tensors do not fit: nothing is loaded either
    model = create_model(options.parse("train", tiny_args(saved_runs, "cg")), torch.device("cpu"))
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    state["nets"]["D_B"] = {k: v[..., :1] if v.dim() == 4 else v for k, v in state["nets"]["D_B"].items()}
    with pytest.raises(UserError):
        model.load_state_dict(state, "latest.pth")
    assert_same_tree(before, model.nets.state_dict())


def test_cyclegan_with_different_channel_counts_trains_and_tests(toy_root, tmp_path):
    """--input_nc 1 --output_nc 3: G_B maps 3 channels back to 1 and D_B judges 1-channel images."""
    argv = tiny_args(tmp_path, "gray", input_nc=1, lambda_identity=0)
    assert run_main("train", argv) == 0

    ckpt = str(tmp_path / "gray" / "checkpoints" / "latest.pth")
    assert load_generator(ckpt, "AtoB")(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert load_generator(ckpt, "BtoA")(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert run_main("test", argv + ["--results_dir", str(tmp_path / "res")]) == 0


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_a_loss_the_search_makes_infinite_names_the_search_options(toy_root, tmp_path, capsys, model):
    """The hint names the options that scale the losses of the run at hand, the given ones first: here the
    search's --mask_weight_decay, and --lambda_L1 only where it acts (pix2pix)."""
    data = ALIGNED if model == "pix2pix" else UNALIGNED
    argv = tiny_args(tmp_path, "nan", model=model, dataroot=data, mask=True, mask_weight_decay="1e38")
    capsys.readouterr()
    assert run_main("train", argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "loss mask_weight is inf" in err[0], err
    hint = err[0].split("(")[-1]
    assert hint.startswith("--mask_weight_decay 1e+38, ") and "--lr 0.0002" in hint
    assert ("--lambda_L1 100" in hint) == (model == "pix2pix") and ("--lambda_A 10" in hint) == (model == "cyclegan")
    assert "--lambda_attention_distill" not in hint


def test_the_hint_of_a_fine_tune_names_its_distillation_weights_and_not_the_search():
    argv = ["--dataroot", UNALIGNED, "--model", "cyclegan", "--mask", "--finetune", "--gpu_ids", "-1",
            "--load_path", "search.pth", "--pretrain_path", "teacher.pth", "--lambda_attention_distill", "100",
            "--mask_weight_decay", "0.01"]
    scales = options.loss_scale_options(options.parse("prune", argv))
    assert scales[0] == "--lambda_attention_distill 100" and "--lr 0.0002" in scales
    assert not [s for s in scales if s.startswith(("--mask_weight_decay", "--lambda_discriminator_distill"))]


def test_the_epoch_summary_of_large_finite_losses_is_finite(toy_root, tmp_path, capsys, monkeypatch):
    """Losses near float32's largest value are finite; their sum over the epoch is kept in float64."""
    real = BaseModel.current_loss_tensors
    monkeypatch.setattr(BaseModel, "current_loss_tensors",
                        lambda self: {k: torch.tensor(3e38) for k in real(self)})
    assert run_main("train", tiny_args(tmp_path, "big")) == 0
    out = capsys.readouterr()
    summary = [line for line in (out.out + out.err).splitlines() if "End of epoch" in line]
    assert len(summary) == 1 and "mean losses: D_A: 3000000" in summary[0] and "inf" not in summary[0], summary
