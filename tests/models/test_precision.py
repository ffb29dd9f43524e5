"""--amp and --channels_last: autocast around the forward passes and losses, fp32 masks, mask losses
and bound updates, NHWC networks; off by default and bit-identical to before when off."""
import pytest
import torch

import options
from tests.conftest import run_main, tiny_args
from models import create_model
from models.layers import masks
from compress.mask_search import MaskSearch

CPU = torch.device("cpu")


def model_of(tmp_path, model="cyclegan", **extra):
    opt = options.parse("train", tiny_args(tmp_path, "p", model=model, mask=True, mask_weight_decay=0.01, **extra))
    torch.manual_seed(0)
    net = create_model(opt, CPU)
    search = MaskSearch(opt, net, n_batches=4)
    net.add_loss_term(search.loss_term)
    return opt, net, search


def batch(opt, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1,
            "A_paths": ["a"], "B_paths": ["b"]}


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_amp_bf16_keeps_masks_and_mask_losses_fp32(tmp_path, model):
    opt, net, search = model_of(tmp_path, model, amp=True)
    assert net.amp_dtype == torch.bfloat16 and not net.scaler.is_enabled()  # bf16 needs no loss scaling
    seen = {}
    hook = net.nets[net.generator_names[0]].register_forward_hook(lambda m, i, o: seen.update(out=o.dtype) and None)
    before = {k: v.clone() for k, v in net.nets.state_dict().items()}
    for step in range(2):
        net.set_input(batch(opt, step))
        net.optimize_parameters()
        search.after_iteration(step + 1, 1, step + 1)
    hook.remove()
    assert seen["out"] == torch.bfloat16  # the generator ran under autocast
    assert net.extra_losses["mask_weight"].dtype == torch.float32
    for m in masks(net.nets[net.generator_names[0]]).values():
        assert m.mask_weight.dtype == torch.float32 and m.bound.dtype == torch.float32
        assert m.mask_weight.grad is None or m.mask_weight.grad.dtype == torch.float32
    state = net.nets.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in state.items())  # parameters stay fp32
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert any(not torch.equal(v, before[k]) for k, v in state.items() if k.endswith("mask_weight"))
    assert all(torch.isfinite(torch.as_tensor(v)) for v in net.get_current_losses().values())


def test_amp_fp16_uses_a_gradient_scaler_saved_with_the_checkpoint(tmp_path):
    opt, net, _ = model_of(tmp_path, amp=True, amp_dtype="fp16")
    assert net.amp_dtype == torch.float16 and net.scaler.is_enabled()
    net.set_input(batch(opt))
    net.optimize_parameters()
    state = net.state_dict()
    assert "grad_scaler" in state and state["grad_scaler"]["scale"] > 0
    _, other, _ = model_of(tmp_path, amp=True, amp_dtype="fp16")
    other.load_state_dict(state)
    assert other.scaler.get_scale() == net.scaler.get_scale()


def test_off_by_default_and_no_scaler_state(tmp_path):
    opt, net, _ = model_of(tmp_path)
    assert net.amp_dtype is None and not net.scaler.is_enabled() and "grad_scaler" not in net.state_dict()
    assert net.memory_format == torch.contiguous_format


def test_channels_last_computes_what_contiguous_does(tmp_path):
    """NHWC networks and inputs: same losses and updates up to float rounding."""
    results = []
    for flag in (False, True):
        opt, net, _ = model_of(tmp_path, channels_last=flag)
        if flag:
            conv = net.nets["G_A"].stem.conv.weight
            assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
        net.set_input(batch(opt))
        if flag:
            assert net.real_A.is_contiguous(memory_format=torch.channels_last)
        net.optimize_parameters()
        results.append((net.get_current_losses(), {k: v.clone() for k, v in net.nets.state_dict().items()}))
    (loss0, state0), (loss1, state1) = results
    for key in loss0:
        assert loss1[key] == pytest.approx(loss0[key], rel=1e-4, abs=1e-5)
    # one Adam step moves a weight by at most lr (2e-4); rounding may flip near-zero gradients' steps
    assert max((state0[k] - state1[k]).abs().max().item() for k in state0 if state0[k].is_floating_point()) <= 5e-4


def test_amp_run_saves_a_loadable_checkpoint(tmp_path):
    """train.py --amp --channels_last end to end; the checkpoint is ordinary fp32 data."""
    argv = tiny_args(tmp_path, "amp", mask=True, amp=True, channels_last=True, max_dataset_size=2)
    assert run_main("train", argv) == 0
    state = torch.load(tmp_path / "amp" / "checkpoints" / "latest.pth", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["nets"]["G_A"].values() if v.is_floating_point())
    assert run_main("test", tiny_args(tmp_path, "amp", mask=True, load_path=tmp_path / "amp" / "checkpoints" /
                                      "latest.pth", results_dir=tmp_path / "res")) == 0
