"""ResNet generator family (CycleGAN, ``--netG resnet_9blocks`` / ``resnet_6blocks``): plain, mask
(search) and pruned forms from one code path.

Layout (ngf = 64, 9 blocks): stem 7x7 conv (ngf) -> down1 (2 ngf) -> down2 (4 ngf, the residual
stream) -> blocks 0..8 (``x + conv2(conv1(x))``) -> up1 (2 ngf) -> up2 (ngf) -> head 7x7 conv, tanh.
Norms are affine-free InstanceNorms (``norm="instance"``, convs with biases) or BatchNorms
(``norm="batch"``, convs without biases but the head, as pytorch-CycleGAN-and-pix2pix's ``--norm
batch``); ``use_dropout=True`` puts a ``Dropout(0.5)`` after each block's first ReLU (upstream's
``--use_dropout`` ResNet). Masks (``mask=True``) sit after each norm (method.md §5.1).

Pruned widths come as ``widths`` = {channel set: width}; a block whose hidden width is 0 is removed
(it is the identity: method.md §5.1), and ``blocks`` keeps the original block numbers as keys so that
roles such as ``blocks.5`` survive pruning. The stream, written by down2 and every block's conv2, is
the family's one channel group.
"""
import logging
from fractions import Fraction

from torch import nn

from models.families import layout
from models.families.base import NORMS, Generator, make_norm
from models.layers import ConvUnit
from models.structure import ChannelSet, ChannelStructure, ConvSpec, resolve_widths
from util.errors import UserError

log = logging.getLogger("dmad")


def default_widths(ngf, n_blocks):
    widths = {"stem": ngf, "down1": 2 * ngf, "stream": 4 * ngf}
    widths.update({f"blocks.{i}": 4 * ngf for i in range(n_blocks)})
    widths.update({"up1": 2 * ngf, "up2": ngf})
    return widths


