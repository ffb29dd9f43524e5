"""Checkpoints of pytorch-CycleGAN-and-pix2pix ("upstream", github.com/junyanz/pytorch-CycleGAN-and-pix2pix,
the code the original DMAD code was built on), as this project's networks.

Upstream saves each network on its own, as the bare ``state_dict()`` of the network, to
``<epoch>_net_<name>.pth`` in its run folder ``checkpoints/<experiment>/``: ``<epoch>`` is ``latest``,
an epoch number or ``iter_<n>``; the names are cycle_gan's ``G_A``, ``G_B``, ``D_A``, ``D_B`` and
pix2pix's ``G``, ``D``. A model-zoo file (``horse2zebra.pth``, ``facades_label2photo.pth``) holds one
generator's state dict.

Two pure steps; reading the files is the caller's (``torch.load(path, map_location="cpu",
weights_only=True)`` on each): :func:`upstream_files` finds the files of a checkpoint,
:func:`convert_upstream` turns their state dicts into the native-like dict that
:func:`models.legacy.load_model_state` gives for the original code's files.

Understood, every network at full width and with its sizes taken from the tensors:

* generators: ``ResnetGenerator`` (``--netG resnet_6blocks`` / ``resnet_9blocks``) and ``UnetGenerator``
  (``--netG unet_128`` / ``unet_256``), ``--norm instance`` or ``batch``, with or without dropout
  (models/families/resnet.py and unet.py map the layouts);
* discriminators: ``NLayerDiscriminator`` (``--netD basic`` / ``n_layers``, any ``--n_layers_D``),
  ``--norm instance`` or ``batch`` (the map of models/legacy.py).

Dropped as upstream's own loader drops them: a DataParallel ``module.`` prefix, and the running
statistics that files written with PyTorch < 0.4 hold for InstanceNorms (norm modules with statistics
but no affine parameters: upstream's BatchNorms always have them). A BatchNorm without
``num_batches_tracked`` (PyTorch < 0.4.1) gets a 0 there, as PyTorch's own loader gives it.

Refused with a one-line UserError naming the variant: ``--norm none``, ``--netD pixel``, a generator
that up-samples without transposed convolutions, and every other layout.
"""
import os
from collections import defaultdict

import torch

from models import MODELS, families, legacy
from models.families import layout
from util.errors import UserError

UPSTREAM = "pytorch-CycleGAN-and-pix2pix"
LONE_GENERATOR = "G"  # the net name of a model-zoo file's generator (upstream's test model calls it G too)
# upstream's models by this project's names, with upstream's default for dropout in their generators
# (cycle_gan: --no_dropout; pix2pix: dropout): a U-Net's weights do not record it
DROPOUT_DEFAULT = {"cyclegan": False, "pix2pix": True}
_NET_SEP = "_net_"  # <epoch>_net_<name>.pth
_STATISTICS = {"running_mean", "running_var", "num_batches_tracked"}


# ------------------------------------------------------------------------------------------ files

def _parse(filename):
    """``(epoch, net name)`` of a file named ``<epoch>_net_<name>.pth``, else None."""
    stem, ext = os.path.splitext(filename)
    epoch, sep, net = stem.partition(_NET_SEP)
    if ext != ".pth" or not sep or not epoch or not net:
        return None
    return epoch, net


def net_file(filename):
    """``(epoch, net name)`` of a file name ``<epoch>_net_<name>.pth`` (upstream's naming of a run's
    files, e.g. ``("latest", "G_A")``), else None. Reads nothing."""
    return _parse(os.path.basename(str(filename)))


def is_run_folder(path):
    """True for a folder that holds at least one ``<epoch>_net_<name>.pth`` file: a
    pytorch-CycleGAN-and-pix2pix run folder (:func:`upstream_files` then names its files)."""
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(_parse(name) is not None and os.path.isfile(os.path.join(path, name)) for name in names)


def _epoch_order(epoch):
    return (not epoch.isdigit(), int(epoch) if epoch.isdigit() else 0, epoch)


