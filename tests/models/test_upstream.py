"""Tests of models/upstream.py: checkpoints of pytorch-CycleGAN-and-pix2pix ("upstream") convert to
this project's networks, which compute what upstream's compute.

Upstream's code is not available here, so the ``Upstream*`` modules below rebuild its networks from
their documented Sequential layouts (models/networks.py of upstream: ResnetGenerator, ResnetBlock,
UnetGenerator, UnetSkipConnectionBlock, NLayerDiscriminator, PixelDiscriminator), independently of
this project's families; the files are written as upstream writes them (the bare state dict of each
network, ``<epoch>_net_<name>.pth`` in a run folder, or one generator in a model-zoo file).
"""
import pytest
import torch
from torch import nn

from models import families
from models.discriminator import NLayerDiscriminator
from models.networks import build_discriminator, build_generator, load_strict
from models.upstream import convert_upstream, upstream_files
from tests.conftest import randomise
from util.errors import UserError

NGF = 8


# ------------------------------------------------------------------------- upstream's layouts

def upstream_norm(kind, channels):
    """Upstream's --norm: batch = affine BatchNorm with statistics, instance = affine-free
    InstanceNorm without statistics (its convs then have biases), none = an identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


class UpstreamResnetBlock(nn.Module):
    """``conv_block``: pad, conv 3x3, norm, ReLU, [Dropout(0.5)], pad, conv 3x3, norm; x + conv_block(x)."""

    def __init__(self, dim, norm, dropout):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), upstream_norm(norm, dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), upstream_norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class UpstreamResnet(nn.Module):
    """``model``: pad 3, conv 7x7, norm, ReLU; 2 x (conv 3x3 s2, norm, ReLU); n blocks; 2 x (convT 3x3 s2,
    norm, ReLU); pad 3, conv 7x7 (bias), tanh. ``resize=True``: each convT replaced by an upsample and a
    conv (a variant upstream does not have)."""

    def __init__(self, input_nc=3, output_nc=3, ngf=NGF, n_blocks=9, norm="instance", dropout=False, resize=False):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), upstream_norm(norm, ngf),
                  nn.ReLU(True)]
        for width in (ngf, 2 * ngf):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1, bias=bias), upstream_norm(norm, 2 * width), nn.ReLU(True)]
        layers += [UpstreamResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for width in (4 * ngf, 2 * ngf):
            if resize:
                layers += [nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, padding=1, bias=bias)]
            else:
                layers.append(nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1, bias=bias))
            layers += [upstream_norm(norm, width // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpstreamUnetBlock(nn.Module):
    """One ``UnetSkipConnectionBlock``: outermost ``[down conv, sub, ReLU, convT (bias), tanh]``,
    innermost ``[LeakyReLU, down conv, ReLU, convT, norm]``, else ``[LeakyReLU, down conv, norm, sub,
    ReLU, convT, norm, (Dropout)]``; all but the outermost return ``cat([x, model(x)])``, and the
    in-place LeakyReLU leaves x activated."""

    def __init__(self, outer, inner, input_nc=None, sub=None, outermost=False, innermost=False, norm="batch",
                 dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(outer if input_nc is None else input_nc, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), upstream_norm(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, upstream_norm(norm, inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), upstream_norm(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UpstreamUnet(nn.Module):
    """``UnetGenerator``: innermost 8 ngf, num_downs - 5 blocks 8 ngf (dropout), then 4, 2, 1 ngf and the
    outermost block, nested under ``model``."""

    def __init__(self, input_nc=3, output_nc=3, num_downs=8, ngf=NGF, norm="batch", dropout=True):
        super().__init__()
        block = UpstreamUnetBlock(8 * ngf, 8 * ngf, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UpstreamUnetBlock(8 * ngf, 8 * ngf, sub=block, norm=norm, dropout=dropout)
        for outer in (4 * ngf, 2 * ngf, ngf):
            block = UpstreamUnetBlock(outer, 2 * outer, sub=block, norm=norm)
        self.model = UpstreamUnetBlock(output_nc, ngf, input_nc=input_nc, sub=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class UpstreamNLayerD(nn.Module):
    """``model``: conv 4x4 s2 (bias), LeakyReLU; n - 1 x (conv s2, norm, LeakyReLU); conv s1, norm,
    LeakyReLU; conv s1 (bias) to 1 channel. Widths ndf x min(2^i, 8)."""

    def __init__(self, input_nc=3, ndf=NGF, n_layers=3, norm="instance"):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(width, out, 4, 2 if i < n_layers else 1, 1, bias=bias), upstream_norm(norm, out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpstreamPixelD(nn.Module):
    """``net``: 1x1 convs ndf, 2 ndf (norm), 1."""

    def __init__(self, input_nc=3, ndf=NGF, norm="instance"):
        super().__init__()
        bias = norm == "instance"
        self.net = nn.Sequential(nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
                                 nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), upstream_norm(norm, 2 * ndf),
                                 nn.LeakyReLU(0.2, True), nn.Conv2d(2 * ndf, 1, 1, bias=bias))

    def forward(self, x):
        return self.net(x)


# ------------------------------------------------------------------------- helpers

def made(net, seed):
    """``net`` with random conv biases and BatchNorm parameters / statistics, in eval mode."""
    torch.manual_seed(seed)
    for module in net.modules():  # weights away from upstream's N(0, 0.02) initialisation too
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.2)
    return randomise(net, seed)


def with_stale_instance_statistics(net, state_dict):
    """The state dict a PyTorch < 0.4 upstream wrote: every InstanceNorm with running statistics."""
    out = dict(state_dict)
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            out[f"{name}.running_mean"] = torch.rand(module.num_features)
            out[f"{name}.running_var"] = torch.rand(module.num_features) + 0.5
            out[f"{name}.num_batches_tracked"] = torch.tensor(7)
    return out


def save_run(folder, nets, epoch="latest", prefix=""):
    """Write ``nets`` as upstream does: ``<epoch>_net_<name>.pth``, each the bare state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        state = net if isinstance(net, dict) else net.state_dict()
        torch.save({prefix + k: v for k, v in state.items()}, folder / f"{epoch}_net_{name}.pth")


