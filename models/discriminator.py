"""PatchGAN discriminator (70x70 receptive field with 3 layers), method.md §5.6.

Layers by role: ``conv1`` (no norm) -> LReLU -> ``conv2..conv{n}`` (norm, LReLU) -> ``conv{n+1}`` (s1) ->
LReLU -> ``head`` (1 channel). With the default 3 layers the activations after conv2 and conv4 are
the original's ``model.4`` and ``model.10``, the features co-attention and discriminator distillation
read (``act2`` and ``act4``).
"""
from torch import nn


def min_input_size(n_layers=3):
    """The smallest image side (px) the PatchGAN of ``n_layers`` accepts: every 4x4 convolution
    (padding 1; stride 2 for conv1..conv{n}, 1 for conv{n+1} and the head) must leave at least one
    pixel, and the instance norms after conv2..conv{n+1} need more than one. 24 for 3 layers."""
    def fits(side):
        for i in range(1, n_layers + 3):  # conv1 .. conv{n+1}, head
            side = (side + 2 - 4) // (2 if i <= n_layers else 1) + 1
            if side < 1 or (2 <= i <= n_layers + 1 and side < 2):
                return False
        return True

    side = 1
    while not fits(side):
        side += 1
    return side


class NLayerDiscriminator(nn.Module):
    """input [N, input_nc, H, W] -> patch logits [N, 1, H/8 - 2, W/8 - 2]."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3, norm="instance"):
        super().__init__()
        self.input_nc, self.ndf, self.n_layers, self.norm_kind = input_nc, ndf, n_layers, norm
        batch = norm == "batch"
        make_norm = (lambda c: nn.BatchNorm2d(c)) if batch else (lambda c: nn.InstanceNorm2d(c))
        layers = {"conv1": nn.Conv2d(input_nc, ndf, 4, 2, 1), "act1": nn.LeakyReLU(0.2, True)}
        width = ndf
        for i in range(2, n_layers + 2):
            stride = 2 if i <= n_layers else 1
            out = ndf * min(2 ** (i - 1), 8)
            layers[f"conv{i}"] = nn.Conv2d(width, out, 4, stride, 1, bias=not batch)
            layers[f"norm{i}"] = make_norm(out)
            layers[f"act{i}"] = nn.LeakyReLU(0.2, True)
            width = out
        layers["head"] = nn.Conv2d(width, 1, 4, 1, 1)
        self.layers = nn.ModuleDict(layers)

    def forward(self, x):
        for layer in self.layers.values():
            x = layer(x)
        return x

    def forward_features(self, x, names):
        """Output and the activations named in ``names`` (e.g. ``act2``, ``act4``): (out, {name: tensor})."""
        feats = {}
        for key, layer in self.layers.items():
            x = layer(x)
            if key in names:
                feats[key] = x  # the next layer (a conv) does not modify it in place
        return x, feats

    def config(self):
        return {"input_nc": self.input_nc, "ndf": self.ndf, "n_layers": self.n_layers, "norm": self.norm_kind}
