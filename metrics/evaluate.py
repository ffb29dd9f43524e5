"""The evaluation protocol shared by train.py, prune.py and test.py (method.md §9.1).

:class:`Evaluator` loads the metric network once, runs generators over the evaluation split and
returns one score per direction. It knows nothing about training: callers hand it generators.
"""
import logging
import os

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import data
from metrics.drn import load_drn
from metrics.fid import (INCEPTION_URL, default_inception_path, fake_to_unit, feature_statistics,
                         fid_from_features, inception_features, inception_file, load_inception, load_statistics,
                         save_statistics, statistics_meta, to_uint8, weights_identity)
from models import MODELS
from metrics.miou import (NUM_CLASSES, check_labels, fast_hist, find_label, mean_iou, read_label, read_table,
                          segment_batch)
from util.errors import UserError
from util.frozen import replace
from util.option_types import flag

logger = logging.getLogger(__name__)



def image_stem(path):
    """File name up to the first dot: ``.../x.y.jpg`` -> ``x``."""
    return os.path.basename(path).split(".", 1)[0]


# the ``made_by`` of the statistics scripts/get_real_stat.py writes: the user's own files, used as they are
SCRIPT_STATISTICS = "scripts/get_real_stat.py"


def statistics_record(opt, dataset, domain, inception_path):
    """What FID statistics of the real ``domain`` images of ``dataset`` describe (stored with them,
    :func:`metrics.fid.save_statistics`): domain, split, image count, preprocessing and sizes, and the
    Inception weights file (:func:`metrics.fid.weights_identity`)."""
    images = len(getattr(dataset, f"{domain}_paths", None) or dataset)  # aligned: one pair per item
    return {"domain": domain, "split": dataset.phase, "images": images, "preprocess": opt.preprocess,
            "load_size": opt.load_size, "crop_size": opt.crop_size, "input_nc": opt.input_nc,
            "output_nc": opt.output_nc, **weights_identity(inception_path)}


METRICS = ("auto", "fid", "miou", "none")  # --metric; auto: mIoU for Cityscapes, else FID
FID_MIN_IMAGES = 2  # FID needs a covariance of the features


def resolve_metric(metric, dataroot):
    """``--metric`` with ``auto`` resolved: mIoU when the dataroot's path names Cityscapes, else FID
    (docs/method.md §9.3)."""
    if metric != "auto":
        return metric
    return "miou" if "cityscapes" in str(dataroot).lower() else "fid"


