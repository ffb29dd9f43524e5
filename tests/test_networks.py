"""Networks (PatchGAN; the generators: tests/test_families.py), GAN losses, the image pool and the weight
initialisation."""
import io
import math

import pytest
import torch
from torch import nn

import options
from models import MODELS, create_model
from models.discriminator import NLayerDiscriminator
from models.image_pool import ImagePool
from models.losses import GANLoss, gradient_penalty
from models.mask import Mask
from models.networks import build_discriminator, build_generator, generator_config, init_weights
from models.families.resnet import ResnetGenerator


def opts(*argv):
    return options.parse("train", ["--dataroot", "x", "--gpu_ids", "-1", *argv])


def discriminator_config(opt):
    """The model's first discriminator (CycleGAN's D_A, pix2pix's D)."""
    return next(iter(MODELS[opt.model].discriminator_configs(opt).values()))


@pytest.mark.parametrize("ndf", [8, 16, 64])
def test_patchgan_honours_ndf(ndf):
    d = build_discriminator(discriminator_config(opts("--ndf", str(ndf))))
    assert d.layers["conv1"].out_channels == ndf and d.layers["conv1"].in_channels == 3
    assert d.layers["conv4"].out_channels == 8 * ndf
    assert isinstance(d.layers["norm2"], nn.InstanceNorm2d)
    assert d(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_pix2pix_discriminator():
    d = build_discriminator(discriminator_config(opts("--model", "pix2pix", "--ndf", "16")))
    assert d.layers["conv1"].in_channels == 6 and d.layers["conv1"].out_channels == 16
    assert isinstance(d.layers["norm2"], nn.BatchNorm2d) and d.layers["conv2"].bias is None
    d.eval()
    assert d(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


def test_discriminator_features():
    d = NLayerDiscriminator(ndf=4)
    x = torch.rand(1, 3, 64, 64)
    out, feats = d.forward_features(x, ("act2", "act4"))
    assert torch.equal(out, d(x)) and set(feats) == {"act2", "act4"}
    assert feats["act2"].shape == (1, 8, 16, 16) and feats["act4"].shape == (1, 32, 7, 7)


# ---------------------------------------------------------------- GAN losses

def test_lsgan_and_vanilla_values():
    p = torch.full((2, 1, 3, 3), 0.5)
    ls = GANLoss("lsgan")
    assert ls(p, True).item() == pytest.approx(0.25) and ls(p, False).item() == pytest.approx(0.25)
    assert ls(torch.ones(4), True).item() == 0 and ls(torch.zeros(4), False).item() == 0
    assert ls(p, True, for_discriminator=False).item() == pytest.approx(0.25)
    va = GANLoss("vanilla")
    zero = torch.zeros(2, 1, 3, 3)
    assert va(zero, True).item() == pytest.approx(math.log(2)) and va(zero, False).item() == pytest.approx(math.log(2))
    assert va(torch.full((3,), 2.0), True).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert va(torch.full((3,), 2.0), False).item() == pytest.approx(math.log(1 + math.exp(2)))


def test_hinge_and_wgangp_values():
    p = torch.tensor([0.5, -2.0, 3.0])
    hinge = GANLoss("hinge")
    assert hinge(p, True).item() == pytest.approx((0.5 + 3.0 + 0) / 3)
    assert hinge(p, False).item() == pytest.approx((1.5 + 0 + 4.0) / 3)
    assert hinge(p, True, for_discriminator=False).item() == pytest.approx(-p.mean().item())
    wgan = GANLoss("wgangp")
    assert wgan(p, True).item() == pytest.approx(-p.mean().item())
    assert wgan(p, False).item() == pytest.approx(p.mean().item())
    assert wgan(p, True, for_discriminator=False).item() == pytest.approx(-p.mean().item())


def test_unknown_gan_mode():
    with pytest.raises(ValueError):
        GANLoss("nonsense")


def test_gradient_penalty_is_positive_and_differentiable():
    torch.manual_seed(0)
    d = init_weights(NLayerDiscriminator(ndf=4))
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    gp = gradient_penalty(d, real, fake)
    assert gp.dim() == 0 and gp.item() > 0 and gp.requires_grad
    gp.backward()
    # the head's bias does not change the input gradient; every weight does
    grads = [m.weight.grad for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(grads) == 5 and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert gradient_penalty(d, real, fake, weight=0.0).item() == 0


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
@pytest.mark.parametrize("gan_mode", ["wgangp", "lsgan"])
def test_discriminator_loss_includes_the_penalty_only_for_wgangp(model, gan_mode, monkeypatch):
    calls = []

    def fake_penalty(netD, real, fake, weight=10.0):
        calls.append(real.shape)
        return torch.tensor(123.0)

    import models.cyclegan_model
    import models.pix2pix_model

    monkeypatch.setattr(models.cyclegan_model, "gradient_penalty", fake_penalty)
    monkeypatch.setattr(models.pix2pix_model, "gradient_penalty", fake_penalty)
    opt = opts("--model", model, "--ngf", "4", "--ndf", "4", "--crop_size", "32", "--load_size", "32",
               "--gan_mode", gan_mode)
    torch.manual_seed(0)
    m = create_model(opt, torch.device("cpu"))
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1,
             "A_paths": ["a"], "B_paths": ["b"]}
    m.set_input(batch)
    m.optimize_parameters()
    penalty = 123.0 if gan_mode == "wgangp" else 0.0
    if model == "cyclegan":
        assert len(calls) == (2 if gan_mode == "wgangp" else 0)  # D_A and D_B
    else:
        assert len(calls) == (1 if gan_mode == "wgangp" else 0)
        base = 0.5 * (m.loss_D_real.item() + m.loss_D_fake.item())
        assert m.loss_D.item() == pytest.approx(base + penalty, rel=1e-5)


def test_cyclegan_penalty_is_added_exactly(monkeypatch):
    import models.cyclegan_model

    monkeypatch.setattr(models.cyclegan_model, "gradient_penalty", lambda netD, real, fake: torch.tensor(7.0))
    opt = opts("--ngf", "4", "--ndf", "4", "--crop_size", "32", "--load_size", "32", "--gan_mode", "wgangp")
    m = create_model(opt, torch.device("cpu"))
    d = m.nets["D_A"]
    real, fake = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        base = 0.5 * (-d(real).mean() + d(fake).mean())
    loss = m.backward_D(d, real, fake)
    assert loss.item() == pytest.approx(base.item() + 7.0, rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------- image pool

def images(n, start=0):
    return torch.stack([torch.full((3, 2, 2), float(i)) for i in range(start, start + n)])


def test_pool_size_zero_is_a_passthrough():
    pool = ImagePool(0)
    x = images(3)
    assert pool.query(x) is x and pool.images == []


def test_pool_fills_then_respects_its_size():
    pool = ImagePool(3, seed=1)
    out = pool.query(images(2))
    assert torch.equal(out, images(2)) and len(pool.images) == 2
    out = pool.query(images(4, start=2))  # one more fits, the rest are swapped or passed through
    assert out.shape == (4, 3, 2, 2) and len(pool.images) == 3
    assert torch.equal(out[0], images(1, start=2)[0])
    for i in range(20):
        out = pool.query(images(2, start=10 + 2 * i))
        assert out.shape == (2, 3, 2, 2) and len(pool.images) == 3
    values = {float(img.mean()) for img in pool.images}
    assert values - {0.0, 1.0, 2.0}  # old images were replaced by later ones


def test_pool_returns_stored_images_about_half_the_time():
    pool = ImagePool(5, seed=3)
    pool.query(images(5))
    stored = 0
    for i in range(200):
        out = pool.query(images(1, start=100 + i))
        stored += float(out.mean()) != 100 + i
    assert 60 < stored < 140


def test_pool_state_dict_round_trip():
    pool = ImagePool(4, seed=5)
    for i in range(6):
        pool.query(images(1, start=i))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = ImagePool(4, seed=99)
    other.load_state_dict(state, torch.device("cpu"))
    assert len(other.images) == 4
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images))
    for i in range(10):
        x = images(2, start=50 + 2 * i)
        assert torch.equal(pool.query(x), other.query(x))


def test_cyclegan_pool_honours_pool_size():
    m = create_model(opts("--ngf", "4", "--ndf", "4", "--pool_size", "7"), torch.device("cpu"))
    assert m.pools["A"].size == m.pools["B"].size == 7
    m0 = create_model(opts("--ngf", "4", "--ndf", "4", "--pool_size", "0"), torch.device("cpu"))
    x = images(2)
    assert m0.pools["A"].query(x) is x


# ---------------------------------------------------------------- initialisation

def _stats(tensors):
    flat = torch.cat([t.detach().flatten() for t in tensors])
    return flat.mean().item(), flat.std().item(), flat.numel()


def test_init_convs_and_biases():
    torch.manual_seed(0)
    g = build_generator(generator_config(opts("--ngf", "8")))
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    mean, std, n = _stats([c.weight for c in convs])
    assert n > 100_000 and abs(mean) < 1e-3 and std == pytest.approx(0.02, rel=0.05)
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs if c.bias is not None)
    d = build_discriminator(discriminator_config(opts("--ndf", "8")))
    dconvs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert _stats([c.weight for c in dconvs])[1] == pytest.approx(0.02, rel=0.05)
    assert all(torch.count_nonzero(c.bias) == 0 for c in dconvs)