def load(files):
    return {name: torch.load(path, map_location="cpu", weights_only=True) for name, path in files.items()}


def assert_same(upstream, ours, size, channels, seed=0):
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        want, got = upstream.eval()(x), ours.eval()(x)
    assert want.shape == got.shape and want.std() > 1e-3
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def generator_of(converted, name):
    config = converted["configs"][name]
    assert families.build(config).config() == config  # what a net of the config records
    return load_strict(build_generator(config), converted["nets"][name], name)


def discriminator_of(converted, name):
    config = converted["configs"][name]
    return load_strict(build_discriminator(config), converted["nets"][name], name)


def refusal(match, state_dicts, source="ckpt"):
    with pytest.raises(UserError, match=match) as err:
        convert_upstream(state_dicts, source)
    assert "\n" not in str(err.value)
    return str(err.value)


# ------------------------------------------------------------------------- run folders and files

def test_cyclegan_run_folder_converts_every_net(tmp_path):
    run = tmp_path / "checkpoints" / "horse2zebra"
    nets = {"G_A": made(UpstreamResnet(n_blocks=9), 1), "G_B": made(UpstreamResnet(n_blocks=9), 2),
            "D_A": made(UpstreamNLayerD(), 3), "D_B": made(UpstreamNLayerD(), 4)}
    save_run(run, nets)
    save_run(run, {name: made(UpstreamResnet(n_blocks=9), 9) for name in ("G_A", "G_B")}, epoch="5")
    files = upstream_files(run)
    assert files == {name: str(run / f"latest_net_{name}.pth") for name in ("D_A", "D_B", "G_A", "G_B")}
    converted = convert_upstream(load(files), str(run))
    assert converted["model"] == "cyclegan" and converted["stage"] == "train" and converted["upstream"]
    assert not converted["lone_generator"] and set(converted["nets"]) == set(nets)
    assert converted["configs"]["G_A"] == {
        "family": "resnet", "input_nc": 3, "output_nc": 3, "ngf": NGF, "n_blocks": 9,
        "widths": families.get("resnet")(ngf=NGF, n_blocks=9).widths, "mask": False, "unmask_last_upconv": False}
    assert converted["configs"]["D_A"] == {"input_nc": 3, "ndf": NGF, "n_layers": 3, "norm": "instance"}
    for name in ("G_A", "G_B"):
        assert_same(nets[name], generator_of(converted, name), 32, 3, seed=len(name))
    for name in ("D_A", "D_B"):
        assert_same(nets[name], discriminator_of(converted, name), 64, 3)


