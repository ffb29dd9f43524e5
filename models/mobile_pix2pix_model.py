"""Mobile pix2pix (``--model mobilepix2pix``): the pix2pix objective (GAN + L1, aligned data, a
conditional PatchGAN on the 6-channel (input, output) stack) with the separable-convolution ResNet
generator of the mobile CycleGAN (method.md §5.5), not a U-Net.

Differences to pix2pix, all from the original: the discriminator uses InstanceNorm instead of
BatchNorm (§5.6); down-conv 1's mask takes ``--mask_loss_type`` with weight 1 (§3.4, family argument
``down1_role="own"``); the co-attention target weighs the teacher-D map by 0.25 instead of 0.5
(§7.3). ``--ngf``/``--ndf`` are honoured (the original hard-coded the D width at 128; its scripts pass
``--ndf 128``)."""

from models.families.mobile_resnet import MobileResnetGenerator
from models.networks import generator_config
from models.pix2pix_model import Pix2PixModel


class MobilePix2PixModel(Pix2PixModel):
    name = "mobilepix2pix"
    generator_family = MobileResnetGenerator  # --netG mobile_resnet_9blocks (default) or _6blocks
    discriminator_norm = "instance"  # a conditional PatchGAN with InstanceNorm (§5.6)
    attention_weights = (0.5, 0.25)  # (teacher G map, teacher D map) of the co-attention target, §7.3

    @classmethod
    def generator_configs(cls, opt):
        return {"G": dict(generator_config(opt), down1_role="own")}

    def __init__(self, opt, device, gen_configs=None):
        super().__init__(opt, device, self.generator_configs(opt) if gen_configs is None else gen_configs)
