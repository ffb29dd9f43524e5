"""Tests of compress/mask_search.py: schedule, the search's losses and coefficients, folding, early stop,
the sparsity report, checkpointed state, and short toy searches through train.py (the loss functions
and rules themselves: tests/compress/test_mask_losses.py)."""
import io
import logging
import os

import pytest
import torch
from torch import nn

from tests.compress.conftest import make_opt, num, resnet, unet
from tests.conftest import ALIGNED, UNALIGNED, run_main
from compress import mask_losses
from models import MODELS
from compress.mask_search import MaskSearch, bound_at, candidate_macs, total_images, update_frequency
from models.families.resnet import ResnetGenerator
from pipeline.checkpoint import load_checkpoint
from util.errors import UserError
from util.flops import count_macs_params
from pipeline.trainer import Trainer


class FakeModel:
    """What MaskSearch reads of a model: nets, generator names, the per-direction table and generators()
    (and loss_terms, which it must leave alone: the stage attaches its loss term)."""

    def __init__(self, nets, model="cyclegan"):
        self.nets = nn.ModuleDict(nets)
        self.generator_names = tuple(nets)
        self.directions = MODELS[model].directions
        self.loss_terms = []

    def generators(self):
        return {d.name: self.nets[d.generator] for d in self.directions()}


def cyclegan_search(*flags, n_batches=100, nets=None):
    opt = make_opt(*flags)
    nets = nets or {"G_A": resnet(0), "G_B": resnet(1)}
    model = FakeModel(nets, "cyclegan")
    return MaskSearch(opt, model, n_batches=n_batches), model, opt


def pix2pix_search(*flags, n_batches=100, net=None):
    opt = make_opt(*flags, model="pix2pix")
    model = FakeModel({"G": net if net is not None else unet(0)}, "pix2pix")
    return MaskSearch(opt, model, n_batches=n_batches), model, opt


def bound_for(search, b):
    """Images t at which the (cube) schedule gives bound ``b``."""
    return (1 - b) ** 3 * 0.75 * search.total


# ------------------------------------------------------------------------------------------ schedule

def test_cube_and_double_schedules_match_the_reference_values():
    total = 200  # one image per epoch, 200 epochs: T = end of epoch 150
    cube = {1: 0.812, 5: 0.678, 10: 0.595, 25: 0.450, 50: 0.307, 100: 0.126, 140: 0.023, 148: 0.0045,
            149: 0.0022, 150: 0.0}
    for e, b in cube.items():
        assert bound_at(e, total, "cube") == pytest.approx(b, abs=6e-4)
    double = {1: 0.918, 5: 0.817, 10: 0.742, 25: 0.592, 50: 0.423, 100: 0.184, 140: 0.034}
    for e, b in double.items():
        assert bound_at(e, total, "double") == pytest.approx(b, abs=6e-4)
    for e in (0, 1, 75, 149, 150, 151, 200):
        assert bound_at(e, total, "linear") == pytest.approx(max(0.0, 1 - e / 150), abs=1e-12)
    assert bound_at(0, total) == 1.0 and bound_at(151, total) == 0.0
    with pytest.raises(ValueError):
        bound_at(1, total, "square")


def test_update_frequency_is_one_epoch_for_200_epochs_and_never_zero():
    for n_batches, batch_size in ((100, 1), (25, 4), (1000, 1)):
        total = total_images(n_batches, batch_size, 200)
        assert update_frequency(total, batch_size) == n_batches
    assert update_frequency(total_images(4, 1, 2), 1) == 1
    assert update_frequency(total_images(1, 4, 1), 4) == 1


# ------------------------------------------------------------------------------------------ search losses

