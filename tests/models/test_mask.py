"""Tests of models/mask.py: the soft step, its gradient, the hard step at bound 0 and persistence."""
import pytest
import torch

from models.mask import BOUND_FLOOR, Mask, soft_step, soft_step_slope

BOUNDS = (1.0, 0.5, 0.1, 0.004)


def reference(w, b):
    """Closed form of method.md §2.2 in float64 (b > 0)."""
    bp = max(b, BOUND_FLOOR)
    if w < -b:
        return 0.0
    if w <= 0:
        return 0.5 * (1 + w / bp) ** 2
    if w <= b:
        return 1 - 0.5 * (1 - w / bp) ** 2
    return 1.0


def bound(b, dtype=torch.float64):
    return torch.tensor([b], dtype=dtype)


@pytest.mark.parametrize("b", BOUNDS)
def test_values_at_interpolation_points(b):
    points = [-2 * b, -b, -b / 2, 0.0, b / 2, b, 2 * b]
    w = torch.tensor(points, dtype=torch.float64)
    got = soft_step(w, bound(b)).tolist()
    want = [reference(p, b) for p in points]
    assert got == pytest.approx(want, abs=1e-6)
    if b >= BOUND_FLOOR:
        # the interpolation nodes of §2.2
        assert got == pytest.approx([0, 0, 0.125, 0.5, 0.875, 1, 1], abs=1e-6)
    else:
        # below the floor the polynomials use b' = 0.005 and the regions the true b (§2.4)
        assert got[1] == pytest.approx(0.02, abs=1e-6)
        assert got[5] == pytest.approx(0.98, abs=1e-6)


def test_spot_values_for_half_bound_in_float32():
    w = torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5, -0.6, 0.6])
    got = soft_step(w, torch.tensor([0.5])).tolist()
    assert got == pytest.approx([0, 0.125, 0.5, 0.875, 1, 0, 1], abs=1e-6)


def _inner_points(b, n=40, seed=0):
    """Points inside (-b, b) away from the piece boundaries -b, 0, b (finite differences need smoothness)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64) * 0.9 + 0.05
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(torch.float64)
    outside = torch.tensor([-3 * b, -1.5 * b, 1.5 * b, 3 * b], dtype=torch.float64)
    return torch.cat([sign * u * b, outside])


@pytest.mark.parametrize("b", BOUNDS)
def test_gradient_is_the_exact_derivative(b):
    w = _inner_points(b).requires_grad_(True)
    soft_step(w, bound(b)).sum().backward()
    slope = soft_step_slope(w.detach(), bound(b))
    h = 1e-6 * b
    fd = (soft_step(w.detach() + h, bound(b)) - soft_step(w.detach() - h, bound(b))) / (2 * h)
    assert torch.allclose(w.grad, slope, rtol=1e-5, atol=1e-9)
    assert torch.allclose(w.grad, fd, rtol=1e-5, atol=1e-5)
    # 0 outside [-b, b], 1/b' at 0
    assert w.grad[-4:].abs().max() == 0
    w0 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    soft_step(w0, bound(b)).sum().backward()
    assert float(w0.grad) == pytest.approx(1 / max(b, BOUND_FLOOR), rel=1e-9)


def test_slope_examples_at_half_bound():
    w = torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5, -0.6, 0.6], requires_grad=True)
    soft_step(w, torch.tensor([0.5])).sum().backward()
    assert w.grad.tolist() == pytest.approx([0, 1, 2, 1, 0, 0, 0], abs=1e-6)


def test_bound_zero_is_the_hard_step_with_zero_gradient():
    w = torch.tensor([-1.0, -1e-3, 0.0, 1e-3, 1.0], requires_grad=True)
    y = soft_step(w, torch.zeros(1))
    assert y.tolist() == [0, 0, 0, 1, 1]
    y.sum().backward()
    assert w.grad is not None
    assert torch.equal(w.grad, torch.zeros_like(w))
    assert torch.equal(soft_step_slope(w.detach(), torch.zeros(1)), torch.zeros_like(w))


def test_mask_layer_gradients_and_hard_mask_has_no_nan():
    torch.manual_seed(0)
    m = Mask(6).double()
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    for b in (1.0, 0.5, 0.1, 0.004, 0.0):
        m.update(b)
        x.grad, m.mask_weight.grad = None, None
        (m(x) * g).sum().backward()
        scale = soft_step(m.mask_weight.detach(), m.bound)
        slope = soft_step_slope(m.mask_weight.detach(), m.bound)
        assert torch.allclose(x.grad, g * scale.view(1, -1, 1, 1), rtol=1e-12)
        want = slope * (g * x.detach()).sum((0, 2, 3))
        assert torch.allclose(m.mask_weight.grad, want, rtol=1e-5, atol=1e-12)
        assert torch.isfinite(m.mask_weight.grad).all() and torch.isfinite(x.grad).all()
    assert torch.equal(m.mask_weight.grad, torch.zeros(6, dtype=torch.float64))


def test_state_dict_holds_the_bound_and_behaviour_follows_it():
    torch.manual_seed(1)
    a = Mask(8)
    assert a.mask_weight.std().item() == pytest.approx(0.2, abs=0.15)
    assert float(a.bound) == 1.0
    a.update(0.3)
    state = a.state_dict()
    assert set(state) == {"mask_weight", "bound"} and state["bound"].shape == (1,)
    b = Mask(8)
    b.load_state_dict(state)
    x = torch.randn(1, 8, 2, 2)
    assert torch.equal(a(x), b(x))
    assert torch.allclose(b.scale(), soft_step(a.mask_weight.detach(), torch.tensor([0.3])))
    # the original stored the bound as a 0-d / [1] parameter: both load
    b.load_state_dict({"mask_weight": state["mask_weight"], "bound": torch.tensor(0.0)})
    assert float(b.bound) == 0.0
    assert torch.equal(b.scale(), (state["mask_weight"] > 0).float())


def test_update_clamps_negative_bounds():
    m = Mask(4)
    m.update(-0.2)
    assert float(m.bound) == 0.0
    assert torch.equal(m.scale(), (m.mask_weight.detach() > 0).float())