def test_one_file_finds_the_files_of_its_epoch_beside_it(tmp_path):
    run = tmp_path / "run"
    nets = {name: made(UpstreamResnet(n_blocks=6), 0) for name in ("G_A", "G_B")}
    save_run(run, nets, epoch="latest")
    save_run(run, nets, epoch="5")
    save_run(run, nets, epoch="iter_3000")
    (run / "5_net_D_A.pth.tmp").write_text("not a checkpoint")  # neither named nor read
    (run / "loss_log.txt").write_text("")
    assert upstream_files(run / "5_net_G_B.pth") == {"G_A": str(run / "5_net_G_A.pth"),
                                                     "G_B": str(run / "5_net_G_B.pth")}
    assert upstream_files(run, epoch=5) == upstream_files(run / "5_net_G_A.pth", epoch="5")
    assert set(upstream_files(str(run / "iter_3000_net_G_A.pth"))) == {"G_A", "G_B"}
    with pytest.raises(UserError, match="is of epoch 5, not latest"):
        upstream_files(run / "5_net_G_A.pth", epoch="latest")
    with pytest.raises(UserError, match=r"no 7_net_<net>.pth files .*holds epochs 5, iter_3000, latest\)"):
        upstream_files(run, epoch=7)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no <epoch>_net_<net>.pth files"):
        upstream_files(tmp_path / "empty")
    with pytest.raises(UserError, match="no such file or folder"):
        upstream_files(tmp_path / "missing")


def test_model_zoo_file_with_stale_instance_statistics_is_one_generator(tmp_path):
    """A zoo file (horse2zebra.pth) written by PyTorch < 0.4: InstanceNorm statistics that upstream
    itself drops on load; the generator runs in the caller's direction (pix2pix's one-generator table)."""
    net = made(UpstreamResnet(n_blocks=9), 5)
    path = tmp_path / "horse2zebra.pth"
    torch.save(with_stale_instance_statistics(net, net.state_dict()), path)
    files = upstream_files(path)
    assert files == {"G": str(path)}
    with pytest.raises(UserError, match="has no epoch 3"):
        upstream_files(path, epoch=3)
    converted = convert_upstream(load(files), str(path))
    assert converted["model"] == "pix2pix" and converted["lone_generator"] and set(converted["nets"]) == {"G"}
    assert not any("running" in k for k in converted["nets"]["G"])
    assert_same(net, generator_of(converted, "G"), 32, 3)
    from models import generator_name

    assert {generator_name(converted["model"], d) for d in ("AtoB", "BtoA")} == {"G"}