def test_cyclegan_mask_loss_is_the_sum_of_the_rules():
    search, model, opt = cyclegan_search("--mask_weight_decay", "0.01", "--lambda_update_coeff", "1",
                                         "--block_coeff", "2", "--upconv_bound", "--upconv_coeff", "100")
    assert model.loss_terms == []  # attached by the stage (train.py), never by the search itself
    with torch.no_grad():
        search.gens[0].group_coeff["stream"].uniform_(0, 3)
    for g in search.gens:
        g.set_bound(0.5)
    want = 0.0
    for name, g in zip(("G_A", "G_B"), search.gens):
        net = model.nets[name]
        m = {p: net.get_submodule(p).mask_weight for p in net.structure().mask_names()}
        b = 0.5
        for p in ("stem.mask", "down1.mask", "up1.mask", "up2.mask"):
            want = want + 100 * mask_losses.bound_loss(m[p], b)
        for i in range(2):
            want = want + mask_losses.relu_loss(m[f"blocks.{i}.conv1.mask"], b)
        group = torch.stack([m["down2.mask"], m["blocks.0.conv2.mask"], m["blocks.1.conv2.mask"]])
        want = want + 2 * mask_losses.block_loss(group, b, g.group_coeff["stream"])
    got = search.loss_term()
    assert set(got) == {"mask_weight"}
    assert num(got["mask_weight"]) == pytest.approx(0.01 * num(want), rel=1e-6)
    got["mask_weight"].backward()
    assert model.nets["G_B"].stem.mask.mask_weight.grad.abs().sum() > 0


def test_finished_generators_get_no_loss_and_group_lasso_is_logged():
    search, model, _ = cyclegan_search("--mask_weight_decay", "1", "--lambda_group_lasso", "0.1")
    search.gens[0].set_bound(0.0)
    only_b = search.loss_term()
    search.gens[0].set_bound(0.5)
    both = search.loss_term()
    assert num(only_b["mask_weight"]) < num(both["mask_weight"])
    g_b = search.gens[1]
    assert num(only_b["group_lasso"]) == pytest.approx(0.1 * num(g_b.group_lasso()), rel=1e-6)
    both["group_lasso"].backward()
    for conv, _ in g_b.group_convs["stream"]:  # down2 and every block's conv2
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert [c for c in g_b.structure.writers("stream")][0].name == "down2.conv"
    with pytest.raises(UserError, match="group_lasso"):
        pix2pix_search("--lambda_group_lasso", "0.1")


# ------------------------------------------------------------------------------------------ folding

def _spread(net, b_old, b_new=None, seed=0):
    """Mask weights for a fold test; group masks all > b_old (scale 1 before and after).

    b_new None (early stop): spread over [-1.2 b_old, 1.2 b_old], both pieces included. Otherwise every
    channel leaves the soft region on the "on" side (b_new < w <= b_old), is fully on or fully off: the
    channels that stay soft change scale by design (method.md §4.4) and are kept out of the test."""
    g = torch.Generator().manual_seed(seed)
    structure = net.structure()
    group = set(structure.groups().get("stream", []))
    with torch.no_grad():
        for path in structure.mask_names():
            w = net.get_submodule(path).mask_weight
            u = torch.rand(w.shape, generator=g)
            if path in group:
                w.copy_(b_old + 0.05 + u * 0.3)
            elif b_new is None:
                w.copy_((u * 2.4 - 1.2) * b_old)
            else:
                crossing = b_new + (b_old - b_new) * (1 - u)  # (b_new, b_old]
                on, off = b_old * (1.01 + u * 0.2), -b_old * (1.01 + u * 0.2)
                pick = torch.randint(0, 4, w.shape, generator=g)
                w.copy_(torch.where(pick < 2, crossing, torch.where(pick == 2, on, off)))


def _params(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items() if not k.endswith("bound")}


@pytest.mark.parametrize("dtype", [torch.float32])
def test_bound_update_keeps_the_resnet_function_and_leaves_the_group_alone(dtype):
    net = resnet(3, dtype=dtype).eval()
    search, model, opt = cyclegan_search(nets={"G_A": net, "G_B": resnet(4)})
    g = search.gens[0]
    g.set_bound(0.5)
    _spread(net, 0.5, 0.2)
    x = torch.randn(2, 3, 32, 32, dtype=dtype)
    y0 = net(x)
    before = _params(net)
    search.update(bound_for(search, 0.2))
    assert g.bound == pytest.approx(0.2, abs=1e-6)
    y1 = net(x)
    assert (y1 - y0).abs().max() < 1e-5
    after = _params(net)
    # the consumers of the other layers were rescaled (input channels of the next conv)
    for name in ("down1.conv", "down2.conv", "blocks.0.conv2.conv", "up2.conv", "head.conv"):
        assert not torch.equal(before[name + ".weight"], after[name + ".weight"]), name
    # without the fold the function would have changed: the test can see a change
    net.load_state_dict({**net.state_dict(), **before})
    assert (net(x) - y0).abs().max() > 1e-3