class ResnetBlock(nn.Module):
    """``x + conv2(conv1(x))``; conv1 writes the block's hidden set, conv2 writes the stream. ``norm``:
    "instance" (convs with biases) or "batch" (without); ``use_dropout``: Dropout(0.5) after conv1's ReLU."""

    def __init__(self, stream, hidden, mask, norm="instance", use_dropout=False):
        super().__init__()
        bias = norm == "instance"
        self.conv1 = ConvUnit(nn.Conv2d(stream, hidden, 3, bias=bias), make_norm(norm, hidden), mask,
                              nn.ReLU(True), nn.ReflectionPad2d(1), nn.Dropout(0.5) if use_dropout else None)
        self.conv2 = ConvUnit(nn.Conv2d(hidden, stream, 3, bias=bias), make_norm(norm, stream), mask,
                              None, nn.ReflectionPad2d(1))

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class ResnetGenerator(Generator):
    """ResNet generator; ``mask=True`` adds a Mask after every norm (22 or 23 masks for 9 blocks);
    ``norm`` ("instance" or "batch") and ``use_dropout`` as in the module docstring.

    input: [N, input_nc, H, W] in [-1, 1] (H, W multiples of 4) -> output [N, output_nc, H, W].
    """

    family = "resnet"
    netG_choices = ("resnet_9blocks", "resnet_6blocks")
    depth_name = "n_blocks"
    norms = ("instance", "batch")  # CycleGAN's InstanceNorm by default (--norm)
    # A variant with other residual blocks (families/mobile_resnet.py) overrides these:
    block_class = ResnetBlock
    down1_role = "outer"  # loss role of down-conv 1's mask (method.md §3.4)
    # the original's block Sequential: index of each conv and mask, mask variant (True) / plain (False)
    original_block = {True: {"conv1": 1, "conv1.mask": 3, "conv2": 6, "conv2.mask": 8},
                      False: {"conv1": 1, "conv2": 5}}
    original_conv_parts = {"": ""}  # sub-modules of one block conv: {our suffix: the original's}
    hidden_conv = "conv1.conv"  # the conv whose output width is a block's hidden width

    @classmethod
    def netG_args(cls, netG):
        return {"n_blocks": int(netG.split("_")[1].replace("blocks", ""))}

    @classmethod
    def default_netG(cls, crop_size):
        return "resnet_9blocks"

    @classmethod
    def options_config(cls, opt, mask):
        return {"family": cls.family, "input_nc": opt.input_nc, "output_nc": opt.output_nc, "ngf": opt.ngf,
                **cls.netG_args(opt.netG), "widths": None, "mask": mask,
                "unmask_last_upconv": opt.unmask_last_upconv, **cls.norm_config(opt)}

    @classmethod
    def size_multiple(cls, config):
        return 4  # two stride-2 down-convs

    @classmethod
    def min_size(cls, config):
        return 8  # the reflection paddings of the blocks need two pixels after the two down-convs

    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9, widths=None, mask=False,
                 unmask_last_upconv=False, norm="instance", use_dropout=False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
        self.input_nc, self.output_nc, self.ngf, self.n_blocks = input_nc, output_nc, ngf, n_blocks
        self.has_mask, self.unmask_last_upconv = mask, unmask_last_upconv
        self.norm, self.use_dropout = norm, use_dropout
        self.widths = w = resolve_widths(default_widths(ngf, n_blocks), widths, f"a {n_blocks}-block ResNet")
        relu = lambda: nn.ReLU(True)  # noqa: E731
        bias = norm == "instance"  # a BatchNorm's shift replaces the conv bias
        self.stem = ConvUnit(nn.Conv2d(input_nc, w["stem"], 7, bias=bias), make_norm(norm, w["stem"]), mask,
                             relu(), nn.ReflectionPad2d(3))
        self.down1 = ConvUnit(nn.Conv2d(w["stem"], w["down1"], 3, 2, 1, bias=bias), make_norm(norm, w["down1"]),
                              mask, relu())
        self.down2 = ConvUnit(nn.Conv2d(w["down1"], w["stream"], 3, 2, 1, bias=bias),
                              make_norm(norm, w["stream"]), mask, relu())
        self.blocks = nn.ModuleDict({
            str(i): self.make_block(w["stream"], w[f"blocks.{i}"], mask)
            for i in range(n_blocks) if w[f"blocks.{i}"] > 0})
        self.up1 = ConvUnit(nn.ConvTranspose2d(w["stream"], w["up1"], 3, 2, 1, output_padding=1, bias=bias),
                            make_norm(norm, w["up1"]), mask, relu())
        self.up2 = ConvUnit(nn.ConvTranspose2d(w["up1"], w["up2"], 3, 2, 1, output_padding=1, bias=bias),
                            make_norm(norm, w["up2"]), mask and not unmask_last_upconv, relu())
        self.head = ConvUnit(nn.Conv2d(w["up2"], output_nc, 7, bias=True), act=nn.Tanh(),
                             pad=nn.ReflectionPad2d(3))

    def make_block(self, stream, hidden, mask):
        """One residual block of ``block_class`` with this generator's norm and dropout."""
        return self.block_class(stream, hidden, mask, self.norm, self.use_dropout)

    def forward(self, x):
        x = self.down2(self.down1(self.stem(x)))
        for block in self.blocks.values():
            x = block(x)
        return self.head(self.up2(self.up1(x)))

    def forward_features(self, x, names):
        """Output and features by role: ``down2`` (the stream after down-conv 2) and ``blocks.i`` (the
        stream after original block i; a removed block is the identity, so its feature is the stream
        after the last kept block before it). Returns (output, {name: tensor})."""
        wanted = set(names)
        feats = {}
        x = self.down2(self.down1(self.stem(x)))
        if "down2" in wanted:
            feats["down2"] = x
        for i in range(self.n_blocks):
            block = self.blocks[str(i)] if str(i) in self.blocks else None
            if block is not None:
                x = block(x)
            if f"blocks.{i}" in wanted:
                feats[f"blocks.{i}"] = x
        return self.head(self.up2(self.up1(x))), feats

    def structure(self):
        """The channel structure (see models/structure.py) of this instance."""
        w, m = self.widths, self.has_mask
        q = Fraction(1, 4)
        mask = (lambda path: path if m else None)  # noqa: E731
        # every conv has a bias with InstanceNorms; with BatchNorms only the head has one
        affine = self.norm == "batch"
        conv = lambda *a, **k: ConvSpec(*a, **{"bias": not affine, "norm_affine": affine, **k})  # noqa: E731
        convs = [
            conv("stem.conv", "stem", (None,), mask("stem.mask"), "stem.norm", kernel=7, role="outer",
                 fold="consumer"),
            conv("down1.conv", "down1", ("stem",), mask("down1.mask"), "down1.norm", out_scale=Fraction(1, 2),
                 role=self.down1_role, fold="consumer"),
            # the stream's writers (down2 and every conv2) have no exact fold: their outputs are added
            conv("down2.conv", "stream", ("down1",), mask("down2.mask"), "down2.norm", out_scale=q),
        ]
        for i in range(self.n_blocks):
            convs += self.block_convs(f"blocks.{i}", mask, conv)
        convs += [
            conv("up1.conv", "up1", ("stream",), mask("up1.mask"), "up1.norm", transposed=True,
                 out_scale=Fraction(1, 2), role="outer", fold="consumer"),
            conv("up2.conv", "up2", ("up1",), mask("up2.mask") if not self.unmask_last_upconv else None,
                 "up2.norm", transposed=True, role="last_up", fold="consumer"),
            conv("head.conv", None, ("up2",), kernel=7, bias=True),
        ]
        sets = {"stem": ChannelSet("stem", w["stem"]), "down1": ChannelSet("down1", w["down1"]),
                "stream": ChannelSet("stream", w["stream"])}
        for i in range(self.n_blocks):
            sets[f"blocks.{i}"] = ChannelSet(f"blocks.{i}", w[f"blocks.{i}"], removes=f"blocks.{i}")
        sets["up1"] = ChannelSet("up1", w["up1"])
        sets["up2"] = ChannelSet("up2", w["up2"])
        return ChannelStructure(self.input_nc, self.output_nc, sets, convs)

    @staticmethod
    def block_convs(p, mask, conv):
        """ConvSpecs of block ``p`` (``"blocks.3"``); ``mask(path)`` is the path or None (plain net),
        ``conv`` builds a ConvSpec with a bias."""
        q = Fraction(1, 4)
        return [
            conv(f"{p}.conv1.conv", p, ("stream",), mask(f"{p}.conv1.mask"), f"{p}.conv1.norm",
                 out_scale=q, unit=p, fold="consumer"),
            conv(f"{p}.conv2.conv", "stream", (p,), mask(f"{p}.conv2.mask"), f"{p}.conv2.norm",
                 out_scale=q, unit=p),
        ]

    def config(self):
        """Constructor arguments (JSON-able); ``ResnetGenerator(**g.config())`` rebuilds the architecture.
        ``norm`` and ``use_dropout`` are named only when they differ from the defaults (InstanceNorm,
        no dropout), so that the configs of every generator built before they existed stay as they were."""
        config = {"family": self.family, "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                  "n_blocks": self.n_blocks, "widths": dict(self.widths), "mask": self.has_mask,
                  "unmask_last_upconv": self.unmask_last_upconv}
        if self.norm != "instance":
            config["norm"] = self.norm
        if self.use_dropout:
            config["use_dropout"] = True
        return config

    def distill_roles(self):
        """The stream after down-conv 2, after original blocks 2 and 5 and after the last block (the
        original's ``model.9/12/15/18``); a removed block yields the stream after the last kept one."""
        roles = ["down2"] + [f"blocks.{i}" for i in (2, 5, self.n_blocks - 1) if i < self.n_blocks]
        return list(dict.fromkeys(roles))  # 6 blocks: block 5 is also the last one, hook it once

    @classmethod
    def upgrade_state_dict(cls, state_dict):
        """Files written before the search state left the network hold the stream's block-loss
        coefficients as the buffer ``block_coeff``."""
        if "block_coeff" not in state_dict:
            return state_dict, {}
        state_dict = dict(state_dict)
        return state_dict, {"stream": state_dict.pop("block_coeff")}

    # ------------------------------------------------------------------ the original code's layout
    @classmethod
    def is_original(cls, state_dict):
        return "model.1.weight" in state_dict and any(k.endswith(".conv_block.1.weight") for k in state_dict)

    @classmethod
    def from_original(cls, sd, cfg, source):
        """§5.1 (mask) / §5.2 (plain or pruned): ``cfg`` (the original's 23-entry list of a pruned
        ResNet) tells which blocks were kept; without it the present blocks are blocks 0..n-1."""
        mask = layout.has_masks(sd)
        pairs, n_blocks, kept, unmask_last = _original_pairs(cls, sd, cfg, source)
        state = layout.rename(sd, pairs, source)
        shape = lambda role: layout.require(state, f"{role}.weight", source).shape  # noqa: E731
        widths = _shape_widths(cls, shape, n_blocks, kept)
        if cfg is not None and not mask:
            expected = _cfg_list(cfg)
            have = [widths[k] for k in ("stem", "down1", "stream")]
            if expected[:3] != have:
                log.warning("%s: its cfg %s disagrees with the weight shapes %s; the shapes are used", source,
                            expected[:3], have)
        ngf = widths["stem"]
        if not mask and widths != default_widths(ngf, n_blocks):
            ngf = layout.ORIGINAL_PLAIN_NGF  # a pruned model: the full width it came from
        config = {"family": cls.family, "input_nc": int(shape("stem.conv")[1]),
                  "output_nc": int(shape("head.conv")[0]), "ngf": ngf, "n_blocks": n_blocks, "widths": widths,
                  "mask": mask, "unmask_last_upconv": unmask_last}
        layout.check_fits(cls, config, state, source)
        return config, state

    def to_original(self):
        """This network's state dict in the original code's layout (§5.1 mask, §5.2 plain or pruned).
        UserError for a generator the original could not build (BatchNorms or dropout)."""
        if self.norm != "instance" or self.use_dropout:
            raise UserError(f"{type(self).__name__} with {'BatchNorms' if self.norm == 'batch' else 'dropout'}: "
                            "the original DMAD code has no such ResNet, its layout cannot hold it")
        pairs = _pairs(type(self), self.has_mask, sorted(int(i) for i in self.blocks), self.unmask_last_upconv)
        return layout.rename(self.state_dict(), [(orig, ours) for ours, orig in pairs], type(self).__name__)

    # ------------------------------------------------------------------ pytorch-CycleGAN-and-pix2pix's layout
    @classmethod
    def is_upstream(cls, state_dict):
        return "model.1.weight" in state_dict and any(k.endswith(".conv_block.1.weight") for k in state_dict)

    @classmethod
    def from_upstream(cls, sd, norm, dropout, source):
        """Upstream's ``ResnetGenerator`` (``--netG resnet_<n>blocks``): the original's plain layout
        (§5.2, every block kept), its norms paired too when they hold tensors (BatchNorms), and with
        ``--use_dropout`` a Dropout after each block's first ReLU, which moves the block's second conv
        from ``conv_block.5`` to ``conv_block.6``; the weights record it, so ``dropout`` is not read.
        The number of blocks, ngf and the image channels come from the keys and shapes. UserError for
        another layout, e.g. an up-sampling without transposed convolutions."""
        what = "a pytorch-CycleGAN-and-pix2pix ResnetGenerator layout"
        first = _first_block(False)
        present = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
        if present != list(range(first, first + len(present))):
            raise UserError(f"{source}: residual blocks at model.{present}; not {what} (its blocks follow each "
                            f"other from model.{first} on)")
        n = len(present)
        second = sd.get(f"model.{first}.conv_block.6.weight")  # a conv there: a Dropout before it
        with_dropout = second is not None and second.dim() == 4
        # upstream up-samples right after the blocks with two transposed convs: weights [in, out, 3, 3]
        channels = layout.require(sd, "model.7.weight", source, what).shape[0]
        for index in (first + n, first + n + 3):
            weight = sd.get(f"model.{index}.weight")
            if weight is None or weight.dim() != 4 or weight.shape[0] != channels:
                raise UserError(f"{source}: no transposed convolution at model.{index}, where upstream's "
                                "ResnetGenerator up-samples: a generator that up-samples otherwise (e.g. resize "
                                "and convolution) is not supported")
            channels = weight.shape[1]
        kept = list(range(n))
        pairs = _pairs(cls, False, kept, False, norms=norm == "batch", dropout=with_dropout)
        state = layout.rename(sd, pairs, source, what)
        shape = lambda role: layout.require(state, f"{role}.weight", source, what).shape  # noqa: E731
        widths = _shape_widths(cls, shape, n, kept)
        config = {"family": cls.family, "input_nc": int(shape("stem.conv")[1]),
                  "output_nc": int(shape("head.conv")[0]), "ngf": widths["stem"], "n_blocks": n, "widths": widths,
                  "mask": False, "unmask_last_upconv": False}
        if norm != "instance":
            config["norm"] = norm
        if with_dropout:
            config["use_dropout"] = True
        layout.check_fits(cls, config, state, source, what)
        return config, state


