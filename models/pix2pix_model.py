"""pix2pix (method.md §8.3): a U-Net generator and a conditional PatchGAN, GAN + L1 losses."""
import torch
import torch.nn.functional as F

from models.base_model import BaseModel, Direction
from models.families.unet import UnetGenerator
from models.losses import GANLoss, gradient_penalty
from models.networks import generator_config


class Pix2PixModel(BaseModel):
    name = "pix2pix"
    objective = "pix2pix"  # paired: one generator, a conditional discriminator, GAN + L1
    discriminator_norm = "batch"
    attention_weights = (0.5, 0.5)  # co-attention target: teacher G map, teacher D map (method.md §7.3)
    generator_names = ("G",)
    generator_family = UnetGenerator  # --netG chooses among its variants
    dataset_mode = "aligned"
    eval_phase = "val"  # the split evaluation scores
    conditional_d = True  # D judges (input ++ output) channel stacks
    discriminator_names = ("D",)
    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")
    visual_names = ("real_A", "fake_B", "real_B")

    @classmethod
    def add_options(cls, group):
        """The weight of pix2pix's L1 loss (docs/method.md §8.3)."""
        group.add_argument("--lambda_L1", type=float, default=100.0, help="weight for L1 loss. default: 100.0")

    @classmethod
    def directions(cls, direction="AtoB"):
        # one generator, translating the way --direction says; its early stop is --AtoB_macs_threshold
        return (Direction(direction, "G", "D", "real_A", "fake_B", "A", "AtoB_macs_threshold", "Early stop!!!"),)

    @classmethod
    def discriminator_configs(cls, opt):
        """A conditional PatchGAN: it judges (input ++ output) channel stacks."""
        return {"D": {"input_nc": opt.input_nc + opt.output_nc, "ndf": opt.ndf, "n_layers": 3,
                      "norm": cls.discriminator_norm}}

    def __init__(self, opt, device, gen_configs=None):
        if gen_configs is None:
            gen_configs = {"G": generator_config(opt)}
        super().__init__(opt, device, gen_configs, self.discriminator_configs(opt))
        self.criterionGAN = GANLoss(opt.gan_mode)

    def forward(self):
        self.fake_B = self.translate("G", self.real_A)

    def backward_D(self):
        netD = self.nets["D"]
        with self.autocast():
            fake = torch.cat((self.real_A, self.fake_B), 1).detach()
            real = torch.cat((self.real_A, self.real_B), 1)
            self.loss_D_fake = self.criterionGAN(netD(fake), False)
            self.loss_D_real = self.criterionGAN(netD(real), True)
            self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
            if self.opt.gan_mode == "wgangp":
                self.loss_D = self.loss_D + gradient_penalty(netD, real, fake)
        self.backward(self.loss_D)

    def backward_G(self):
        with self.autocast():
            fake = torch.cat((self.real_A, self.fake_B), 1)
            self.loss_G_GAN = self.criterionGAN(self.nets["D"](fake), True, for_discriminator=False)
            self.loss_G_L1 = F.l1_loss(self.fake_B, self.real_B) * self.opt.lambda_L1
            self.loss_G = self.loss_G_GAN + self.loss_G_L1 + self.generator_extra_loss()
        self.backward(self.loss_G)

    def optimize_parameters(self):
        netD = self.nets["D"]
        with self.autocast():
            self.forward()
        self.set_requires_grad([netD], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        self.backward_D()
        self.step("D")
        self.set_requires_grad([netD], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.backward_G()
        self.step("G")
        self.end_step()