def test_group_masks_are_not_folded():
    net = resnet(9).eval()
    search, model, opt = cyclegan_search(nets={"G_A": net, "G_B": resnet(4)})
    g = search.gens[0]
    g.set_bound(0.5)
    group = g.structure.groups()["stream"]
    with torch.no_grad():  # every group channel crosses (b_new, b_old]; the other masks stay fully on
        for path in g.structure.mask_names():
            w = net.get_submodule(path).mask_weight
            w.uniform_(0.25, 0.5) if path in group else w.fill_(0.9)
    before = _params(net)
    search.update(bound_for(search, 0.2))
    after = _params(net)
    stream_readers = [c.name for c, _ in g.structure.consumers("stream")]
    assert "blocks.0.conv1.conv" in stream_readers and "up1.conv" in stream_readers
    untouched = [p + ".mask_weight" for p in group] + [n + ".weight" for n in stream_readers] + \
        [c.name + suffix for c in g.structure.writers("stream") for suffix in (".weight", ".bias")]
    for key in untouched:
        assert torch.equal(before[key], after[key]), key
    assert all(float(s) == 1.0 for p in group for s in net.get_submodule(p).scale().detach())  # jumped to 1


def test_bound_update_and_freeze_keep_the_unet_function():
    net = unet(5).eval()
    search, model, opt = pix2pix_search("--frozen_threshold", "0.85", net=net)
    g = search.gens[0]
    g.set_bound(0.5)
    _spread(net, 0.5, 0.2)
    with torch.no_grad():  # one layer almost entirely off: frozen (binarised) at this update
        w = net.down3.mask.mask_weight
        w.fill_(-0.9)
        w[:2] = torch.tensor([0.1, -0.3])
    x = torch.randn(2, 3, 32, 32)
    y0 = net(x)
    before = _params(net)
    search.update(bound_for(search, 0.2))
    assert (net(x) - y0).abs().max() < 1e-5
    assert set(net.down3.mask.mask_weight.tolist()) == {-1.0, 1.0}
    assert float(search.gens[0].layer_coeff[2]) == 1.0  # lambda_update_coeff 0: multipliers unchanged
    changed = [k for k in before if not torch.equal(before[k], _params(net)[k])]
    assert any(k.endswith("norm.weight") for k in changed)  # BatchNorm folds
    assert "down1.conv.weight" in changed and "down5.conv.weight" in changed  # convs without norm


def test_early_stop_keeps_the_function_with_the_correct_piece():
    resnet_net, unet_net = resnet(6).eval(), unet(7).eval()
    for net, search_of in ((resnet_net, cyclegan_search), (unet_net, pix2pix_search)):
        if net is resnet_net:
            search, _, _ = search_of("--AtoB_macs_threshold", "1000", nets={"G_A": net, "G_B": resnet(8)})
        else:
            search, _, _ = search_of("--AtoB_macs_threshold", "1000", net=net)
        g = search.gens[0]
        g.set_bound(0.3)
        _spread(net, 0.3)
        x = torch.randn(2, 3, 32, 32)
        y0 = net(x)
        search.update(bound_for(search, 0.1))
        assert g.stopped and g.bound == 0.0
        assert (net(x) - y0).abs().max() < 1e-5
        for mask in g.masks:
            assert set(mask.mask_weight.tolist()) <= {-1.0, 1.0}


# ------------------------------------------------------------------------------------------ early stop

def _pattern(net, kept, b=0.5):
    """Set mask weights so that ``kept[path]`` channels are not fully off at bound b (w = 0.3 > -b, the
    rest -0.9 < -b)."""
    with torch.no_grad():
        for path in net.structure().mask_names():
            w = net.get_submodule(path).mask_weight
            w.fill_(-0.9)
            w[kept.get(path, [])] = 0.3


