"""Device choice from ``--gpu_ids``: -1 = CPU; unset = GPU 0 when CUDA is available, else the CPU."""
import logging

import torch

from util.errors import UserError

log = logging.getLogger(__name__)


def select_device(gpu_ids, announce=True):
    """``gpu_ids``: None (auto), [] (CPU) or a list of ids (the first is used). ``announce`` logs the
    choice (see :func:`announce_device`)."""
    if gpu_ids is None:
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    elif not gpu_ids:
        device = torch.device("cpu")
    else:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpu_ids[0] >= count:
            available = f"GPUs 0..{count - 1}" if count else "no GPU"
            raise UserError(f"--gpu_ids {gpu_ids[0]} does not exist ({available} here): use --gpu_ids -1 for the CPU")
        device = torch.device(f"cuda:{gpu_ids[0]}")
        if len(gpu_ids) > 1:
            log.warning("--gpu_ids %s: one process trains on GPU %d only; for data-parallel training on several "
                        "GPUs run torchrun --nproc_per_node %d train.py ... (see README, Multi-GPU)",
                        ",".join(map(str, gpu_ids)), gpu_ids[0], len(gpu_ids))
    if announce:
        announce_device(device)
    return device


def announce_device(device):
    """One log line naming the device a run uses."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    log.info("running on %s (%s)", device, name)