def upstream_files(path, epoch=None):
    """The files of one pytorch-CycleGAN-and-pix2pix checkpoint: ``{net name: file path}``.

    path:  an upstream run folder (``checkpoints/<experiment>/``): its ``<epoch>_net_<name>.pth``
           files of ``epoch`` (``latest`` when None);
           one such file: it and the files of the same epoch beside it (``epoch``, when given, must
           be the file's);
           any other file: a model-zoo file, one generator: ``{"G": path}`` (``LONE_GENERATOR``).
    epoch: ``latest``, an epoch number or ``iter_<n>``, as upstream names its files; None: ``latest``.
    Only lists folders; reads no file. UserError (one line) for a missing path, an epoch that does
    not match the file given, or a folder without files of that epoch (naming the epochs it holds).
    """
    path = os.path.expanduser(str(path))
    wanted = None if epoch is None else str(epoch)
    if os.path.isdir(path):
        folder, label = path, wanted or "latest"
    elif os.path.isfile(path):
        parsed = _parse(os.path.basename(path))
        if parsed is None:
            if wanted is not None:
                raise UserError(f"{path} is not named <epoch>{_NET_SEP}<net>.pth, so it has no epoch {wanted}: "
                                "pass the run folder or a file of that epoch")
            return {LONE_GENERATOR: path}
        folder, label = os.path.dirname(path) or ".", parsed[0]
        if wanted is not None and wanted != label:
            raise UserError(f"{path} is of epoch {label}, not {wanted}: pass the run folder, or a file of epoch "
                            f"{wanted}")
    else:
        raise UserError(f"{path}: no such file or folder; pass a {UPSTREAM} run folder, one of its "
                        f"<epoch>{_NET_SEP}<net>.pth files or a model-zoo .pth file")
    files, epochs = {}, set()
    for name in sorted(os.listdir(folder)):
        parsed = _parse(name)
        if parsed is None or not os.path.isfile(os.path.join(folder, name)):
            continue
        epochs.add(parsed[0])
        if parsed[0] == label:
            files[parsed[1]] = os.path.join(folder, name)
    if not files:
        held = (f"it holds epochs {', '.join(sorted(epochs, key=_epoch_order))}" if epochs
                else f"it holds no <epoch>{_NET_SEP}<net>.pth files")
        raise UserError(f"{folder}: no {label}{_NET_SEP}<net>.pth files of a {UPSTREAM} run ({held}); pass "
                        "another epoch, one of its files or a model-zoo .pth file")
    return files


# ------------------------------------------------------------------------------------------ state dicts

def clean_state_dict(sd, source):
    """An upstream network's state dict without a DataParallel ``module.`` prefix and without the
    stale InstanceNorm statistics of old files (modules holding only ``running_mean`` /
    ``running_var`` / ``num_batches_tracked``); BatchNorms lacking ``num_batches_tracked`` get a 0.
    UserError when ``sd`` is not a non-empty dict of tensors."""
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UserError(f"{source} is not a network's state dict (a dict of tensors, as {UPSTREAM} saves each "
                        "network); pass the file of one network")
    sd = layout.clean(sd, source)
    leaves = defaultdict(set)
    for key in sd:
        module, _, leaf = key.rpartition(".")
        leaves[module].add(leaf)
    stale = {module for module, names in leaves.items() if names <= _STATISTICS}
    out = {k: v for k, v in sd.items() if k.rpartition(".")[0] not in stale}
    for module, names in leaves.items():
        if module not in stale and "running_mean" in names and "num_batches_tracked" not in names:
            out[f"{module}.num_batches_tracked"] = torch.tensor(0)
    return out


def norm_of(sd, source, what):
    """The norm an upstream network was built with, from its (cleaned) tensors: "batch" when it holds
    running statistics, "instance" when every conv has a bias (upstream gives convs a bias exactly
    with InstanceNorms) and it holds no statistics. UserError for ``--norm none`` (neither)."""
    if any(k.endswith(".running_mean") for k in sd):
        return "batch"
    convs = [k[:-len(".weight")] for k, v in sd.items() if k.endswith(".weight") and v.dim() == 4]
    if convs and all(f"{conv}.bias" in sd for conv in convs):
        return "instance"
    raise UserError(f"{source}: a {what} without norm layers ({UPSTREAM}'s --norm none) is not supported; use one "
                    "trained with --norm instance or --norm batch")