class Evaluator:
    """Scores generators on the evaluation split: FID (lower is better) or Cityscapes mIoU (higher).

    Generators are keyed as the models name them. pix2pix has one, ``opt.direction``: ``'AtoB'`` maps
    the A halves of ``val/`` pairs and is compared with ``<dataroot>/real_stat_B.npz``, ``'BtoA'``
    maps the B halves and is compared with ``real_stat_A.npz``. CycleGAN has ``'AtoB'`` (G_A) and
    ``'BtoA'`` (G_B): G_A maps ``testA`` to B (``real_stat_B.npz``) and G_B ``testB`` to A, with the
    sides swapped under ``--direction BtoA`` as the model swaps its inputs. Single-domain data feeds
    its folder to the ``opt.direction`` generator.

    When the metric network's weights are absent at their default location the evaluator is
    disabled (``enabled`` False, one warning; none when ``quiet``), unless the metric was asked for by name (``--metric
    fid``, ``--metric miou``), which is then a UserError; a path the user gave that does not exist is a UserError.

    FID needs at least :data:`FID_MIN_IMAGES` generated images per direction, and as many real ones of
    its target domain unless their statistics are stored: the directions the evaluation split is too
    small for are found when the evaluator is built and listed in ``skipped`` ({direction: reason},
    one warning; not scored, their outputs still saved), unless ``--metric fid`` was given by name and
    the caller is not ``partial``, which is then a UserError. ``partial``: the caller reports what
    could not be computed (test.py) instead of stopping.
    """

    def __init__(self, opt, device, quiet=False, partial=False):
        self.opt = opt
        self.skipped = {}  # {direction: why the split cannot give its score}
        self.device = torch.device(device)
        self.metric = metric = resolve_metric(opt.metric, opt.dataroot)
        self.single = opt.dataset_mode == "single"
        # direction -> (side of the data it reads, domain it produces)
        if self.single:
            self.sides = {opt.direction: ("A", "B" if opt.direction == "AtoB" else "A")}
        else:  # the model's per-direction table
            self.sides = {d.name: (d.data_side(opt.direction), d.target_side(opt.direction))
                          for d in MODELS[opt.model].directions(opt.direction)}
        self.directions = tuple(self.sides)
        self.net = None
        self._real = {}
        self._dataset = None
        self._table = None
        user_set = set(getattr(opt, "user_set", ()))
        if metric == "fid":
            self.net = load_inception(opt.inception_path, self.device)
            self._inception = inception_file(opt.inception_path)
            if self.net is None and "metric" in user_set:  # asked for by name: refused, not skipped
                raise UserError(f"--metric fid needs the Inception weights, not found at {default_inception_path()}: "
                                f"download {INCEPTION_URL} there or pass its path with --inception_path")
            if self.net is None and not quiet:
                logger.warning("FID is skipped: no Inception weights at %s; download %s there or pass "
                               "--inception_path", default_inception_path(), INCEPTION_URL)
        elif metric == "miou":
            if MODELS[opt.model].dataset_mode != "aligned" or self.single:
                raise UserError("--metric miou needs paired Cityscapes data (pix2pix, aligned val/ and table.txt): "
                                "use --metric fid or --metric none")
            if opt.direction != "BtoA":
                raise UserError("--metric miou segments generated photos: train Cityscapes label->photo with "
                                "--direction BtoA, or use --metric fid")
            self.net = load_drn(opt.drn_path, self.device, explicit="drn_path" in user_set)
            if self.net is None and "metric" in user_set:  # asked for by name: refused, not skipped
                raise UserError(f"--metric miou needs the DRN weights, not found at "
                                f"{os.path.expanduser(opt.drn_path)}: download drn-d-105_ms_cityscapes.pth (see "
                                "README) there or pass its path with --drn_path")
            if self.net is None and not quiet:
                logger.warning("mIoU is skipped: no DRN weights at %s; download drn-d-105_ms_cityscapes.pth "
                               "(see README) there or pass --drn_path", os.path.expanduser(opt.drn_path))
            else:
                self._table = read_table(opt.dataroot)
        elif metric != "none":
            raise UserError(f"--metric {metric!r} is unknown: use one of {', '.join(METRICS)}")
        self.verified = ()  # the image files verify() decoded
        if self.enabled:
            self._get_dataset()  # a missing split is reported now, not after the first epoch
        if self.enabled and metric == "fid":
            self._skip_small_split(explicit="metric" in user_set and not partial, quiet=quiet)
        if self.enabled and metric == "miou":
            self._check_labels()  # so are labels that are not train ids (label ids would score wrong)
        if self.enabled:
            self.verify()  # and unreadable images, before training or translating starts

    def verify(self):
        """Decode every image of the evaluation split (:meth:`data.base_dataset.BaseDataset.verify`):
        UserError naming the first unreadable one."""
        dataset = self._get_dataset()
        dataset.verify()
        self.verified = tuple(dataset.image_paths())

    def _skip_small_split(self, explicit, quiet):
        """Fill ``skipped`` with the directions whose FID the evaluation split cannot give (see the class);
        UserError instead when ``explicit``."""
        dataset = self._get_dataset()
        limit = getattr(self.opt, "ntest", None) or float("inf")
        for direction, (source, target) in self.sides.items():
            fakes = min(dataset.side_length(source), limit)
            if fakes < FID_MIN_IMAGES:
                self.skipped[direction] = f"{int(fakes)} {source} image(s) to translate"
            elif not self.single and dataset.side_length(target) < FID_MIN_IMAGES \
                    and self._cached_real(target) is None:
                self.skipped[direction] = (f"{dataset.side_length(target)} real {target} image(s) for the "
                                           f"statistics, and no {os.path.basename(self.stat_path(target))}")
        if not self.skipped:
            return
        reasons = "; ".join(f"{d} has {reason}" for d, reason in self.skipped.items())
        phase = dataset.phase
        if explicit:
            raise UserError(f"--metric fid needs at least {FID_MIN_IMAGES} images per direction, but on the evaluation "
                            f"split {phase} {reasons}: evaluate on a larger split, or switch evaluation off with "
                            f"--no_eval or --metric none")
        if not quiet:
            logger.warning("FID is not computed for %s: on the evaluation split %s %s (it needs at least %d images per "
                           "direction); give --no_eval or --metric none to switch evaluation off",
                           ", ".join(self.skipped), phase, reasons, FID_MIN_IMAGES)

    def _check_labels(self):
        """UserError (one line) when a label the evaluation split needs is missing from table.txt or
        is not a train-id image (:func:`metrics.miou.check_labels`)."""
        names = dict.fromkeys(image_stem(p) for p in self._get_dataset().image_paths())
        check_labels(list(dict.fromkeys(find_label(self._table, name) for name in names)))

    @property
    def enabled(self):
        """True when a metric is computed (its network is loaded, and the split can give a score)."""
        return self.net is not None and len(self.skipped) < len(self.sides)

    @property
    def higher_is_better(self):
        return self.metric == "miou"

    @property
    def metric_name(self):
        """'FID', 'mIoU' or 'none', for messages."""
        return {"fid": "FID", "miou": "mIoU"}.get(self.metric, "none")

    def stat_path(self, domain):
        """``<dataroot>/real_stat_<domain>.npz``: the FID statistics of real domain-``domain`` images."""
        return os.path.join(self.opt.dataroot, f"real_stat_{domain}.npz")

    def own_stat_path(self, domain):
        """Where this evaluation keeps the statistics it computes: :meth:`stat_path`, or
        ``real_stat_<domain>_<N>.npz`` when ``--max_dataset_size`` left out images of the split (N:
        the images used), so that runs on the whole split and on parts of it keep their own files."""
        if not self._get_dataset().truncated:
            return self.stat_path(domain)
        return os.path.join(self.opt.dataroot, f"real_stat_{domain}_{self._stat_meta(domain)['images']}.npz")

    def _eval_opt(self):
        return replace(self.opt, no_flip=True, serial_batches=True, num_threads=0, batch_size=self.opt.eval_batch_size)

    def _get_dataset(self):
        if self._dataset is None:
            if self.single:
                phase, mode = "test", "single"
            else:
                model = MODELS[self.opt.model]
                phase, mode = model.eval_phase, model.dataset_mode
            self._dataset = data.create_dataset(self._eval_opt(), phase=phase, dataset_mode=mode, train=False)
        return self._dataset

    def _stat_meta(self, domain):
        """What the real statistics of ``domain`` describe; a saved file that differs is recomputed."""
        return statistics_record(self.opt, self._get_dataset(), domain, self._inception)

    def _cached_real(self, domain):
        """Statistics of real ``domain`` images from memory or file, else None. A file this project
        wrote (:meth:`own_stat_path`) for other evaluation data (another split size or preprocessing)
        or with other Inception weights, or that does not record them, is not used. The user's files
        (:meth:`_users_record`: the authors' published statistics, without a record, and those of
        scripts/get_real_stat.py) at :meth:`stat_path` are used as they are, also for part of the split
        when no file of that part exists; what a get_real_stat.py record shows to differ is warned about."""
        if domain in self._real:
            return self._real[domain]
        path = self.own_stat_path(domain)
        if os.path.isfile(path):
            meta = statistics_meta(path)
        elif os.path.isfile(self.stat_path(domain)):
            path = self.stat_path(domain)  # the whole split's, for part of it: only the user's own file
            meta = statistics_meta(path)
            if not self._users_record(meta):
                return None
        else:
            return None
        if not self._users_record(meta):
            changed = self._changed(meta, domain)
            if changed:
                logger.info("FID statistics %s were made for other evaluation data or Inception weights (%s): "
                            "recomputing them", path, changed)
                return None
        elif meta is not None:
            # the user's own file (get_real_stat.py's): used as it is, never replaced, but a difference is named
            changed = self._changed(meta, domain, ignore=("made_by",))
            if changed:
                logger.warning("FID statistics %s were made by %s for other data (%s): they are used as they are; "
                               "delete the file to have statistics of this evaluation's images computed", path,
                               SCRIPT_STATISTICS, changed)
        self._real[domain] = load_statistics(path)
        return self._real[domain]

    @staticmethod
    def _users_record(meta):
        """True for the record (:func:`metrics.fid.statistics_meta`) of statistics this project did not
        compute for an evaluation: published ones (no record, None) and scripts/get_real_stat.py's."""
        return meta is None or meta.get("made_by") == SCRIPT_STATISTICS

    def _changed(self, meta, domain, ignore=()):
        """``"key old (now new), ..."`` for the entries of a statistics record ``meta`` that differ
        from what :meth:`_stat_meta` gives now; "" when none does."""
        want = self._stat_meta(domain)
        return ", ".join(f"{k} {meta.get(k, 'unrecorded')} (now {want.get(k, 'unrecorded')})"
                         for k in sorted(set(meta) | set(want)) if k not in ignore and meta.get(k) != want.get(k))

    def check_statistics(self, directions=None):
        """The target domains of ``directions`` (default: all) whose real FID statistics are neither
        in memory nor in a file this evaluation can use, so must be computed from real images. Reads
        (and so checks) the statistics files; a UserError, before any image is translated, for a
        damaged file or one that single-domain data, having no target images, cannot replace."""
        if self.metric != "fid" or not self.enabled:
            return set()
        directions = [d for d in (self.directions if directions is None else directions) if d not in self.skipped]
        need_real = {self.sides[d][1] for d in directions if self._cached_real(self.sides[d][1]) is None}
        if need_real and self.single:
            missing = self.stat_path(sorted(need_real)[0])
            raise UserError(f"{missing} is missing and single-domain data has no target images to compute it "
                            "from: copy the distributed statistics there or run scripts/get_real_stat.py")
        return need_real

    def evaluate(self, generators, save_dir=None):
        """Scores ``{direction: float}`` of ``generators`` (``{'AtoB': G, 'BtoA': G}``, any subset).

        Generators run in eval mode without gradients; their train/eval modes are restored after.
        With ``save_dir`` each output is written to ``<save_dir>/fake_<X>/<name>_fake_<X>.png``
        (X = the domain it produces, name = its source's path in its split folder up to the first dot
        of the file name, sub-folders kept; see ``data.image_folder.result_names``), also when the
        evaluator is disabled; then the result is ``{}``.
        """
        unknown = sorted(set(generators) - set(self.directions))
        if unknown:
            raise KeyError(f"no evaluation direction {unknown}; this evaluator has {list(self.directions)}")
        if not generators or (not self.enabled and save_dir is None):
            return {}
        need_real = self.check_statistics(generators)
        modes = {d: [(m, m.training) for m in g.modules()] for d, g in generators.items()}
        for g in generators.values():
            g.eval()
        try:
            with torch.no_grad():
                outputs, real_feats = self._run(generators, need_real, save_dir)
        finally:
            for saved in modes.values():
                for module, training in saved:
                    module.training = training
        for domain in sorted(need_real):
            self._store_real(domain, real_feats[domain])
        if not self.enabled:
            return {}
        scores = {}
        for d, out in outputs.items():
            if d in self.skipped:
                continue
            if self.metric == "fid":
                scores[d] = fid_from_features(np.concatenate(out), *self._real[self.sides[d][1]])
            else:
                scores[d] = mean_iou(out)
        return scores

    def _run(self, generators, need_real, save_dir):
        """One pass over the split: per direction the features (FID) or confusion histogram (mIoU)."""
        opt = self.opt
        # images that keep their own sizes are batched with others of the same size
        loader = data.create_dataloader(self._eval_opt(), self._get_dataset(), shuffle=False,
                                        batch_size=opt.eval_batch_size, num_workers=0, by_size=True)
        limit = opt.ntest if getattr(opt, "ntest", None) else float("inf")
        seen = {d: set() for d in generators}
        seen_real = {t: set() for t in need_real}
        hists = {d: np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64) for d in generators}
        feats = {d: [] for d in generators}
        real_feats = {t: [] for t in need_real}
        for batch in tqdm(loader, desc="evaluate", leave=False):
            if not need_real and all(len(s) >= limit for s in seen.values()):
                break  # --ntest reached
            for d, g in generators.items():
                src, out_domain = self.sides[d]
                rows = _new_rows(batch[src + "_paths"], seen[d], limit)
                if not rows:
                    continue
                paths = [batch[src + "_paths"][i] for i in rows]
                fake = g(batch[src][rows].to(self.device))
                if save_dir is not None:
                    self._save(fake, paths, save_dir, out_domain)
                if not self.enabled or d in self.skipped:
                    continue
                if self.metric == "fid":
                    feats[d].append(inception_features(self.net, [fake_to_unit(fake)], self.device))
                else:
                    labels = [read_label(find_label(self._table, image_stem(p))) for p in paths]
                    for label, path in zip(labels, paths):
                        if label.ndim != 2:
                            raise UserError(f"label of {path} is not a single-channel train-id image: convert "
                                            "the labels with datasets/prepare_cityscapes_dataset.py")
                    preds = segment_batch(self.net, to_uint8(_rgb(fake)), self.device, [lb.shape for lb in labels])
                    for pred, label in zip(preds, labels):
                        hists[d] += fast_hist(pred, label, NUM_CLASSES)
            for t in need_real:
                # real images take the same uint8 path as generated ones
                rows = _new_rows(batch[t + "_paths"], seen_real[t], float("inf"))
                if rows:
                    real_feats[t].append(inception_features(self.net, [fake_to_unit(batch[t][rows])], self.device))
        if self.metric == "miou":
            return hists, real_feats
        return feats, real_feats

    def _store_real(self, domain, feats):
        """Keep the statistics of real ``domain`` images and save them where the next run finds them."""
        feats = np.concatenate(feats)
        mu, sigma = feature_statistics(feats)
        self._real[domain] = (mu, sigma)
        path = self.own_stat_path(domain)
        try:
            save_statistics(path, mu, sigma, meta=self._stat_meta(domain))
        except (OSError, UserError) as err:  # a read-only dataset folder (UserError: no temporary file there)
            logger.info("FID statistics of real %s images were computed from %d images (kept in memory; "
                        "cannot write %s: %s)", domain, len(feats), path, err)
            return
        logger.info("FID statistics of real %s images were computed from %d images and saved to %s",
                    domain, len(feats), path)

    def _save(self, fake, paths, save_dir, domain):
        folder = os.path.join(save_dir, f"fake_{domain}")
        os.makedirs(folder, exist_ok=True)
        images = to_uint8(fake).permute(0, 2, 3, 1).cpu().numpy()
        ratio = getattr(self.opt, "aspect_ratio", 1.0)
        for img, path in zip(images, paths):
            pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
            h, w = img.shape[:2]
            if ratio > 1.0:
                pil = pil.resize((int(w * ratio), h), Image.Resampling.BICUBIC)
            elif ratio < 1.0:
                pil = pil.resize((w, int(h / ratio)), Image.Resampling.BICUBIC)
            # named after the source's path in its split folder, so that no two outputs share a file
            out = os.path.join(folder, f"{self._get_dataset().result_name(path)}_fake_{domain}.png")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            pil.save(out)


