"""Tests of compress/pruning.py and prune.py: the pruned generator equals the masked one at bound 0."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pipeline.prune
import prune
from models.discriminator import NLayerDiscriminator
from models.layers import masks
from models.networks import build_generator
from compress.pruning import format_prune_table, original_cfg, prune_generator
from util.flops import format_count
from models.families.resnet import ResnetGenerator
from models.structure import full_widths
from models.families.unet import UnetGenerator
from pipeline.checkpoint import FORMAT, VERSION, is_native, load_checkpoint, load_generator, save_checkpoint
from tests.conftest import hash_tree, randomise, run_main
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
UNALIGNED = ROOT / "datasets" / "toy" / "unaligned"
ALIGNED = ROOT / "datasets" / "toy" / "aligned"


@pytest.fixture(scope="module", autouse=True)
def toy_data():
    if not (UNALIGNED / "testA").is_dir() or not (ALIGNED / "train").is_dir():
        subprocess.run([sys.executable, str(ROOT / "datasets" / "make_toy_dataset.py")], cwd=ROOT, check=True)


# ------------------------------------------------------------------------------------------ helpers

def bound_zero(net):
    for m in masks(net).values():
        m.update(0)
    return net


def stream_masks(net):
    return [net.down2.mask] + [net.blocks[str(i)].conv2.mask for i in range(net.n_blocks)]


def stream_votes(net):
    return torch.stack([(m.mask_weight > 0) for m in stream_masks(net)]).sum(0)


def assert_equivalent(masked, slim, size, atol=1e-5, seed=0):
    masked.eval()
    slim.eval()
    x = torch.randn(2, masked.input_nc, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want, got = masked(x), slim(x)
    assert want.shape == got.shape
    assert want.std() > 1e-3, "the test input gives a trivial output"
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


def make_resnet(ngf=8, seed=0, unmask_last_upconv=False, removed=(2, 6), stream_off=(0, 3, 5)):
    torch.manual_seed(seed)
    net = randomise(ResnetGenerator(ngf=ngf, mask=True, unmask_last_upconv=unmask_last_upconv), seed, bound=0)
    with torch.no_grad():
        for i in removed:
            net.blocks[str(i)].conv1.mask.mask_weight.fill_(-0.5)
        for m in stream_masks(net):
            m.mask_weight[list(stream_off)] = -0.5
    return net


def make_unet(num_downs, ngf=8, seed=0, empty=("down3", "up4")):
    torch.manual_seed(seed)
    net = randomise(UnetGenerator(ngf=ngf, num_downs=num_downs, mask=True), seed, bound=0)
    with torch.no_grad():
        for name in empty:
            getattr(net, name).mask.mask_weight.fill_(-0.5)
    return net


# ------------------------------------------------------------------------------------------ ResNet

@pytest.mark.parametrize("ngf,size,unmask", [(8, 32, False), (16, 64, True)])
def test_resnet_pruned_equals_masked(ngf, size, unmask):
    net = make_resnet(ngf, seed=ngf, unmask_last_upconv=unmask)
    votes = stream_votes(net)
    # stream channels off in only some group masks exist and get zeroed rows, not removed
    partly = ((votes > 0) & (votes < 10)).sum()
    assert partly > 0
    slim, report = prune_generator(net, vote=0, image_size=size)

    assert report["removed"] == ["blocks.2", "blocks.6"]
    assert sorted(slim.blocks.keys()) == ["0", "1", "3", "4", "5", "7", "8"]
    assert slim.widths["stream"] == int((votes > 0).sum()) <= 4 * ngf - 3
    assert slim.widths["stem"] == int((net.stem.mask.mask_weight > 0).sum())
    assert slim.widths["up2"] == (ngf if unmask else int((net.up2.mask.mask_weight > 0).sum()))
    assert_equivalent(net, slim, size)
    # a stream channel kept by the vote but off in block 0's own mask: its conv2 row is zero
    kept = (votes > 0).nonzero().flatten()
    off0 = (net.blocks["0"].conv2.mask.mask_weight[kept] <= 0)
    assert off0.any()
    rows = slim.blocks["0"].conv2.conv.weight[off0]
    assert torch.count_nonzero(rows) == 0 and torch.count_nonzero(slim.blocks["0"].conv2.conv.bias[off0]) == 0


def test_resnet_empty_outer_layer_keeps_one_zeroed_channel():
    net = make_resnet(8, seed=3)
    with torch.no_grad():
        net.stem.mask.mask_weight.fill_(-0.1)
        net.up1.mask.mask_weight.fill_(-0.1)
    slim, report = prune_generator(net)
    assert slim.widths["stem"] == 1 and slim.widths["up1"] == 1
    assert torch.count_nonzero(slim.stem.conv.weight) == 0 and torch.count_nonzero(slim.stem.conv.bias) == 0
    layer = {row["set"]: row for row in report["layers"]}
    assert layer["stem"]["kept"] == 0 and layer["stem"]["width"] == 1
    assert_equivalent(net, slim, 32)


def test_resnet_empty_stream_keeps_one_zeroed_channel():
    net = make_resnet(8, seed=4, stream_off=range(32))
    slim, _ = prune_generator(net)
    assert slim.widths["stream"] == 1
    assert torch.count_nonzero(slim.down2.conv.weight) == 0
    assert_equivalent(net, slim, 32)


def test_vote_one_equivalent_when_no_channel_has_a_single_vote():
    net = make_resnet(8, seed=5)
    with torch.no_grad():
        group = stream_masks(net)
        single = (stream_votes(net) == 1).nonzero().flatten()
        for m in group[:2]:  # give every single-vote channel a second vote
            m.mask_weight[single] = m.mask_weight[single].abs() + 0.05
    votes = stream_votes(net)
    assert not (votes == 1).any() and (votes == 0).any()
    slim, report = prune_generator(net, vote=1)
    assert slim.widths["stream"] == int((votes > 1).sum())
    assert_equivalent(net, slim, 32)


def test_vote_removes_channels_one_mask_keeps_and_sets_the_cfg():
    net = make_resnet(8, seed=6)
    with torch.no_grad():
        for m in stream_masks(net)[1:]:
            m.mask_weight[[7, 9]] = -0.3
        net.down2.mask.mask_weight[[7, 9]] = 0.4  # kept by exactly one group mask
    votes = stream_votes(net)
    assert votes[7] == 1 and votes[9] == 1
    _, report0 = prune_generator(net, vote=0)
    _, report1 = prune_generator(net, vote=1)
    r0, r1 = int((votes > 0).sum()), int((votes > 1).sum())
    assert report0["widths"]["stream"] == r0 and report1["widths"]["stream"] == r1 and r1 <= r0 - 2
    cfg = report1["cfg"]
    assert len(cfg) == 23 and cfg[2] == r1 and all(cfg[4 + 2 * i] == r1 for i in range(9))
    assert cfg[3 + 2 * 2] == 0 and cfg[3 + 2 * 6] == 0  # the removed blocks
    assert cfg[3] == int((net.blocks["0"].conv1.mask.mask_weight > 0).sum())


def test_slim_net_is_a_plain_generator_of_its_widths():
    net = make_resnet(8, seed=7)
    slim, report = prune_generator(net, image_size=32)
    keys = list(slim.state_dict())
    assert not any("mask" in k or "bound" in k or "block_coeff" in k for k in keys)
    assert slim.config()["mask"] is False and not masks(slim)
    fresh = ResnetGenerator(**{k: v for k, v in slim.config().items() if k != "family"})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(slim) == count(fresh)
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    # the counted numbers agree with the channel-structure estimate
    structure = net.structure()
    assert (report["macs_after"], report["params_after"]) == structure.macs_params(slim.widths, (32, 32))
    assert (report["macs_before"], report["params_before"]) == structure.macs_params(full_widths(structure), (32, 32))
    assert report["macs_ratio"] == pytest.approx(report["macs_before"] / report["macs_after"])
    # and the slim net still trains: its parameters are leaf tensors that take gradients
    slim.train()
    slim(torch.randn(1, 3, 32, 32)).mean().backward()
    assert slim.stem.conv.weight.grad is not None


def test_prune_needs_masks():
    with pytest.raises(UserError, match="no masks"):
        prune_generator(ResnetGenerator(ngf=4))


# ------------------------------------------------------------------------------------------ U-Net

@pytest.mark.parametrize("num_downs,size", [(5, 32), (6, 64)])
def test_unet_pruned_equals_masked(num_downs, size):
    net = make_unet(num_downs, seed=num_downs)
    for m in masks(net).values():
        on = int((m.mask_weight > 0).sum())
        assert on < m.num_channels  # every layer is pruned
    slim, report = prune_generator(net, image_size=size)
    assert slim.widths["down3"] == 1 and slim.widths["up4"] == 1
    layer = {row["set"]: row for row in report["layers"]}
    assert layer["down3"]["kept"] == 0 and layer["up4"]["kept"] == 0
    for name in ("down3", "up4"):  # the kept channel is exactly zero: no weights, no norm affine
        unit = getattr(slim, name)
        assert torch.count_nonzero(unit.conv.weight) == 0
        assert torch.count_nonzero(unit.norm.weight) == 0 and torch.count_nonzero(unit.norm.bias) == 0
    for L in (1, 2, 4):
        assert slim.widths[f"down{L}"] == int((getattr(net, f"down{L}").mask.mask_weight > 0).sum())
    assert_equivalent(net, slim, size)
    assert report["macs_after"] < report["macs_before"] and report["params_after"] < report["params_before"]


def test_unet_slim_parameter_count():
    net = make_unet(5, seed=11)
    slim, _ = prune_generator(net)
    fresh = UnetGenerator(**{k: v for k, v in slim.config().items() if k != "family"})
    assert sum(p.numel() for p in slim.parameters()) == sum(p.numel() for p in fresh.parameters())
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}


def test_original_cfg_lists():
    res = ResnetGenerator(ngf=8, mask=True)
    widths = dict(full_widths(res.structure()), stem=3, down1=5, stream=7, up1=4, up2=2)
    widths.update({"blocks.1": 0, "blocks.4": 6})
    cfg = original_cfg(res.structure(), widths)
    assert cfg == [3, 5, 7, 32, 7, 0, 7, 32, 7, 32, 7, 6, 7, 32, 7, 32, 7, 32, 7, 32, 7, 4, 2]

    unet = UnetGenerator(ngf=8, num_downs=8, mask=True)
    structure = unet.structure()
    widths = {name: i + 1 for i, name in enumerate(structure.sets)}  # down1..down8, up8..up2
    filters, channels = original_cfg(structure, widths)
    assert filters == list(range(1, 16))
    # §5.4: channel_cfgs[k] = filter_cfgs[k] for k <= 7, filter_cfgs[14 - k] + filter_cfgs[k] after
    assert channels == [filters[k] if k <= 7 else filters[14 - k] + filters[k] for k in range(15)]


def test_format_prune_table_has_the_original_log_lines():
    net = make_resnet(8, seed=8)
    _, report = prune_generator(net, image_size=32)
    text = format_prune_table({"G_A": report})
    # the original's line, with a unit that keeps tiny counts readable (its "%.2fG" gave 0.00G here)
    assert report["macs_after"] < 1e7 and "0.00G" not in text and "0.01G" not in text
    assert f"netG_A | Params: {format_count(report['params_after'])} | MACs: {format_count(report['macs_after'])}" \
        in text
    assert f"{format_count(report['macs_before'], 3):>14}{format_count(report['macs_after'], 3):>14}" in text
    removed = report["macs_before"] - report["macs_after"]
    assert f"MACs Prune Ratio: {removed}/{report['macs_before']} (" in text
    assert "Params Prune Ratio: " in text and "--------------netG_A Prune Ratio--------------" in text
    assert f"{report['macs_ratio']:.2f}×" in text
    assert "blocks.2" in text and "(removed)" in text


# ------------------------------------------------------------------------------------------ prune.py

def search_checkpoint(path, model="cyclegan", mask=True, seed=0, n_blocks=9, options=None):
    """A native search checkpoint as pipeline/trainer.py writes it (nets + configs); ``mask=False``: a
    plain one, such as a teacher. ``options``: stored options added to the default ones."""
    torch.manual_seed(seed)
    if model == "cyclegan":
        config = {"family": "resnet", "input_nc": 3, "output_nc": 3, "ngf": 8, "n_blocks": n_blocks, "widths": None,
                  "mask": mask, "unmask_last_upconv": False}
        d_config = {"input_nc": 3, "ndf": 8, "n_layers": 3, "norm": "instance"}
        names = ("G_A", "G_B"), ("D_A", "D_B")
    else:
        config = {"family": "unet", "input_nc": 3, "output_nc": 3, "ngf": 8, "num_downs": 5, "widths": None,
                  "mask": mask, "use_dropout": True}
        d_config = {"input_nc": 6, "ndf": 8, "n_layers": 3, "norm": "batch"}
        names = ("G",), ("D",)
    state = {"format": FORMAT, "version": VERSION, "kind": "training", "model": model, "stage": "search" if mask else "train",
             "epoch": 1, "nets": {}, "configs": {}, "best": {"AtoB": {"score": 50.0, "epoch": 1}},
             "options": {"metric": "fid", **(options or {})}}
    gens = {}
    for i, name in enumerate(names[0]):
        net = build_generator(config)
        if mask:
            randomise(net, seed + i, bound=0)
            if model == "cyclegan" and n_blocks > 4:
                with torch.no_grad():
                    net.blocks["4"].conv1.mask.mask_weight.fill_(-1.0)
        gens[name] = net.eval()
        state["nets"][name] = net.state_dict()
        state["configs"][name] = net.config()
    for name in names[1]:
        d = NLayerDiscriminator(**d_config)
        state["nets"][name] = d.state_dict()
        state["configs"][name] = d.config()
    save_checkpoint(state, str(path))
    return gens, state


def prune_args(tmp_path, load_path, model="cyclegan", *extra):
    root = UNALIGNED if model == "cyclegan" else ALIGNED
    return ["--dataroot", str(root), "--model", model, "--mask", "--load_path", str(load_path),
            "--checkpoints_dir", str(tmp_path / "exp"), "--name", "pruned", "--gpu_ids", "-1",
            "--crop_size", "32", "--load_size", "32", "--metric", "none", "--display_id", "0", *extra]


def test_prune_py_cyclegan_end_to_end(tmp_path):
    ckpt = tmp_path / "search.pth"
    gens, _ = search_checkpoint(ckpt)
    prune.main(prune_args(tmp_path, ckpt))
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    state = load_checkpoint(str(out))
    assert is_native(state) and state["stage"] == "pruned" and state["epoch"] == 0 and state["model"] == "cyclegan"
    assert set(state["nets"]) == {"G_A", "G_B", "D_A", "D_B"}
    for name in ("G_A", "G_B"):
        assert not any("mask" in k or "bound" in k for k in state["nets"][name])
        assert state["configs"][name]["mask"] is False
        assert state["configs"][name]["widths"]["blocks.4"] == 0 and len(state["cfg"][name]) == 23
        assert state["macs"][name] == state["prune_report"][name]["macs_after"] > 0
    torch.testing.assert_close(state["nets"]["D_A"]["layers.conv1.weight"],
                               load_checkpoint(str(ckpt))["nets"]["D_A"]["layers.conv1.weight"])
    for direction, name in (("AtoB", "G_A"), ("BtoA", "G_B")):
        slim = load_generator(str(out), direction)
        assert "4" not in slim.blocks
        assert_equivalent(gens[name], slim, 32)
    log_text = (tmp_path / "exp" / "pruned" / "logger.log").read_text()
    assert "Prune done!!!" in log_text and "netG_B | Params:" in log_text and "MACs Prune Ratio:" in log_text
    assert "After Training. AtoB FID: 50.00" in log_text

    # test.py evaluates the pruned checkpoint
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, "test.py", "--dataroot", str(UNALIGNED), "--model", "cyclegan",
                          "--load_path", str(out), "--name", "pruned", "--results_dir", str(results),
                          "--metric", "none", "--display_id", "0", "--crop_size", "32", "--load_size", "32",
                          "--gpu_ids", "-1", "--max_dataset_size", "2", "--num_threads", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (results / "pruned" / "test_0" / "index.html").is_file()


def test_prune_py_takes_the_direction_of_the_search_and_refuses_another(tmp_path, capsys):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt, model="pix2pix", options={"direction": "BtoA"})
    # a B->A generator run on A images would translate the wrong side, silently
    assert run_main("prune", prune_args(tmp_path, ckpt, "pix2pix", "--direction", "AtoB")) == 2
    assert "the search was trained with --direction BtoA" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    assert run_main("prune", prune_args(tmp_path, ckpt, "pix2pix")) == 0
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    assert load_checkpoint(str(out))["options"]["direction"] == "BtoA"


@pytest.mark.parametrize("threshold", [0, 2])
def test_a_threshold_that_changes_the_output_is_said(tmp_path, capsys, threshold):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", "--threshold", str(threshold))) == 0
    captured = capsys.readouterr()
    said = "do not give the masked ones' output" in captured.out + captured.err
    assert said == (threshold > 0)


def test_a_teacher_that_does_not_fit_stops_prune_py_before_it_writes(tmp_path, capsys):
    ckpt, teacher = tmp_path / "search.pth", tmp_path / "teacher.pth"
    search_checkpoint(ckpt)
    search_checkpoint(teacher, mask=False, n_blocks=6)
    assert run_main("prune", prune_args(tmp_path, ckpt)) == 0  # an earlier run in the folder
    before = hash_tree(tmp_path / "exp")
    finetune = ["--finetune", "--overwrite", "--pretrain_path", str(teacher), "--lambda_attention_distill", "1",
                "--max_dataset_size", "2", "--num_threads", "0", "--ngf", "8", "--ndf", "8"]
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", *finetune)) == 2
    assert "has n_blocks=6 but the student's has 9" in capsys.readouterr().err
    assert hash_tree(tmp_path / "exp") == before  # --overwrite removed nothing, model_0.pth was not rewritten


def test_prune_py_pix2pix_and_finetune_hook(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline.prune, "finetune",
                        lambda opt, state, device, prepared=None, evaluator=None, run=None: calls.append((opt, state, device)))
    ckpt = tmp_path / "search.pth"
    gens, _ = search_checkpoint(ckpt, model="pix2pix")
    prune.main(prune_args(tmp_path, ckpt, "pix2pix", "--finetune"))
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    state = load_checkpoint(str(out))
    assert state["configs"]["G"]["family"] == "unet" and state["configs"]["D"]["norm"] == "batch"
    filters, channels = state["cfg"]["G"]
    assert len(filters) == len(channels) == 9
    assert_equivalent(gens["G"], load_generator(str(out), "AtoB"), 32)
    assert len(calls) == 1 and calls[0][0].finetune is True
    assert calls[0][1]["stage"] == "pruned" and set(calls[0][1]["nets"]) == {"G", "D"}


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as info:
        prune.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_prune_py_user_errors(tmp_path, capsys):
    args = prune_args(tmp_path, tmp_path / "missing.pth")
    no_mask = [a for a in args if a != "--mask"]
    assert "add --mask" in _exit_message(capsys, no_mask)
    assert f"--load_path {tmp_path / 'missing.pth'} does not exist" in _exit_message(capsys, args)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert f"--load_path {garbage} is not a readable checkpoint" in _exit_message(capsys, prune_args(tmp_path, garbage))
    without_path = args[:args.index("--load_path")] + args[args.index("--load_path") + 2:]
    assert "--load_path" in _exit_message(capsys, without_path)

    plain = tmp_path / "plain.pth"
    search_checkpoint(plain, mask=False)
    assert "plain (non-mask)" in _exit_message(capsys, prune_args(tmp_path, plain))

    search = tmp_path / "search.pth"
    search_checkpoint(search)
    assert "--model pix2pix" in _exit_message(capsys, prune_args(tmp_path, search, "pix2pix"))
    # the teacher's path is named by its option, missing or unreadable
    teacher = ["--finetune", "--lambda_attention_distill", "1", "--pretrain_path"]
    missing = tmp_path / "nope.pth"
    assert f"--pretrain_path {missing} does not exist" in _exit_message(
        capsys, prune_args(tmp_path, search, "cyclegan", *teacher, str(missing)))
    assert f"--pretrain_path {garbage} is not a readable checkpoint" in _exit_message(
        capsys, prune_args(tmp_path, search, "cyclegan", *teacher, str(garbage)))
    assert not (tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth").exists()


def test_prune_py_error_as_a_process(tmp_path):
    argv = [a for a in prune_args(tmp_path, tmp_path / "x.pth") if a != "--mask"]
    run = subprocess.run([sys.executable, "prune.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == "error: prune.py prunes a mask-search checkpoint: add --mask"


def test_bad_finetune_options_leave_an_existing_run_untouched(tmp_path, capsys):
    """Teacher problems are found before prune.py writes anything into the run folder."""
    from tests.conftest import hash_tree

    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    prune.main(prune_args(tmp_path, ckpt))
    run_dir = tmp_path / "exp" / "pruned"
    before = hash_tree(run_dir)
    other = tmp_path / "other.pth"
    search_checkpoint(other, seed=7)
    bad = [["--finetune", "--lambda_attention_distill", "1"],
           ["--finetune", "--lambda_attention_distill", "1", "--pretrain_path", str(tmp_path / "missing.pth")],
           ["--finetune", "--lambda_discriminator_distill", "1", "--pretrain_path", str(other)]]
    for extra in bad:
        _exit_message(capsys, prune_args(tmp_path, other, "cyclegan", *extra))
        assert hash_tree(run_dir) == before, extra
