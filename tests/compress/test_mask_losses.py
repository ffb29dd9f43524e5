"""Tests of compress/mask_losses.py: the per-mask loss types, the block loss and its coefficients, the
U-Net layer multipliers, the group lasso, and the loss rule of each mask read off the structure."""
import math

import pytest
import torch

from compress import mask_losses
from tests.compress.conftest import make_opt, num, resnet, unet


W = torch.tensor([-0.6, -0.5, -0.4, -0.1, 0.0, 0.2, 0.5, 0.7], dtype=torch.float64)
INSIDE = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0], dtype=torch.bool)  # -0.5 < w < 0.5


def _value_and_grad(fn, w, b):
    w = w.clone().requires_grad_(True)
    value = fn(w, b)
    value.backward()
    return float(value.detach()), w.grad


def test_layer_losses_on_hand_made_weights():
    b = 0.5
    value, grad = _value_and_grad(mask_losses.relu_loss, W, b)
    assert value == pytest.approx(0.1 + 0.4 + 0.5 + 0.7)
    assert grad.tolist() == INSIDE.double().tolist()

    value, grad = _value_and_grad(mask_losses.uprelu_loss, W, b)
    assert value == pytest.approx(0.9 + 0.6 + 0.5 + 0.3)
    assert grad.tolist() == (-INSIDE.double()).tolist()

    value, grad = _value_and_grad(mask_losses.bound_loss, W, b)
    gaps = torch.tensor([0.1, 0.4, 0.5, 0.3], dtype=torch.float64)  # b - |w| on I
    norm = math.sqrt(float((gaps ** 2).sum()))
    assert value == pytest.approx(norm)  # unsquared
    gap = torch.where(INSIDE, 0.5 - W.abs(), torch.zeros_like(W))
    assert torch.allclose(gap[INSIDE], gaps)
    assert torch.allclose(grad, -torch.sign(W) * gap / norm)

    value, grad = _value_and_grad(mask_losses.exp_loss, W, b)
    z = (W[INSIDE] + b) / b
    assert value == pytest.approx(float(torch.expm1(z).sum()))
    assert torch.allclose(grad, torch.where(INSIDE, torch.exp((W + b) / b) / b, torch.zeros_like(W)))
    # 0 at -b, e^2 - 1 just below +b: the more "on", the larger
    assert float(mask_losses.exp_loss(torch.tensor([-0.5 + 1e-9], dtype=torch.float64), b)) < 1e-6
    assert float(mask_losses.exp_loss(torch.tensor([0.5 - 1e-9], dtype=torch.float64), b)) == pytest.approx(
        math.e ** 2 - 1, rel=1e-6)


@pytest.mark.parametrize("name", sorted(mask_losses.LAYER_LOSSES))
@pytest.mark.parametrize("w, b", [
    (torch.tensor([-0.9, 0.8, 1.5]), 0.5),  # nothing in bound
    (torch.tensor([-0.5, 0.5]), 0.5),  # every |w| = b: outside the strict in-bound set
    (torch.tensor([-0.2, 0.0, 0.3]), 0.0),  # bound 0
])
def test_losses_are_zero_with_finite_gradients_when_nothing_is_in_bound(name, w, b):
    value, grad = _value_and_grad(mask_losses.LAYER_LOSSES[name], w, b)
    assert value == 0.0
    assert grad is not None and torch.isfinite(grad).all() and torch.equal(grad, torch.zeros_like(w))


def test_bound_loss_gradient_is_finite_when_in_bound_gaps_vanish():
    # w in bound with b - |w| == 0 cannot happen (strict set); a zero norm can: all gaps tiny -> no NaN
    w = torch.tensor([0.5 - 1e-30, -0.5 + 1e-30], dtype=torch.float64)
    _, grad = _value_and_grad(mask_losses.bound_loss, w, 0.5)
    assert torch.isfinite(grad).all()


def test_group_coefficients_on_a_hand_made_pattern():
    b = 0.5
    weights = torch.tensor([
        # c0: all off   c1: one fully on   c2: all undecided   c3: 3 off, 1 in   c4: 2 off, 2 in
        [-0.9, 0.9, 0.1, -0.9, -0.9],
        [-0.8, 0.2, -0.2, -0.9, -0.9],
        [-0.7, -0.9, 0.3, -0.9, 0.0],
        [-0.6, -0.3, 0.4, 0.45, -0.1],
    ])
    coeff = mask_losses.group_coefficients(weights, b, 2.0)
    assert coeff.tolist() == pytest.approx([0.0, 0.0, 2.0, 8.0, 4.0])


