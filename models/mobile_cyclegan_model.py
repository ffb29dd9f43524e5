"""Mobile CycleGAN (``--model mobilecyclegan``): CycleGAN with the separable-convolution ResNet
generators (method.md §5.5). Losses, data, discriminators (3-channel PatchGANs with InstanceNorm)
and the per-direction table are CycleGAN's; ``--ngf``/``--ndf`` are honoured (the original's plain
model fixed both at 64, §13.26). The mask search gives down-conv 1's mask the ``bound`` loss whatever
``--upconv_bound`` says (§3.4), a rule the family states (``down1_role="bound"``)."""
from models.cyclegan_model import CycleGANModel
from models.families.mobile_resnet import MobileResnetGenerator


class MobileCycleGANModel(CycleGANModel):
    name = "mobilecyclegan"
    generator_family = MobileResnetGenerator  # --netG mobile_resnet_9blocks (default) or _6blocks