def test_batchnorm_unet_with_dropout_and_module_prefixes(tmp_path):
    """A pix2pix run (unet_256, BatchNorm, dropout) saved from a DataParallel net (``module.``), one
    BatchNorm without ``num_batches_tracked`` (PyTorch < 0.4.1)."""
    g, d = made(UpstreamUnet(num_downs=8, norm="batch", dropout=True), 6), made(UpstreamNLayerD(6, norm="batch"), 7)
    state = dict(g.state_dict())
    del state["model.model.1.model.2.num_batches_tracked"]
    save_run(tmp_path, {"G": state, "D": d}, prefix="module.")
    converted = convert_upstream(load(upstream_files(tmp_path / "latest_net_G.pth")), "run")
    assert converted["model"] == "pix2pix" and not converted["lone_generator"]
    config = converted["configs"]["G"]
    assert config["num_downs"] == 8 and config["use_dropout"] and "norm" not in config  # BatchNorm: the default
    ours = generator_of(converted, "G")
    assert sum(isinstance(m, nn.Dropout) for m in ours.modules()) == 3 == sum(
        isinstance(m, nn.Dropout) for m in g.modules())
    assert_same(g, ours, 256, 3)
    assert converted["configs"]["D"] == {"input_nc": 6, "ndf": NGF, "n_layers": 3, "norm": "batch"}
    assert_same(d, discriminator_of(converted, "D"), 64, 6)


# ------------------------------------------------------------------------- every generator variant

GENERATORS = {
    "resnet_9blocks instance": (lambda: UpstreamResnet(n_blocks=9, norm="instance"), 32),
    "resnet_6blocks instance dropout": (lambda: UpstreamResnet(n_blocks=6, norm="instance", dropout=True), 32),
    "resnet_9blocks batch": (lambda: UpstreamResnet(n_blocks=9, norm="batch"), 32),
    "resnet_6blocks batch dropout": (lambda: UpstreamResnet(n_blocks=6, norm="batch", dropout=True), 32),
    "resnet_6blocks 1 -> 2 channels": (lambda: UpstreamResnet(1, 2, ngf=4, n_blocks=6), 32),
    "unet_128 batch dropout": (lambda: UpstreamUnet(num_downs=7, norm="batch", dropout=True), 128),
    "unet_128 batch": (lambda: UpstreamUnet(num_downs=7, norm="batch", dropout=False), 128),
    "unet_128 instance": (lambda: UpstreamUnet(num_downs=7, norm="instance", dropout=False), 128),
    "unet_256 instance dropout": (lambda: UpstreamUnet(2, 3, num_downs=8, norm="instance", dropout=True), 256),
}


@pytest.mark.parametrize("variant", list(GENERATORS))
@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_every_generator_variant_computes_what_upstream_computes(tmp_path, variant, model):
    make, size = GENERATORS[variant]
    net = made(make(), 11)
    name = "G_A" if model == "cyclegan" else "G"
    save_run(tmp_path, {name: net})
    converted = convert_upstream(load(upstream_files(tmp_path)), str(tmp_path))
    assert converted["model"] == model
    config = converted["configs"][name]
    ours = generator_of(converted, name)
    assert config["family"] == variant.split("_")[0] and config["mask"] is False
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert (config["input_nc"], config["output_nc"]) == (convs[0].in_channels, convs[-1].out_channels)
    assert ours.norm == ("batch" if " batch" in variant else "instance")
    assert_same(net, ours, size, config["input_nc"])
    # dropout: the ResNet's weights record it; a U-Net takes the upstream model's default
    dropouts = sum(isinstance(m, nn.Dropout) for m in ours.modules())
    if variant.startswith("resnet"):
        assert dropouts == sum(isinstance(m, nn.Dropout) for m in net.modules())
    else:
        assert config["use_dropout"] is (model == "pix2pix") and (dropouts > 0) is config["use_dropout"]


# ------------------------------------------------------------------------- discriminators

@pytest.mark.parametrize("n_layers,norm,input_nc", [(3, "instance", 3), (3, "batch", 6), (2, "instance", 3),
                                                    (4, "batch", 3), (1, "instance", 4)])
def test_nlayer_discriminators(tmp_path, n_layers, norm, input_nc):
    d = made(UpstreamNLayerD(input_nc, n_layers=n_layers, norm=norm), n_layers)
    g = made(UpstreamResnet(n_blocks=6), 0)
    state = d.state_dict()
    if norm == "instance":
        state = with_stale_instance_statistics(d, state)
    converted = convert_upstream({"G_A": g.state_dict(), "D_B": state}, "run")
    config = converted["configs"]["D_B"]
    assert config == {"input_nc": input_nc, "ndf": NGF, "n_layers": n_layers, "norm": norm}
    ours = discriminator_of(converted, "D_B")
    assert isinstance(ours, NLayerDiscriminator)
    assert_same(d, ours, 64, input_nc)


