"""GAN objectives (method.md §8.3) and the WGAN-GP gradient penalty."""
import torch
import torch.nn.functional as F
from torch import nn


GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")  # --gan_mode


class GANLoss(nn.Module):
    """``loss(prediction, target_is_real, for_discriminator=True)``.

    lsgan: MSE to 1/0; vanilla: BCE-with-logits to 1/0; hinge: D ``mean(relu(1 -/+ p))``, G ``-mean(p)``;
    wgangp: D ``-mean(p)`` for real and ``mean(p)`` for fake, G ``-mean(p)`` (add
    :func:`gradient_penalty` to the D loss).
    """

    def __init__(self, gan_mode):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan mode {gan_mode!r}")
        self.gan_mode = gan_mode

    def forward(self, prediction, target_is_real, for_discriminator=True):
        mode = self.gan_mode
        if mode in ("lsgan", "vanilla"):
            target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
            if mode == "lsgan":
                return F.mse_loss(prediction, target)
            return F.binary_cross_entropy_with_logits(prediction, target)
        if not for_discriminator:
            return -prediction.mean()  # the generator form of hinge and wgan
        if mode == "hinge":
            return F.relu(1 - prediction).mean() if target_is_real else F.relu(1 + prediction).mean()
        return -prediction.mean() if target_is_real else prediction.mean()


def gradient_penalty(netD, real, fake, weight=10.0):
    """WGAN-GP: ``weight * mean((||grad D(x_hat)||_2 - 1)^2)`` on random interpolates of real and fake."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = netD(mixed)
    grad, = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
