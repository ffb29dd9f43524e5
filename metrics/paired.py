"""Fidelity to ground truth for paired (aligned) data: L1, PSNR and SSIM of outputs against the real
images, with torchmetrics' implementations (PSNR and the Gaussian-window SSIM of Wang et al. 2004).

Images are the generators' [-1, 1] tensors; they are mapped to [0, 1] and clamped first, so every
number is on the [0, 1] pixel scale: L1 is the mean absolute error per pixel and channel, PSNR uses
a data range of 1 (dB), SSIM an 11-px Gaussian window (sigma 1.5). PSNR and SSIM are computed per
image and averaged over images, the usual reporting for image-to-image translation and restoration.
"""
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

NAMES = ("L1", "PSNR", "SSIM")


def to_unit(x):
    """[-1, 1] -> [0, 1], clamped; float32."""
    return ((x.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)


def paired_scores(fake, real):
    """Per-image L1, PSNR (dB) and SSIM of ``fake`` against ``real``.

    fake, real: FloatTensor [N, C, H, W] in [-1, 1], same shape (H, W >= 11 for the SSIM window).
    Returns {"L1": [N], "PSNR": [N], "SSIM": [N]} (float64, CPU). A PSNR of identical images is inf.
    Raises ValueError when the shapes differ.
    """
    if fake.shape != real.shape:
        raise ValueError(f"output and ground truth differ in shape: {tuple(fake.shape)} vs {tuple(real.shape)}")
    fake, real = to_unit(fake), to_unit(real)
    l1 = (fake - real).abs().flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(fake, real, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(fake, real, data_range=1.0, reduction="none")
    return {"L1": l1.double().cpu(), "PSNR": psnr.double().cpu(), "SSIM": ssim.double().cpu()}


class PairedMetrics:
    """Running means of :func:`paired_scores` over batches.

    ``update(fake, real)`` per batch, ``compute()`` -> {"L1", "PSNR", "SSIM", "count"} as floats
    (means over every image seen); ``per_image`` keeps the per-image values for spreads."""

    def __init__(self):
        self.per_image = {name: [] for name in NAMES}

    def update(self, fake, real):
        for name, values in paired_scores(fake, real).items():
            self.per_image[name].extend(values.tolist())

    def compute(self):
        count = len(self.per_image["L1"])
        if count == 0:
            raise ValueError("no image was scored")
        result = {name: float(sum(v) / count) for name, v in self.per_image.items()}
        result["count"] = count
        return result


def by_metric(running):
    """``{direction: PairedMetrics}`` -> ``{"L1": {direction: mean}, "PSNR": ..., "SSIM": ...}``, the
    layout metrics.json uses for every metric (as for FID)."""
    means = {direction: metrics.compute() for direction, metrics in running.items()}
    return {name: {direction: values[name] for direction, values in means.items()} for name in NAMES}
