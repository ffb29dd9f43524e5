"""CycleGAN (method.md §8.3): two generators, two discriminators, cycle and identity losses."""
import torch
import torch.nn.functional as F

from models.base_model import BaseModel, Direction
from models.families.resnet import ResnetGenerator
from models.image_pool import ImagePool
from models.losses import GANLoss, gradient_penalty
from models.networks import generator_config
from util.errors import UserError

# G_A translates A -> B and is judged by D_A; G_B translates B -> A and is judged by D_B. Both always
# run; --direction BtoA only swaps the data sides.
_DIRECTIONS = (Direction("AtoB", "G_A", "D_A", "real_A", "fake_B", "A", "AtoB_macs_threshold", "AtoB early stop!"),
               Direction("BtoA", "G_B", "D_B", "real_B", "fake_A", "B", "BtoA_macs_threshold", "BtoA early stop!"))


class CycleGANModel(BaseModel):
    name = "cyclegan"
    objective = "cyclegan"  # unpaired: two generators, cycle and identity losses
    discriminator_norm = "instance"
    attention_weights = (0.5, 0.5)  # co-attention target: teacher G map, teacher D map (method.md §7.3)
    generator_names = ("G_A", "G_B")
    generator_family = ResnetGenerator  # --netG chooses among its variants
    dataset_mode = "unaligned"
    eval_phase = "test"  # the split evaluation scores
    conditional_d = False
    discriminator_names = ("D_A", "D_B")
    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
    visual_names = ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A")

    @classmethod
    def directions(cls, direction="AtoB"):
        return _DIRECTIONS

    @classmethod
    def discriminator_configs(cls, opt):
        """PatchGANs: D_A judges B images (output_nc channels), D_B judges A images."""
        d = {"input_nc": opt.output_nc, "ndf": opt.ndf, "n_layers": 3, "norm": cls.discriminator_norm}
        return {"D_A": d, "D_B": dict(d, input_nc=opt.input_nc)}

    @classmethod
    def add_options(cls, group):
        """The CycleGAN losses' weights and the image pool (docs/method.md §8.3)."""
        group.add_argument("--pool_size", type=int, default=100,
                           help="the size of image buffer that stores previously generated images. default: 100")
        group.add_argument("--lambda_A", type=float, default=10.0,
                           help="weight for cycle loss (A -> B -> A). default: 10.0")
        group.add_argument("--lambda_B", type=float, default=10.0,
                           help="weight for cycle loss (B -> A -> B). default: 10.0")
        group.add_argument("--lambda_identity", type=float, default=0.5,
                           help="use identity mapping, weight relative to the cycle loss. default: 0.5")

    @classmethod
    def check_options(cls, opt):
        # test.py computes no identity loss: its channel counts are checked against the checkpoint
        if opt.isTrain and opt.input_nc != opt.output_nc and opt.lambda_identity > 0:
            raise UserError(f"the identity loss feeds B images to G_A, which needs --input_nc == --output_nc "
                            f"(got {opt.input_nc} and {opt.output_nc}): add --lambda_identity 0")

    def __init__(self, opt, device, gen_configs=None):
        if gen_configs is None:
            config = generator_config(opt)
            # G_B maps B (output_nc channels) back to A (input_nc channels)
            gen_configs = {"G_A": config, "G_B": dict(config, input_nc=opt.output_nc, output_nc=opt.input_nc)}
        super().__init__(opt, device, gen_configs, self.discriminator_configs(opt))
        self.criterionGAN = GANLoss(opt.gan_mode)
        self.pools = {"A": ImagePool(opt.pool_size, opt.seed * 2 + 1), "B": ImagePool(opt.pool_size, opt.seed * 2 + 2)}

    def forward(self):
        G_A, G_B = self.nets["G_A"], self.nets["G_B"]
        self.fake_B = self.translate("G_A", self.real_A)
        self.rec_A = G_B(self.fake_B)
        self.fake_A = self.translate("G_B", self.real_B)
        self.rec_B = G_A(self.fake_A)

    def backward_G(self):
        with self.autocast():
            self.generator_losses()
        self.backward(self.loss_G)

    def generator_losses(self):
        o = self.opt
        G_A, G_B, D_A, D_B = (self.nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        if o.lambda_identity > 0:
            self.idt_A = G_A(self.real_B)
            self.idt_B = G_B(self.real_A)
            self.loss_idt_A = F.l1_loss(self.idt_A, self.real_B) * o.lambda_B * o.lambda_identity
            self.loss_idt_B = F.l1_loss(self.idt_B, self.real_A) * o.lambda_A * o.lambda_identity
        else:
            self.loss_idt_A = self.loss_idt_B = torch.zeros((), device=self.device)
        # generator form of the GAN loss (the original used the discriminator form: wrong for hinge)
        self.loss_G_A = self.criterionGAN(D_A(self.fake_B), True, for_discriminator=False)
        self.loss_G_B = self.criterionGAN(D_B(self.fake_A), True, for_discriminator=False)
        self.loss_cycle_A = F.l1_loss(self.rec_A, self.real_A) * o.lambda_A
        self.loss_cycle_B = F.l1_loss(self.rec_B, self.real_B) * o.lambda_B
        self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B
                       + self.loss_idt_A + self.loss_idt_B + self.generator_extra_loss())

    def backward_D(self, netD, real, fake):
        with self.autocast():
            loss_real = self.criterionGAN(netD(real), True)
            loss_fake = self.criterionGAN(netD(fake.detach()), False)
            loss = (loss_real + loss_fake) * 0.5
            if self.opt.gan_mode == "wgangp":
                loss = loss + gradient_penalty(netD, real, fake)
        self.backward(loss)
        return loss

    def optimize_parameters(self):
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        with self.autocast():
            self.forward()
        self.set_requires_grad([D_A, D_B], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.backward_G()
        self.step("G")
        self.set_requires_grad([D_A, D_B], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        self.loss_D_A = self.backward_D(D_A, self.real_B, self.pools["B"].query(self.fake_B))
        self.loss_D_B = self.backward_D(D_B, self.real_A, self.pools["A"].query(self.fake_A))
        self.step("D")
        self.end_step()

    def state_dict(self):
        state = super().state_dict()
        state.update(self.process_state())
        return state

    def load_state_dict(self, state, source="checkpoint", optimizers=True):
        super().load_state_dict(state, source, optimizers)
        if optimizers:
            self.load_process_state(state)

    def process_state(self):
        """The image pools: each process under torchrun keeps its own history of fakes."""
        return {"pools": {k: v.state_dict() for k, v in self.pools.items()}}

    def load_process_state(self, state):
        if state.get("pools"):
            for key, pool in self.pools.items():
                pool.load_state_dict(state["pools"][key], self.device)
