"""Data-parallel training across processes (``torchrun --nproc_per_node N train.py ...``).

torchrun starts one process per device and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`setup` joins the process group (NCCL on GPUs, gloo on the CPU) and picks this process's device.
Each process reads its own share of every epoch (``data.DistributedEpochSampler``) at ``--batch_size``
images; after every backward pass :func:`average_gradients` replaces each gradient with its mean over
the processes, so every process applies the same update and the weights (and the masks, whose bound
updates and folding are functions of the weights) stay bit-identical on every rank, as in
stylegan2-ada-pytorch. Averaging the gradients explicitly instead of wrapping each network in
``DistributedDataParallel`` keeps the GAN step as it is: the networks are called several times per
step, their ``requires_grad`` flips between the G and D updates, and distillation calls
``forward_features``, none of which DDP's wrapper allows. Only rank 0 logs, saves, evaluates and
displays; the others wait at a :func:`barrier`.
"""
import contextlib
import datetime
import logging
import os

import torch
import torch.distributed as dist

from util.errors import UserError
from util.seed import seed_everything

log = logging.getLogger("dmad")


def launched():
    """Whether this process was started by torchrun (which sets RANK and WORLD_SIZE), with any number
    of processes (one process still joins a process group: that is how a 1-GPU NCCL run is checked)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if active() else 0


def world_size():
    return dist.get_world_size() if active() else 1


def is_main():
    return rank() == 0


def barrier():
    if active():
        dist.barrier()


def broadcast_flag(flag):
    """Rank 0's ``flag`` (a bool) on every rank; ``flag`` itself when not distributed."""
    if not active():
        return bool(flag)
    box = [bool(flag)]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj):
    """Every rank's ``obj`` (picklable; tensors in it on the CPU), as a list in rank order on rank 0 and
    None on the others; ``[obj]`` when not distributed. Uses ``torch.distributed.gather_object``, which
    works on gloo and on NCCL (where it stages the pickled bytes on this process's GPU)."""
    if not active():
        return [obj]
    gathered = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def setup(opt):
    """Join the process group when launched with several processes; returns the device of this
    process (``cuda:LOCAL_RANK``, or the CPU with ``--gpu_ids -1`` / without CUDA), or None when not
    distributed (the caller then uses ``--gpu_ids``). Options that make no sense distributed are
    UserErrors (see :func:`check_options`)."""
    if not launched():
        return None
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed: run a single process")
    check_options(opt)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and opt.gpu_ids != []
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs here: "
                            "give torchrun --nproc_per_node <= the number of GPUs", every_rank=True)
        device = torch.device(f"cuda:{local}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30),
                                device_id=device if use_cuda else None)
    log.info("process group: %s backend, rank %d of %d, on %s", dist.get_backend(), dist.get_rank(),
             dist.get_world_size(), device)
    if dist.get_rank() != 0:  # one process speaks: the others keep warnings and errors only
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("dmad").setLevel(logging.WARNING)
    return device


def check_options(opt):
    """Refuse, with one line, what cannot work with several processes."""
    if opt.gpu_ids and not torch.cuda.is_available():
        raise UserError(f"--gpu_ids {','.join(map(str, opt.gpu_ids))}: no GPU here: drop --gpu_ids (torchrun then "
                        "trains on the CPU with gloo) or give --gpu_ids -1")
    if opt.gpu_ids and len(opt.gpu_ids) > 1:
        raise UserError("--gpu_ids lists several GPUs but torchrun already gives each process one: drop --gpu_ids "
                        "(or use CUDA_VISIBLE_DEVICES to choose the GPUs)")
    if opt.lr_policy == "plateau":
        raise UserError("--lr_policy plateau follows one process's epoch losses: use linear, step or cosine with "
                        "torchrun, or train in one process")


@contextlib.contextmanager
def session(opt):
    """``with session(opt) as device:`` the body of a script: joins the process group when launched by
    torchrun (device = this process's device) and leaves it at the end, error or not; device is None
    in a plain single-process run."""
    device = setup(opt)
    try:
        yield device
    finally:
        cleanup()


def batches_per_epoch(n_items, batch_size):
    """Iterations of one process per epoch: its share of ``n_items`` (padded), in batches."""
    share = -(-n_items // world_size())
    return -(-share // batch_size)


def prepare_model(model, split_random=True):
    """Before the first step: every rank takes rank 0's networks (they are already equal when every
    rank initialised from the same seed or loaded the same file: this makes it certain), and, with
    ``split_random``, the random streams of each rank are split (dropout) from the common state,
    deterministically: every rank draws the same ``base`` and reseeds with ``seed_everything(base +
    rank)``. A resume that gave every rank back its own generators passes ``split_random=False``."""
    if not active():
        return
    broadcast_state(model.nets.values())
    if not split_random:
        return
    base = int(torch.randint(0, 2 ** 62, (1,)))  # the same draw on every rank
    seed_everything(base + rank())


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params):
    """Replace every gradient of ``params`` by its mean over the processes (one flat all-reduce).

    Parameters without a gradient on this step are skipped; they are the same on every rank because
    every rank runs the same graph."""
    if not active():
        return
    _average_in_place([p.grad for p in params if p.grad is not None])


def average_buffers(nets):
    """Average the floating-point running statistics (BatchNorm) over the processes, so that every rank
    holds the same buffers; each rank normalised with its own batch's statistics (as DDP does without
    SyncBatchNorm). Buffers that are the same everywhere (mask bounds) are unchanged by the mean."""
    if not active():
        return
    buffers = [b for net in nets for name, b in net.named_buffers()
               if b.is_floating_point() and name.rsplit(".", 1)[-1] in ("running_mean", "running_var")]
    _average_in_place(buffers)


def _average_in_place(tensors):
    """Replace each of ``tensors`` (of one dtype and device) by its mean over the processes, with one
    flat all-reduce."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.view_as(t))


@torch.no_grad()
def broadcast_state(nets):
    """Copy rank 0's parameters and buffers to every rank (after initialisation or loading)."""
    if not active():
        return
    for net in nets:
        for tensor in list(net.parameters()) + list(net.buffers()):
            dist.broadcast(tensor.data, 0)