def test_early_stop_fires_at_the_candidate_macs_per_direction():
    kept = {"stem.mask": [0, 1, 2], "down1.mask": [0, 2, 4, 6, 8], "down2.mask": [0, 1],
            "blocks.0.conv2.mask": [1, 2], "blocks.0.conv1.mask": [3, 4, 5, 6], "up1.mask": list(range(6)),
            "up2.mask": [5, 6]}  # blocks.1 hidden all off -> removed; stream = union {0, 1, 2}
    widths = {"stem": 3, "down1": 5, "stream": 3, "blocks.0": 4, "blocks.1": 0, "up1": 6, "up2": 2}
    pruned = ResnetGenerator(ngf=8, n_blocks=2, widths=widths)
    macs, _ = count_macs_params(pruned, (1, 3, 32, 32))
    g_a, g_b = resnet(0), resnet(1)
    for net in (g_a, g_b):
        _pattern(net, kept)
    weights = {p: g_a.get_submodule(p).mask_weight for p in g_a.structure().mask_names()}
    got, got_widths = candidate_macs(g_a.structure(), weights, 0.5, 0, (32, 32))
    assert got == macs and got_widths == widths

    g = macs / 1e9
    search, model, _ = cyclegan_search("--AtoB_macs_threshold", str(g * (1 + 1e-6)),
                                       "--BtoA_macs_threshold", str(g * (1 - 1e-6)), nets={"G_A": g_a, "G_B": g_b})
    for gen in search.gens:
        gen.set_bound(0.5)
    assert not search.best_eligible("AtoB") and not search.best_eligible("BtoA")
    search.update(bound_for(search, 0.3))
    stop_a, stop_b = search.gens
    assert stop_a.stopped and not stop_b.stopped
    assert stop_a.bound == 0.0 and stop_b.bound == pytest.approx(0.3, abs=1e-6)
    assert search.best_eligible("AtoB") and not search.best_eligible("BtoA")  # each direction its own flag
    assert set(g_a.stem.mask.mask_weight.tolist()) == {-1.0, 1.0}
    assert int((g_a.stem.mask.mask_weight > 0).sum()) == 3
    # a stopped generator stays stopped, with bound 0, and has no sparsity loss
    search.update(bound_for(search, 0.2))
    assert stop_a.bound == 0.0 and search.records[-1]["layers"]["G_A.stem.mask"] == 3


def test_threshold_zero_never_stops():
    search, model, _ = cyclegan_search()
    for t in range(1, search.total + 1):
        search.after_iteration(t, 1, t)
    assert not any(g.stopped for g in search.gens)
    assert search.best_eligible("AtoB") and search.best_eligible("BtoA")  # bound 0 past 75 %


# ------------------------------------------------------------------------------------------ controller