def _shape_widths(cls, shape, n_blocks, kept):
    """{channel set: width} of a ResNet from its weight shapes (``shape(role)``: the shape of the
    conv ``role``'s weight, in our names); blocks not ``kept`` have width 0."""
    widths = {"stem": shape("stem.conv")[0], "down1": shape("down1.conv")[0], "stream": shape("down2.conv")[0],
              "up1": shape("up1.conv")[1], "up2": shape("up2.conv")[1]}
    for i in range(n_blocks):
        widths[f"blocks.{i}"] = shape(f"blocks.{i}.{cls.hidden_conv}")[0] if i in kept else 0
    return {k: int(v) for k, v in widths.items()}


def _kept_blocks(cfg, present, source):
    """Original block numbers of the ``present`` blocks of a pruned plain ResNet, and the total
    number of blocks, from its 23-entry cfg (k_i = cfg[3 + 2i] = 0 marks a removed block)."""
    if cfg is None:
        return list(range(len(present))), len(present)
    cfg = _cfg_list(cfg)
    if len(cfg) < 5 or (len(cfg) - 5) % 2:
        raise UserError(f"{source}: its cfg has {len(cfg)} entries; a ResNet cfg has 5 + 2 x blocks")
    n_blocks = (len(cfg) - 5) // 2
    kept = [i for i in range(n_blocks) if cfg[3 + 2 * i] > 0]
    if len(kept) != len(present):
        raise UserError(f"{source}: its cfg keeps {len(kept)} residual blocks but the weights hold "
                               f"{len(present)}")
    return kept, n_blocks


