"""Train a CycleGAN or pix2pix model: a plain (teacher) run, or the mask search with --mask.

    python train.py --dataroot datasets/toy/unaligned --model cyclegan --name toy --crop_size 64 ...
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads make
# training many times slower. Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from util.errors import quiet_start  # noqa: E402

quiet_start()  # before torch loads: a Ctrl-C meanwhile ends without a traceback

import logging

from data import create_dataset
from metrics.evaluate import build_evaluator
from models import create_model
from models.mask_search import MaskSearch
from options import parse
from util import distributed
from util.checkpoint import checkpoint_from_state
from util.device import select_device
from util.errors import UserError, cli_entry
from util.logger import setup_logging
from util.seed import seed_everything
from util.training import Run, Trainer, check_first_batch, resume_state
from util.visualizer import Visualizer

log = logging.getLogger("dmad")


@cli_entry
def main(argv=None):
    opt = parse("train", argv)
    setup_logging(hold=True)  # console only, held back until the input is known to be good
    with distributed.session(opt) as device:
        train(opt, device)


# the generator and discriminator widths: a resume takes them from its checkpoint unless given
ARCHITECTURE_OPTIONS = ("ngf", "ndf")


def train(opt, device):
    """The run of ``opt``; ``device`` is torchrun's device for this process, or None (``--gpu_ids``)."""
    main_rank = distributed.is_main()
    run = Run(opt)
    # everything that can fail on bad input is checked before anything is written
    run.check()
    if opt.load_path and not opt.continue_train:
        raise UserError(f"--load_path {opt.load_path} is read by train.py only to resume a run: add --continue_train "
                        "to resume the run saved in it, or drop --load_path to train from scratch")
    run.refuse_overwrite()
    resume = None
    if opt.continue_train:  # --load_path, else this run's newest checkpoint
        candidates = [opt.load_path] if opt.load_path else run.resume_candidates()
        resume = resume_state(opt, run, candidates, stages=None, kind="checkpoint",
                              fix="give --load_path or start without --continue_train", search=opt.mask)
        # the widths are the checkpoint's: a resume need not repeat --ngf / --ndf
        record = checkpoint_from_state(resume[1], resume[0])
        record.log_taken(record.take_options(opt, ARCHITECTURE_OPTIONS))
    dataset = create_dataset(opt)
    device = device or select_device(opt.gpu_ids, announce=False)
    seed_everything(opt.seed)
    model = create_model(opt, device)
    if resume is not None:
        model.load_state_dict(resume[1], resume[0])  # a checkpoint that does not fit fails here
    # a missing explicit --inception_path fails here; only rank 0 evaluates
    evaluator = build_evaluator(opt, device) if main_rank else None
    first_epoch = opt.epoch_count if resume is None or opt.epoch_count_given else int(resume[1]["epoch"]) + 1
    dataset.verify()  # every image decoded: a truncated file fails here, before --overwrite clears anything
    check_first_batch(opt, dataset, first_epoch)  # its preprocessing too
    run.open(device)  # rank 0 locks the folder and logs to it
    search = None
    if opt.mask:
        search = MaskSearch(opt, model, n_batches=distributed.batches_per_epoch(len(dataset), opt.batch_size))
        model.add_loss_term(search.loss_term)  # the sparsity losses join the generator loss
    trainer = Trainer(opt, model, run, "search" if opt.mask else "train",
                      visualizer=Visualizer(opt) if main_rank else None,
                      evaluator=evaluator, search=search, dataset=dataset)
    if resume is not None:
        trainer.restore(resume[1], resume[0], model_loaded=True)
    distributed.prepare_model(model, split_random=not trainer.process_state_restored)
    log.info("The number of training images = %d", len(dataset))
    trainer.train()


if __name__ == "__main__":
    main()
