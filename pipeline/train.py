"""The stage of train.py: a plain (teacher) run or, with ``--mask``, the mask search (docs/method.md §8).

``run(opt)`` sets up the console and the process group and calls :func:`train`, which checks every
input before the run folder is written, builds the model and runs :class:`pipeline.trainer.Trainer`.
"""
import logging

from data import EpochSampler, create_dataset
from metrics.evaluate import build_evaluator
from models import create_model
from compress.mask_search import MaskSearch
from util import distributed
from pipeline.checkpoint import checkpoint_from_state
from util.device import select_device
from util.errors import UserError
from util.logger import setup_logging
from util.seed import seed_everything
from pipeline.checkpoint import is_snapshot, resume_state
from pipeline.run import Run
from pipeline.trainer import Trainer
from report.visualizer import Visualizer

log = logging.getLogger("dmad")


# the generator and discriminator widths: a resume takes them from its checkpoint unless given
ARCHITECTURE_OPTIONS = ("ngf", "ndf")


def check_first_batch(opt, dataset, epoch):
    """Decode the images of the first batch of ``epoch`` (in this process), so that a broken file there
    is a UserError before the run folder is written. Later files are checked as they are read."""
    sampler = EpochSampler(len(dataset), opt.seed, not opt.serial_batches, epoch)
    dataset.set_epoch(epoch)
    for _, index in zip(range(opt.batch_size), iter(sampler)):
        dataset[index]


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
        # a checkpoint that does not fit fails here; a snapshot holds no optimiser state
        model.load_state_dict(resume[1], resume[0], optimizers=not is_snapshot(resume[1]))
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


def run(opt):
    """train.py after parsing: the run of ``opt`` in this process (one of torchrun's, or alone)."""
    setup_logging(hold=True)  # console only, held back until the input is known to be good
    with distributed.session(opt) as device:
        train(opt, device)
