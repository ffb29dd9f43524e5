"""Fréchet Inception Distance (method.md §9.2).

The feature network is the TF-FID InceptionV3 that pytorch-fid ports (patched Mixed blocks, 1008
classes, no aux logits); its weights are read from a local file, never downloaded. Features are the
2048-d final average pool ("pool3") of inputs resized bilinearly to 299x299 and scaled to [-1, 1].

Everything here is a pure function of tensors and arrays, except the explicit load/save helpers.
"""
import functools
import hashlib
import logging
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
from torch import nn

from util.errors import UserError
from util.files import atomic_path

logger = logging.getLogger(__name__)

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILE)
FEATURE_DIM = 2048


def default_inception_path():
    """Where pytorch-fid caches the weights: ``<torch hub dir>/checkpoints/pt_inception-...pth``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def inception_file(path=None):
    """The Inception weights file to use: ``path`` (``~`` expanded), else :func:`default_inception_path`."""
    return os.path.expanduser(path) if path is not None else default_inception_path()


def weights_identity(path):
    """``{"inception_bytes": size, "inception_sha256": first 16 hex digits of its SHA-256}`` of the
    weights file ``path``: what FID statistics record of the network that made them. Hashed once per
    process for each file (path, size and modification time)."""
    stat = os.stat(path)
    return dict(_weights_identity(os.path.realpath(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=None)
def _weights_identity(path, size, mtime_ns):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return (("inception_bytes", size), ("inception_sha256", digest.hexdigest()[:16]))


def fid_inception_network():
    """The TF-FID InceptionV3 with untrained weights; its state-dict keys are those of the weight file."""
    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class InceptionPool3(nn.Module):
    """Images ``[N, 3, H, W]`` in [0, 1] -> pool3 features ``[N, 2048]`` (pytorch-fid's block 3 output)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def load_inception(path, device):
    """The FID feature network (:class:`InceptionPool3`, eval mode, frozen) with weights from ``path``.

    ``path=None`` means the default location; if that file is absent the result is ``None`` and the
    caller decides what to do. An explicit path that does not exist, or a file whose keys do not fit
    the network, is a :class:`UserError`.
    """
    explicit = path is not None
    path = inception_file(path)
    if not os.path.isfile(path):
        if not explicit:
            return None
        raise UserError(f"Inception weights not found at {path}: download {INCEPTION_URL} "
                        "and pass its path with --inception_path")
    state = read_weights(path, "Inception", f"download {INCEPTION_URL} again")
    net = fid_inception_network()
    load_state_strict(net, state, path, INCEPTION_URL)
    model = InceptionPool3(net).to(device).eval()
    model.requires_grad_(False)
    return model


def read_weights(path, what, fix):
    """The state dict in ``path`` (loaded with ``weights_only``); an unreadable file is a UserError
    naming ``what`` weights and the ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the user's to fix
        raise UserError(f"cannot read {what} weights {path} ({type(err).__name__}): {fix}") from None


def load_state_strict(net, state, path, source):
    """``net.load_state_dict(state)`` with any key or shape mismatch as a one-line UserError.

    ``path`` names the file in the message and ``source`` says where the right file comes from.
    """
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict: download {source}")
    # Files saved by old PyTorch versions lack BatchNorm's counter, which nothing here reads.
    own = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    if own != given:
        missing, extra = sorted(own - given), sorted(given - own)
        raise UserError(f"{path} does not hold the expected weights ({len(missing)} keys missing, e.g. "
                        f"{missing[:1]}; {len(extra)} unexpected, e.g. {extra[:1]}): use {source}")
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise UserError(f"{path} does not fit the network ({first}): use {source}") from None


def to_uint8(x):
    """Generator output ``[N, C, H, W]`` in [-1, 1] -> uint8 ``[N, C, H, W]``: scale, clip, truncate."""
    return ((x.detach().float() + 1) / 2 * 255).clamp_(0, 255).to(torch.uint8)


def fake_to_unit(x):
    """Generator output ``[N, C, H, W]`` in [-1, 1] -> ``[N, 3, H, W]`` in [0, 1] through uint8.

    The uint8 round trip is what saving the image would do, so scores match those of saved files.
    Grayscale (C = 1) is repeated to three channels.
    """
    x = to_uint8(x).float() / 255
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x


@torch.no_grad()
def inception_features(model, batches, device):
    """Pool3 features ``np.ndarray[N, 2048]`` (float64) of an iterable of ``[n, 3, H, W]`` batches in [0, 1]."""
    feats = []
    for batch in batches:
        if batch.shape[0] == 0:
            continue
        feats.append(model(batch.to(device=device, dtype=torch.float32)).double().cpu().numpy())
    if not feats:
        return np.zeros((0, FEATURE_DIM))
    return np.concatenate(feats, axis=0)


def feature_statistics(feats):
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of features ``[N, D]`` (needs N >= 2)."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise UserError(f"FID needs the features of at least 2 images, got {feats.shape[0] if feats.ndim else 0}: "
                        "evaluate on a larger split")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def save_statistics(path, mu, sigma, meta=None):
    """Write ``mu`` and ``sigma`` to the .npz file ``path`` atomically (:func:`util.files.atomic_path`).

    ``meta`` (a JSON-able dict: split, preprocessing, image count...) is stored as the extra key
    ``meta`` so that a later run can tell whether the file still describes its evaluation data;
    files without it (such as the authors' published statistics) are taken as they are."""
    extra = {} if meta is None else {"meta": np.array(json.dumps(meta, sort_keys=True))}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=np.asarray(mu), sigma=np.asarray(sigma), **extra)


def statistics_meta(path):
    """The ``meta`` dict stored by :func:`save_statistics`, or None (absent, or not readable)."""
    try:
        with np.load(path) as data:
            return json.loads(str(data["meta"])) if "meta" in data.files else None
    except (OSError, ValueError, KeyError):
        return None


def load_statistics(path, dim=FEATURE_DIM):
    """``(mu [dim], sigma [dim, dim])`` from an .npz file with keys ``mu`` and ``sigma`` (``dim``: the
    feature size, Inception's pool3 by default). UserError for a file that is damaged, holds pickled
    objects, has other shapes or holds NaN or infinite values."""
    try:
        data = np.load(path)  # allow_pickle=False: a file that holds objects is refused, never unpickled
    except (OSError, ValueError, EOFError):
        raise UserError(f"cannot read FID statistics {path} (damaged, or not an .npz of arrays): delete it or "
                        "recompute it with scripts/get_real_stat.py") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UserError(f"{path} is not an .npz archive: recompute it with scripts/get_real_stat.py")
    with data:
        if "mu" not in data.files or "sigma" not in data.files:
            raise UserError(f"{path} lacks the keys 'mu' and 'sigma' (has {sorted(data.files)}): "
                            "recompute it with scripts/get_real_stat.py")
        mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise UserError(f"{path} has mu {mu.shape} and sigma {sigma.shape}, expected the features' [{dim}] and "
                        f"[{dim}, {dim}]: recompute it with scripts/get_real_stat.py")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UserError(f"{path} holds NaN or infinite values: delete it or recompute it with "
                        "scripts/get_real_stat.py")
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)`` for covariances ``[D, D]``.

    ``tr sqrt(S1 S2)`` is the sum of the square roots of the eigenvalues of ``sqrt(S1) S2 sqrt(S1)``,
    which is symmetric PSD and has the eigenvalues of ``S1 S2``; two symmetric eigendecompositions
    replace scipy's ``sqrtm`` of a non-symmetric matrix (same value, several times faster, and finite
    for singular covariances, so no diagonal offset is needed).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(ev, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(feats, mu2, sigma2):
    """FID between features ``[N, D]`` and statistics ``(mu2 [D], sigma2 [D, D])``.

    Equals ``frechet_distance(*feature_statistics(feats), mu2, sigma2)``. For N <= D (a few hundred
    evaluation images against D = 2048) the features' covariance ``S1 = F^T F / (N-1)`` (F centred)
    has rank < N, and the nonzero eigenvalues of ``S1 S2`` are those of the N x N matrix
    ``F S2 F^T / (N-1)``: one small eigendecomposition instead of two D x D ones.
    """
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2 or feats.shape[0] > feats.shape[1]:
        return frechet_distance(*feature_statistics(feats), mu2, sigma2)
    n, d = feats.shape
    mu2 = np.asarray(mu2, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if mu2.shape != (d,) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: features {feats.shape}, mu {mu2.shape}, sigma {s2.shape}")
    s2 = (s2 + s2.T) / 2
    mu1 = feats.mean(axis=0)
    f = feats - mu1
    m = f @ s2 @ f.T / (n - 1)
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(ev, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(f * f) / (n - 1) + np.trace(s2) - 2 * tr_covmean)