def test_updates_run_every_freq_batches_and_follow_the_linear_rule():
    search, model, opt = cyclegan_search("--update_bound_rule", "linear", n_batches=400)  # total 800 images
    assert search.freq == (3 * 800 // 600)
    seen = []
    for it in range(1, 801):
        search.after_iteration(it, 1 + (it - 1) // 400, it)
        if it % search.freq == 0:
            seen.append(it)
            assert search.bound == pytest.approx(max(0.0, 1 - it / 600), abs=1e-12)
            assert search.gens[0].bound == pytest.approx(search.bound, abs=1e-6)
    assert len(search.records) == len(seen) == 800 // search.freq
    assert search.records[-1]["step"] == pytest.approx(2.0)
    bounds = [r["bound"] for r in search.records]
    assert bounds == sorted(bounds, reverse=True) and bounds[-1] == 0.0
    first = [r for r in search.records if r["bound"] == 0.0][0]
    assert first["step"] == pytest.approx(1.5)  # 75 % of the images


class RecordingVisualizer:
    def __init__(self):
        self.calls = []

    def plot_mask_search(self, records):
        self.calls.append([dict(r) for r in records])


def test_records_report_and_plot(caplog):
    search, model, opt = cyclegan_search("--BtoA_macs_threshold", "1000")
    vis = RecordingVisualizer()
    search.visualizer = vis
    with caplog.at_level(logging.INFO, logger="dmad"):
        search.update(bound_for(search, 0.4), step=0.25)
    text = caplog.text
    assert "netG_A\nstem.mask sparsity ratio: " in text and "netG_B\n" in text
    assert "\tone ratio: " in text and "\ttotal ratio: " in text
    assert "ResBlock sparsity ratio: " in text
    assert "Bound: 0.400" in text and "BtoA early stop!" in text and "AtoB early stop!" not in text
    assert "MACs <= 1000.000G)" in text  # the threshold (given in G) in the shared count format
    assert len(vis.calls) == 1 and len(vis.calls[0]) == 1
    rec = vis.calls[0][0]
    assert rec["step"] == 0.25 and rec["bound"] == pytest.approx(0.4)
    g_a = model.nets["G_A"]
    assert rec["widths"]["G_A.down2.mask"] == 32 and rec["widths"]["G_B.up2.mask"] == 8
    assert rec["layers"]["G_A.stem.mask"] == int((g_a.stem.mask.mask_weight > -0.4).sum())
    # the report's ratios are those of the scale at the bound before the update
    line = [ln for ln in text.splitlines() if ln.startswith("stem.mask sparsity")][0]
    assert line.startswith("stem.mask sparsity ratio: 0.000")  # nothing off at bound 1


def test_unet_layer_coefficient_multiplies_the_loss():
    net = unet(2)
    search, model, opt = pix2pix_search("--mask_weight_decay", "1", "--lambda_update_coeff", "2",
                                        "--frozen_threshold", "0.85", net=net)
    g = search.gens[0]
    with torch.no_grad():
        for i, mask in enumerate(g.masks):
            w = mask.mask_weight
            w.uniform_(-0.5, 0.5)
            n_off = [0, w.numel() // 2, w.numel() // 4][i % 3]
            w[:n_off] = -1.5  # off at bound 1
    off = torch.tensor([float((m.mask_weight < -1).float().mean()) for m in g.masks])
    search.update(bound_for(search, 0.6))
    want_coeff = 2 * off.max() / off.clamp(min=0.01)
    assert torch.allclose(g.layer_coeff, want_coeff)
    b = g.bound
    want = sum(c * mask_losses.relu_loss(m.mask_weight, b) for c, m in zip(want_coeff, g.masks))
    assert num(search.loss_term()["mask_weight"]) == pytest.approx(num(want), rel=1e-5)
    # without the coefficient the loss would differ: the test sees it being used
    plain = sum(mask_losses.relu_loss(m.mask_weight, b) for m in g.masks)
    assert abs(num(plain) - num(want)) > 1e-3


def test_block_coefficients_are_updated_with_the_old_bound():
    search, model, opt = cyclegan_search("--lambda_update_coeff", "1.5")
    g = search.gens[0]
    g.set_bound(0.5)
    group = torch.stack([g.masks[i].mask_weight for i in g.groups["stream"]]).detach().clone()
    search.update(bound_for(search, 0.3))
    want = mask_losses.group_coefficients(group, 0.5, 1.5)
    assert torch.equal(g.group_coeff["stream"], want)


def test_state_dict_is_plain_data_and_round_trips():
    search, model, opt = cyclegan_search("--AtoB_macs_threshold", "1000", "--lambda_update_coeff", "1")
    search.update(bound_for(search, 0.5))
    search.update(bound_for(search, 0.3))
    buf = io.BytesIO()
    torch.save(search.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh, fresh_model, _ = cyclegan_search("--AtoB_macs_threshold", "1000", "--lambda_update_coeff", "1")
    for name in ("G_A", "G_B"):
        fresh_model.nets[name].load_state_dict(model.nets[name].state_dict())
    fresh.load_state_dict(state)
    assert [g.stopped for g in fresh.gens] == [True, False]
    assert [g.bound for g in fresh.gens] == [g.bound for g in search.gens]
    assert fresh.bound == search.bound and fresh.records == search.records
    assert num(fresh.loss_term()["mask_weight"]) == num(search.loss_term()["mask_weight"])


# ------------------------------------------------------------------------------------------ toy runs

TOY = ["--crop_size", "32", "--load_size", "32", "--ngf", "8", "--num_threads", "0", "--display_id", "0",
       "--metric", "none", "--gpu_ids", "-1", "--no_html", "--print_freq", "100000"]
README_CYCLEGAN = ["--mask", "--mask_weight_decay", "0.0008", "--lambda_update_coeff", "1.0", "--block_coeff", "1.0",
                   "--upconv_coeff", "100.0", "--upconv_bound"]
README_PIX2PIX = ["--mask", "--mask_weight_decay", "1e-3", "--lambda_update_coeff", "1.0", "--gan_mode", "hinge",
                  "--no_flip"]


def _train(root, name, dataroot, *flags):
    argv = ["--dataroot", dataroot, "--name", name, "--checkpoints_dir", str(root), *TOY, *flags]
    assert run_main("train", argv) == 0
    return load_checkpoint(os.path.join(str(root), name, "checkpoints", "latest.pth"))


def _mask_weights(state, nets):
    return {n: {k: v for k, v in state["nets"][n].items() if k.endswith("mask_weight")} for n in nets}


def _off_share(state, nets):
    weights = [w for n in nets for w in _mask_weights(state, nets)[n].values()]
    return float(sum(int((w <= 0).sum()) for w in weights)) / sum(w.numel() for w in weights)


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def test_resume_mid_search_is_bit_identical(tmp_path, toy_root, monkeypatch):
    flags = [*README_CYCLEGAN, "--max_dataset_size", "4", "--n_epochs", "1", "--n_epochs_decay", "1",
             "--AtoB_macs_threshold", "0.015"]
    straight = _train(tmp_path / "x", "run", UNALIGNED, *flags)
    # the interrupted run: the same options, stopped after its first epoch, then resumed
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "last_epoch", property(lambda self: 1))
        first = _train(tmp_path / "y", "run", UNALIGNED, *flags)
    assert first["epoch"] == 1 and 0 < first["search"]["bound"] < 1
    assert first["search"]["stopped"] == {"G_A": True, "G_B": False}  # the stop flag must survive the resume
    resumed = _train(tmp_path / "y", "run", UNALIGNED, *flags, "--continue_train")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key in ("nets", "optimizers", "search", "pools", "rng", "iteration", "images_seen", "lr_state"):
        _assert_same(straight.get(key), resumed.get(key), key)
    # the README flags ran to the end: bound 0 everywhere, and the masks prune a share of the channels
    search = straight["search"]
    assert search["bound"] == 0.0 and len(search["records"]) == 8
    for name in ("G_A", "G_B"):
        bounds = [v for k, v in straight["nets"][name].items() if k.endswith(".bound")]
        assert len(bounds) == 23 and all(float(b) == 0.0 for b in bounds)
    assert 0 < _off_share(straight, ("G_A", "G_B")) < 1


def test_toy_search_drives_channels_off(tmp_path, toy_root):
    # 24 Adam steps move a weight by about 24 x lr: a large --lr lets them cross the N(0, 0.2^2) spread
    common = ["--mask", "--max_dataset_size", "8", "--n_epochs", "2", "--n_epochs_decay", "1", "--lr", "0.02",
              "--lambda_update_coeff", "1", "--upconv_bound", "--upconv_coeff", "10"]
    searched = _train(tmp_path, "decay", UNALIGNED, *common, "--mask_weight_decay", "10")
    baseline = _train(tmp_path, "nodecay", UNALIGNED, *common, "--mask_weight_decay", "0")
    assert searched["search"]["bound"] == 0.0 and baseline["search"]["bound"] == 0.0
    off, off_baseline = _off_share(searched, ("G_A", "G_B")), _off_share(baseline, ("G_A", "G_B"))
    assert off > off_baseline + 0.2, (off, off_baseline)


def test_pix2pix_readme_flags_run_to_the_end(tmp_path, toy_root):
    state = _train(tmp_path, "p2p", ALIGNED, "--model", "pix2pix", *README_PIX2PIX, "--max_dataset_size", "4",
                   "--n_epochs", "1", "--n_epochs_decay", "1", "--AtoB_macs_threshold", "0.003")
    assert state["epoch"] == 2 and state["search"]["bound"] == 0.0
    bounds = [v for k, v in state["nets"]["G"].items() if k.endswith(".bound")]
    assert len(bounds) == 9 and all(float(b) == 0.0 for b in bounds)
    assert 0 < _off_share(state, ("G",)) < 1
    assert torch.is_tensor(state["search"]["layer_coeff"]["G"])
    assert state["search"]["stopped"] == {"G": True}  # 3e-3 G is about 60 % of the full 32 px U-Net
    # binarised to +-1 at the stop; Adam's momentum may still nudge them a little afterwards
    assert all(float((w.abs() - 1).abs().max()) < 0.01 for w in _mask_weights(state, ("G",))["G"].values())


def test_the_plot_is_redrawn_once_per_epoch_on_short_runs():
    search, model, opt = cyclegan_search(n_batches=3)  # 6 images: an update point after every batch
    vis = RecordingVisualizer()
    search.visualizer = vis
    for it in range(1, 7):
        search.after_iteration(it, 1 + (it - 1) // 3, it)
    assert search.freq == 1 and len(search.records) == 6
    assert [len(records) for records in vis.calls] == [3, 6]