def convert_generator(sd, source, dropout=False):
    """``(config, state_dict)`` of this project for an upstream generator state dict (as saved).

    The family that recognises the layout maps it (``Generator.from_upstream``): ResnetGenerator or
    UnetGenerator; the norm comes from the tensors (:func:`norm_of`), ``dropout`` is the upstream
    model's default where the weights do not say (a U-Net's). ``build_generator(config)`` then loads
    ``state_dict`` strictly and computes what upstream's network computes, in eval mode.
    UserError (one line) for another layout or an unsupported variant."""
    sd = clean_state_dict(sd, source)
    if layout.has_masks(sd):
        raise UserError(f"{source} holds masks: a checkpoint of the original DMAD code, not of {UPSTREAM}; "
                        "pass the original's checkpoint file itself")
    cls = families.upstream_family(sd, source)
    return cls.from_upstream(sd, norm_of(sd, source, "generator"), dropout, source)


def convert_discriminator(sd, source):
    """``(config, state_dict)`` for an upstream ``NLayerDiscriminator`` state dict (as saved):
    ``NLayerDiscriminator(**config)`` loads ``state_dict`` strictly; ``n_layers``, ``ndf``, the input
    channels and the norm come from the tensors. UserError (one line) for ``--netD pixel``,
    ``--norm none`` or another layout."""
    sd = clean_state_dict(sd, source)
    if any(k.startswith("net.") for k in sd):
        raise UserError(f"{source}: a PixelGAN discriminator ({UPSTREAM}'s --netD pixel) is not supported, this "
                        "project's discriminators are PatchGANs (--netD basic / n_layers); convert the generators "
                        "alone")
    norm_of(sd, source, "discriminator")
    return legacy.convert_discriminator_state(sd, source, origin=UPSTREAM)


def upstream_model(names, source):
    """This project's model ("cyclegan" / "pix2pix") whose net names hold ``names`` (upstream's
    cycle_gan and pix2pix use the same ones); UserError for names of no model or of both."""
    known = {model: MODELS[model].generator_names + MODELS[model].discriminator_names for model in DROPOUT_DEFAULT}
    fitting = [model for model, nets in known.items() if set(names) <= set(nets)]
    if not fitting:
        layouts = "; ".join(f"{model}: {', '.join(nets)}" for model, nets in known.items())
        raise UserError(f"{source}: networks {', '.join(sorted(names))} are not those of one {UPSTREAM} model "
                        f"({layouts}); pass one run's files")
    return fitting[0]


def convert_upstream(state_dicts, source):
    """A pytorch-CycleGAN-and-pix2pix checkpoint as a native-like dict.

    state_dicts: ``{net name: state dict}``, the files :func:`upstream_files` names, each loaded as is
                 (all of a run's nets, or only those the caller needs, e.g. the generators).
    source:      how the errors name the checkpoint (the path the user gave).
    Returns ``{"model", "stage": "train", "upstream": True, "nets": {name: state dict}, "configs":
    {name: config}, "epoch": None, "fid": None, "cfg": {}, "lone_generator"}``, the form of
    :func:`models.legacy.load_model_state`: ``model`` is "cyclegan" for G_A / G_B / D_A / D_B and
    "pix2pix" for G / D; generator configs are ``models.networks.build_generator`` configs,
    discriminator configs ``NLayerDiscriminator`` arguments; every state dict loads strictly into
    the net its config builds. ``lone_generator`` is True when the nets are one ``G`` alone (a
    model-zoo file): pix2pix's direction table runs it in the caller's ``--direction``, whatever
    model trained it (a model-zoo CycleGAN generator is a ResNet).
    UserError (one line) for net names of no upstream model, no generator, or a network this
    project cannot represent (see the module docstring).
    """
    if not isinstance(state_dicts, dict) or not state_dicts:
        raise UserError(f"{source}: no networks to convert")
    model = upstream_model(state_dicts, source)
    generators = [name for name in MODELS[model].generator_names if name in state_dicts]
    discriminators = [name for name in MODELS[model].discriminator_names if name in state_dicts]
    if not generators:
        raise UserError(f"{source}: no generator among its networks ({', '.join(sorted(state_dicts))}); pass a run "
                        f"with its {' / '.join(MODELS[model].generator_names)} files")
    nets, configs = {}, {}
    for name in generators:
        configs[name], nets[name] = convert_generator(state_dicts[name], f"{source} [{name}]",
                                                      DROPOUT_DEFAULT[model])
    for name in discriminators:
        configs[name], nets[name] = convert_discriminator(state_dicts[name], f"{source} [{name}]")
    return {"model": model, "stage": "train", "upstream": True, "nets": nets, "configs": configs, "epoch": None,
            "fid": None, "cfg": {}, "lone_generator": set(nets) == {LONE_GENERATOR}}