# ------------------------------------------------------------------------- refusals

def test_norm_none_is_refused_in_one_line():
    for net in (UpstreamResnet(norm="none"), UpstreamUnet(num_downs=7, norm="none")):
        refusal(r"ckpt \[G\]: a generator without norm layers \(pytorch-CycleGAN-and-pix2pix's --norm none\) "
                "is not supported", {"G": net.state_dict()})
    refusal(r"\[D\]: a discriminator without norm layers .*--norm none",
            {"G": UpstreamUnet(num_downs=7).state_dict(), "D": UpstreamNLayerD(norm="none").state_dict()})


def test_pixel_discriminator_is_refused_in_one_line():
    message = refusal(r"ckpt \[D_A\]: a PixelGAN discriminator \(pytorch-CycleGAN-and-pix2pix's --netD pixel\) is "
                      "not supported", {"G_A": UpstreamResnet(n_blocks=6).state_dict(),
                                        "D_A": UpstreamPixelD().state_dict()})
    assert "convert the generators alone" in message


def test_upsampling_without_transposed_convolutions_is_refused():
    refusal(r"\[G_B\]: no transposed convolution at model.16, where upstream's ResnetGenerator up-samples",
            {"G_B": UpstreamResnet(n_blocks=6, resize=True).state_dict()})


def test_other_inputs_are_refused_in_one_line():
    g = UpstreamResnet(n_blocks=6).state_dict()
    refusal(r"networks D, G_A are not those of one pytorch-CycleGAN-and-pix2pix model \(cyclegan: G_A, G_B, "
            r"D_A, D_B; pix2pix: G, D\)", {"G_A": g, "D": UpstreamNLayerD().state_dict()})
    refusal("networks G_C are not those of one", {"G_C": g})
    refusal(r"no generator among its networks \(D_A\); pass a run with its G_A / G_B files",
            {"D_A": UpstreamNLayerD().state_dict()})
    refusal("no networks to convert", {})
    refusal(r"ckpt \[G\] is not a network's state dict", {"G": {"G_A": g, "epoch": 3}})
    refusal(r"\[G\]: unknown generator layout .*expected a pytorch-CycleGAN-and-pix2pix ResnetGenerator",
            {"G": {"body.0.weight": torch.zeros(4, 3, 3, 3)}})
    original = families.get("resnet")(ngf=4, n_blocks=6, mask=True).to_original()
    refusal(r"\[G_A\] holds masks: a checkpoint of the original DMAD code", {"G_A": original})
    batch = {k: v for k, v in UpstreamResnet(norm="batch").state_dict().items() if k != "model.2.weight"}
    refusal(r"\[G_A\]: the weights do not form a ResnetGenerator .*; not a pytorch-CycleGAN-and-pix2pix "
            "ResnetGenerator layout", {"G_A": batch})
    unet = dict(UpstreamUnet(num_downs=5).state_dict(), **{"model.model.1.model.9.weight": torch.zeros(3)})
    refusal(r"\[G\]: unexpected entry 'model.model.1.model.9.weight'; not a pytorch-CycleGAN-and-pix2pix "
            "UnetGenerator layout", {"G": unet})
    block = UpstreamUnetBlock(4 * NGF, 8 * NGF, innermost=True)
    for outer in (2 * NGF, NGF):
        block = UpstreamUnetBlock(outer, 2 * outer, sub=block)
    shallow = UpstreamUnetBlock(3, NGF, input_nc=3, sub=block, outermost=True)
    refusal(r"\[G\]: a U-Net with 4 levels; upstream's unet_128 / unet_256 have 7 / 8",
            {"G": {f"model.{k}": v for k, v in shallow.state_dict().items()}})