def test_init_norms():
    torch.manual_seed(0)
    g = build_generator(generator_config(opts("--model", "pix2pix", "--ngf", "64")))
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    mean, std, n = _stats([m.weight for m in norms])
    assert n > 4000 and mean == pytest.approx(1.0, abs=2e-3) and std == pytest.approx(0.02, rel=0.1)
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)
    d = build_discriminator(discriminator_config(opts("--model", "pix2pix", "--ndf", "8")))
    assert all(torch.count_nonzero(m.bias) == 0 for m in d.modules() if isinstance(m, nn.BatchNorm2d))


def test_init_leaves_masks_alone():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=16, mask=True)
    before = {k: v.clone() for k, v in g.state_dict().items() if k.endswith(("mask_weight", "bound"))}
    init_weights(g)
    after = g.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    weights = [v for k, v in before.items() if k.endswith("mask_weight")]
    assert _stats(weights)[1] == pytest.approx(0.2, rel=0.15)
    assert all(torch.equal(v, torch.ones(1)) for k, v in before.items() if k.endswith("bound"))
    built = build_generator(generator_config(opts("--ngf", "16", "--mask")))
    masks = [m.mask_weight for m in built.modules() if isinstance(m, Mask)]
    assert len(masks) == 23 and _stats(masks)[1] == pytest.approx(0.2, rel=0.15)


def test_image_pool_state_keeps_images_of_different_sizes():
    """With --preprocess none or scale_width the pooled images differ in size; checkpoints keep them."""
    pool = ImagePool(4, seed=0)
    pool.query(torch.zeros(1, 3, 8, 8))
    pool.query(torch.ones(1, 3, 12, 8))
    restored = ImagePool(4, seed=0)
    restored.load_state_dict(pool.state_dict(), "cpu")
    assert [tuple(i.shape) for i in restored.images] == [(1, 3, 8, 8), (1, 3, 12, 8)]
    assert torch.equal(restored.images[1], pool.images[1])