def test_block_loss_uses_the_coefficients_and_has_no_half_bound_quirk():
    b = 0.5
    weights = torch.tensor([[0.1, -0.2, 0.7], [-0.6, 0.3, 0.2]], requires_grad=True)
    coeff = torch.tensor([2.0, 0.0, 3.0])
    value = mask_losses.block_loss(weights, b, coeff)
    # in bound: (0,0) 0.1, (0,1) -0.2, (1,1) 0.3, (1,2) 0.2
    assert float(value.detach()) == pytest.approx((0.1 + b) * 2 + (-0.2 + b) * 0 + (0.3 + b) * 0 + (0.2 + b) * 3)
    value.backward()
    assert weights.grad.tolist() == [[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]


def test_layer_coefficients_for_the_unet():
    off = torch.tensor([0.0, 0.2, 0.9, 0.5])
    frozen = off > 0.85
    assert mask_losses.layer_coefficients(off, frozen, 1.0).tolist() == pytest.approx([90.0, 4.5, 0.0, 1.8])
    nothing_off = torch.zeros(3)
    assert mask_losses.layer_coefficients(nothing_off, nothing_off > 0, 2.0).tolist() == [2.0, 2.0, 2.0]


def test_group_lasso_is_a_sum_of_channel_norms_with_safe_gradients():
    a = torch.tensor([[3.0, 0.0], [0.0, 0.0], [1.0, 2.0]], requires_grad=True)  # rows = channels
    b = torch.tensor([[[4.0]], [[0.0]], [[2.0]]], requires_grad=True)
    value = mask_losses.group_lasso([a, b])
    assert num(value) == pytest.approx(5.0 + 0.0 + 3.0)
    value.backward()
    assert torch.isfinite(a.grad).all() and a.grad[1].abs().sum() == 0
    assert a.grad[0].tolist() == pytest.approx([0.6, 0.0])


def _rules(opt, net):
    layers, group = mask_losses.loss_types(net.structure(), opt)
    return {p: (t, m) for p, t, m in layers}, group


def test_loss_rules_follow_the_mask_kinds():
    net = resnet(n_blocks=2)
    rules, group = _rules(make_opt(), net)
    assert group == [] and set(rules) == set(net.structure().mask_names())
    assert all(v == ("relu", 1.0) for v in rules.values())

    rules, group = _rules(make_opt("--lambda_update_coeff", "1", "--upconv_bound", "--upconv_coeff", "100"), net)
    assert group == ["down2.mask", "blocks.0.conv2.mask", "blocks.1.conv2.mask"]
    for path in ("stem.mask", "down1.mask", "up1.mask", "up2.mask"):
        assert rules[path] == ("bound", 100.0)
    assert rules["blocks.0.conv1.mask"] == ("relu", 1.0)

    rules, _ = _rules(make_opt("--upconv_bound", "--upconv_solo", "--upconv_coeff", "100"), net)
    assert rules["stem.mask"] == ("bound", 1.0) and rules["up1.mask"] == ("bound", 1.0)
    assert rules["up2.mask"] == ("bound", 100.0)
    assert rules["down2.mask"] == ("relu", 1.0)  # no block loss without lambda_update_coeff

    # --upconv_relu: the outer masks push towards "on"; the last up-conv keeps --mask_loss_type
    rules, _ = _rules(make_opt("--upconv_relu", "--upconv_coeff", "100", "--mask_loss_type", "exp"), net)
    assert rules["stem.mask"] == ("uprelu", 1.0) and rules["up2.mask"] == ("exp", 1.0)
    assert rules["blocks.1.conv1.mask"] == ("exp", 1.0)

    rules, group = _rules(make_opt("--mask_loss_type", "bound", "--lambda_update_coeff", "1", model="pix2pix"),
                          unet())
    assert group == [] and all(v == ("bound", 1.0) for v in rules.values()) and len(rules) == 9
