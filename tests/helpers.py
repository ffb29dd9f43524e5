"""Helpers shared by test files of several folders: the seed README's option list, a random-weight FID
network, native search checkpoints and prune.py's command line, the equivalence of a pruned and a
masked generator, and a learning-rate schedule of chosen options."""
import types

import torch
from torch import nn

from metrics import fid
from models.base_model import LRSchedule
from models.discriminator import NLayerDiscriminator
from models.networks import build_generator
from pipeline.checkpoint import FORMAT, VERSION, save_checkpoint
from tests.conftest import ALIGNED, UNALIGNED, randomise


# ---------------------------------------------------------------- options

# Every option of the seed README's "Other parameter" list (the README is not available at test time).
SEED_OPTIONS = (
    "dataroot", "name", "gpu_ids", "checkpoints_dir", "phase", "load_path", "use_pretrain_d",
    "pretrain_path", "model", "input_nc", "output_nc", "ngf", "ndf", "no_dropout", "mask",
    "mask_weight_decay", "mask_loss_type", "unmask_last_upconv", "update_bound_rule", "continue_train",
    "dataset_mode", "direction", "serial_batches", "num_threads", "batch_size", "load_size", "crop_size",
    "max_dataset_size", "preprocess", "no_flip", "display_winsize", "block_coeff", "upconv_coeff",
    "upconv_solo", "display_freq", "display_ncols", "display_id", "display_server", "display_env",
    "display_port", "update_html_freq", "print_freq", "no_html", "save_epoch_freq", "epoch_count",
    "n_epochs", "n_epochs_decay", "lr", "gan_mode", "pool_size", "lr_policy", "lr_decay_iters", "lambda_A",
    "lambda_B", "lambda_identity", "lambda_L1", "lambda_group_lasso", "lambda_distill", "lambda_d",
    "attention_normal", "threshold", "upconv_bound", "upconv_relu", "lambda_update_coeff", "ntest",
    "aspect_ratio", "drn_path", "finetune", "scratch",
)


# ---------------------------------------------------------------- metrics

def _random_inception():
    """The FID network with He-initialised convolutions, so that pool3 features are O(1), not ~1e-8."""
    torch.manual_seed(0)
    net = fid.fid_inception_network()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


# ---------------------------------------------------------------- pruning

def assert_equivalent(masked, slim, size, atol=1e-5, seed=0):
    masked.eval()
    slim.eval()
    x = torch.randn(2, masked.input_nc, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want, got = masked(x), slim(x)
    assert want.shape == got.shape
    assert want.std() > 1e-3, "the test input gives a trivial output"
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


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


# ---------------------------------------------------------------- learning-rate schedule

def schedule(**kw):
    opt = dict(lr_policy="linear", n_epochs=3, n_epochs_decay=2, lr_decay_iters=2)
    opt.update(kw)
    return LRSchedule(types.SimpleNamespace(**opt))