def _new_rows(paths, seen, limit):
    """Indices of ``paths`` not seen before (the unaligned index wraps around), up to ``limit`` in all."""
    rows = []
    for i, p in enumerate(paths):
        if len(seen) >= limit:
            break
        if p not in seen:
            seen.add(p)
            rows.append(i)
    return rows


def _rgb(x):
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def build_evaluator(opt, device, optional=False, partial=False):
    """The Evaluator the options ask for, or None with ``--no_eval`` / ``--metric none``. Built before a
    run writes anything: an explicitly given weights file that does not exist is a UserError, and so
    is an explicit ``--metric fid`` on a split too small for it unless ``partial``.
    ``optional``: the caller only scores when it can (prune.py without --finetune): absent default
    weights disable the evaluator without a line. ``partial``: the caller reports the scores it cannot
    compute as such (test.py), so a split too small for them is one warning, not an error."""
    if opt.no_eval or opt.metric == "none":
        return None
    return Evaluator(opt, device, quiet=optional, partial=partial)


def add_options(group):
    """The options of the evaluation (FID, mIoU; docs/method.md §9), declared into the argparse
    ``group`` options/ gives this owner."""
    group.add_argument("--metric", type=str, default="auto", choices=METRICS,
                       help="evaluation metric: fid, miou (Cityscapes), none, or auto (miou when the dataroot "
                            "contains 'cityscapes', else fid). default: auto")
    group.add_argument("--inception_path", type=str, default=None,
                       help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth). default: the torch hub "
                            "checkpoint folder pytorch-fid uses")
    group.add_argument("--drn_path", type=str, default="~/pretrain/drn-d-105_ms_cityscapes.pth",
                       help="the path of drn model for mIoU computation. default: ~/pretrain/drn-d-105_ms_cityscapes.pth")
    group.add_argument("--eval_freq", type=int, default=None,
                       help="evaluate every this many epochs during training. default: --save_epoch_freq")
    flag(group, "--no_eval", "switch evaluation during training off")
    group.add_argument("--eval_batch_size", type=int, default=16, help="batch size of evaluation. default: 16")


def score_and_log(evaluator, generators, prefix="", digits=2, names=None):
    """``{direction: score}`` of ``generators`` ({direction: net}) on the evaluation split, each logged
    in one line (``"<prefix>AtoB FID: 12.34"``); keyed by ``names[direction]`` when ``names`` is given
    (test.py names the domains); empty when ``evaluator`` is None or disabled."""
    if evaluator is None or not evaluator.enabled:
        return {}
    scores = {(names or {}).get(d, d): s for d, s in evaluator.evaluate(generators).items()}
    for direction, score in scores.items():
        logging.getLogger("dmad").info("%s%s %s: %.*f", prefix, direction, evaluator.metric_name, digits, score)
    return scores
