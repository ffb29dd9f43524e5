"""Models by name (``--model cyclegan`` -> models/cyclegan_model.py), and generator loading."""
from models import families
from models.cyclegan_model import CycleGANModel
from models.mobile_cyclegan_model import MobileCycleGANModel
from models.mobile_pix2pix_model import MobilePix2PixModel
from models.pix2pix_model import Pix2PixModel
from models.networks import load_strict
from util.errors import UserError

MODELS = {cls.name: cls for cls in (CycleGANModel, Pix2PixModel, MobileCycleGANModel, MobilePix2PixModel)}
DIRECTIONS = ("AtoB", "BtoA")


def generator_name(model, direction, source="checkpoint"):
    """The net name of ``model``'s generator that translates ``direction`` ("AtoB"/"BtoA"), from the
    model's per-direction table; UserError for an unknown model or direction."""
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be AtoB or BtoA, got {direction!r}")
    if model not in MODELS:
        raise UserError(f"{source} holds an unknown model {model!r}: this code knows {', '.join(MODELS)}")
    return next(d.generator for d in MODELS[model].directions(direction) if d.name == direction)


def create_model(opt, device, gen_configs=None):
    """The model ``opt.model`` names, on ``device``; ``gen_configs`` overrides the generators'
    architectures (e.g. the widths of a pruned checkpoint)."""
    return MODELS[opt.model](opt, device, gen_configs)


def generator_from_state(config, state_dict, source):
    """Build a generator from its config and load ``state_dict`` strictly (UserError on mismatch)."""
    return load_strict(families.build(config, source), state_dict, f"{source}: the generator")