def _original_pairs(cls, sd, cfg, source):
    """[(our module, original module)], n_blocks, kept block numbers, unmask_last_upconv of an original
    ResNet state dict."""
    mask = layout.has_masks(sd)
    present = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
    first = _first_block(mask)
    if present != list(range(first, first + len(present))):
        raise UserError(f"{source}: residual blocks at model.{present}; not a ResNet layout of the original "
                        "DMAD code")
    n = len(present)
    if mask:
        kept, n_blocks = list(range(n)), n
        unmask_last = f"model.{first + n + 6}.mask_weight" not in sd  # up2's mask: convT, IN, Mask
    else:
        (kept, n_blocks), unmask_last = _kept_blocks(cfg, present, source), False
    return _pairs(cls, mask, kept, unmask_last), n_blocks, kept, unmask_last


def _first_block(mask):
    return 13 if mask else 10  # the index of the first block in ``model`` (§5.1 / §5.2)


def _pairs(cls, mask, kept, unmask_last, norms=False, dropout=False):
    """[(our module, original module)] of a ResNet holding the blocks ``kept`` (original numbers), in
    the original's ``model`` Sequential (§5.1 mask, §5.2 plain or pruned). Upstream's plain layout is
    the same, with ``norms``: the norm right after each conv is paired too (BatchNorms hold tensors,
    InstanceNorms none) and ``dropout``: a Dropout in each block (see ``_block_pairs``)."""
    first, n = _first_block(mask), len(kept)
    if mask:
        pairs = [("stem.conv", "model.1"), ("stem.mask", "model.3"), ("down1.conv", "model.5"),
                 ("down1.mask", "model.7"), ("down2.conv", "model.9"), ("down2.mask", "model.11")]
        for j, i in enumerate(kept):
            pairs += _block_pairs(cls, f"blocks.{i}", f"model.{first + j}.conv_block", True)
        up1, up2 = first + n, first + n + 4  # convT, IN, Mask, ReLU
        pairs += [("up1.conv", f"model.{up1}"), ("up1.mask", f"model.{up1 + 2}"), ("up2.conv", f"model.{up2}")]
        if not unmask_last:
            pairs.append(("up2.mask", f"model.{up2 + 2}"))
        # after up2: IN, [Mask], ReLU, pad, conv
        return pairs + [("head.conv", f"model.{up2 + (4 if unmask_last else 5)}")]
    # pad, conv, norm, ReLU, (conv, norm, ReLU) x 2, blocks, (convT, norm, ReLU) x 2, pad, conv
    units = [("stem", 1), ("down1", 4), ("down2", 7), ("up1", first + n), ("up2", first + n + 3)]
    pairs = []
    for unit, index in units:
        pairs.append((f"{unit}.conv", f"model.{index}"))
        if norms:
            pairs.append((f"{unit}.norm", f"model.{index + 1}"))
    for j, i in enumerate(kept):
        pairs += _block_pairs(cls, f"blocks.{i}", f"model.{first + j}.conv_block", False, norms, dropout)
    return pairs + [("head.conv", f"model.{first + n + 7}")]


def _block_pairs(cls, ours, original, mask, norms=False, dropout=False):
    """[(our module, original module)] of one residual block, by the family's ``original_block``;
    ``norms``: each conv's norm (the next index) too; ``dropout``: a Dropout after the first ReLU moves
    the second conv and its norm one index on (upstream's ``--use_dropout``)."""
    indices = cls.original_block[mask]
    pairs = []
    for conv in ("conv1", "conv2"):
        index = indices[conv] + (1 if dropout and conv == "conv2" else 0)
        pairs += [(f"{ours}.{conv}.conv{a}", f"{original}.{index}{b}") for a, b in cls.original_conv_parts.items()]
        if norms:
            pairs.append((f"{ours}.{conv}.norm", f"{original}.{index + 1}"))
        if mask:
            pairs.append((f"{ours}.{conv}.mask", f"{original}.{indices[conv + '.mask']}"))
    return pairs


def _cfg_list(cfg):
    """The original's 23-entry cfg as ints; the mobile pix2pix stored it as ``(cfg, None)`` (§10)."""
    cfg = layout.plain(cfg)
    if len(cfg) == 2 and cfg[1] is None:
        cfg = cfg[0]
    return [int(c) for c in cfg]
