"""Training display: visdom panels, the HTML page of results, the loss log and the mask-search plots.

Display is best effort. visdom is used only with ``--display_id > 0`` and a server that answers; when
none does, or a later send fails, one warning is logged and the run goes on without visdom (the
original spawned a server of its own and let display errors kill training). The HTML page and the
loss log are plain files under ``<checkpoints_dir>/<name>/``.
"""
import io
import logging
import math
import os
import re
import socket
import time
import warnings
from urllib.parse import urlparse

import numpy as np

from report import html
from util.option_types import flag
from report.image import save_image, tensor2im, write_bytes

logger = logging.getLogger(__name__)

START_HINT = "bash scripts/start_visdom.sh"
CONNECT_TIMEOUT_S = 1.5  # reachability probe; a missing server must not stall start-up
SEND_TIMEOUT_S = 10.0  # per request; a hung server must not stall training
HTML_REFRESH_S = 1  # the original's auto-reload interval of the training page
MASK_SEARCH_PNG = "mask_search.png"
_EPOCH_IMAGE = re.compile(r"^epoch(\d+)_(.+)\.png$")


# --------------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg canvas only: no pyplot global state, works without a display)


def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _layer_order(records):
    """Layer names in first-seen order over all records."""
    order = {}
    for rec in records:
        for name in rec["layers"]:
            order.setdefault(name, None)
    return list(order)


def mask_search_png(records):
    """The mask-search figure as PNG bytes (see :func:`mask_search_figure`)."""
    if not records:
        raise ValueError("mask_search_png needs at least one record")
    steps = np.array([float(r["step"]) for r in records])
    bounds = np.array([float(r["bound"]) for r in records])
    layers = _layer_order(records)
    kept = np.full((len(layers), len(records)), np.nan)
    row = {name: i for i, name in enumerate(layers)}
    for j, rec in enumerate(records):
        for name, count in rec["layers"].items():
            width = rec["widths"].get(name, 0)
            if width > 0:
                kept[row[name], j] = float(count) / float(width)

    heat_h = max(2.5, 0.2 * len(layers))
    # wider for more updates, but bounded: a 200-epoch search has ~200 columns
    fig = _new_figure(min(14.0, max(7.0, 4.0 + 0.25 * len(records))), 2.8 + heat_h + 0.8)
    grid = fig.add_gridspec(2, 2, height_ratios=[2.8, heat_h], width_ratios=[40, 1], hspace=0.35, wspace=0.03)

    ax = fig.add_subplot(grid[0, 0])
    ax.plot(steps, bounds, marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound")
    ax.set_ylim(bottom=0)
    ax.set_title("(a) mask bound")
    ax.grid(alpha=0.3)

    ax = fig.add_subplot(grid[1, 0])
    image = ax.imshow(np.ma.masked_invalid(kept), aspect="auto", interpolation="nearest", cmap="viridis",
                      vmin=0.0, vmax=1.0)
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers, fontsize=7)
    # At most ~12 labelled columns so the step labels stay readable on long searches.
    cols = np.unique(np.linspace(0, len(records) - 1, min(len(records), 12)).round().astype(int))
    ax.set_xticks(cols)
    ax.set_xticklabels([f"{steps[c]:.2f}" for c in cols], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("bound update (epoch)")
    ax.set_title("(b) kept-channel fraction per mask layer")
    cbar = fig.colorbar(image, cax=fig.add_subplot(grid[1, 1]))
    cbar.set_label("kept fraction")
    return _png_bytes(fig)


def mask_search_figure(records, path):
    """Write the mask-search figure to ``path`` (PNG) and return ``path``.

    ``records``: one dict per bound update, ``{'step': epoch + fraction, 'bound': b,
    'layers': {layer: kept channels}, 'widths': {layer: full width}}``. Panel (a) plots the bound over
    the steps; panel (b) is a heatmap of kept fraction (rows = layers in first-seen order, columns =
    updates), which shows which layers the search is emptying.
    """
    return write_bytes(path, mask_search_png(records))


def plot_kept_channels(layers, widths, path, title):
    """Horizontal bar chart of kept vs full width per layer (``layers``: name -> kept); returns ``path``."""
    names = list(layers)
    kept = np.array([float(layers[n]) for n in names])
    full = np.array([float(widths.get(n, layers[n])) for n in names])
    fig = _new_figure(8.0, max(2.5, 0.9 + 0.25 * len(names)))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y, full, color="0.85", label="full width")
    ax.barh(y, kept, color="tab:blue", label="kept")
    for yi, k, f in zip(y, kept, full):
        ax.text(f, yi, f" {int(k)}/{int(f)}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()  # first layer at the top, as in the network
    ax.set_xlabel("channels")
    ax.set_xlim(0, (full.max() if len(full) else 1) * 1.15)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    return write_bytes(path, _png_bytes(fig))


# --------------------------------------------------------------------------------------------------
# visdom client


def _connect_visdom(server, port, env):
    """A visdom client for a server that answers, else None with the reason (for the one warning)."""
    parsed = urlparse(server if "://" in server else f"http://{server}")
    host = parsed.hostname or "localhost"
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        return None, f"no server answers ({err.strerror or err})"
    try:
        import requests
        import visdom
    except ImportError as err:
        return None, f"the visdom package is not installed ({err}); pip install visdom"

    class _Client(visdom.Visdom):
        # A plain session (the stock one logs a warning on creation) and requests with a timeout that
        # fail on HTTP errors, so a broken server disables display instead of being ignored or hanging.
        @property
        def session(self):
            if self._session is None:
                self._session = requests.Session()
            return self._session

        def _handle_post(self, url, data=None):
            r = self.session.post(url, data={} if data is None else data, timeout=SEND_TIMEOUT_S)
            r.raise_for_status()
            return r.text

    class _Quiet(logging.Filter):
        def filter(self, record):
            return False

    # The client warns that it has no incoming socket; we need none (no event handlers).
    vlog = logging.getLogger(visdom.__name__)
    quiet = _Quiet()
    vlog.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = _Client(server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False)
    except Exception as err:  # noqa: BLE001 - any failure only means "no visdom"
        return None, f"connecting failed ({err})"
    finally:
        vlog.removeFilter(quiet)
    return client, ""


# --------------------------------------------------------------------------------------------------
# Visualizer


class Visualizer:
    """Display of one training run (train.py / prune.py).

    Reads ``display_id``, ``display_server``, ``display_port``, ``display_env``, ``display_ncols``,
    ``display_winsize``, ``no_html``, ``checkpoints_dir``, ``name`` and ``isTrain`` from ``opt``.
    visdom windows (ids as strings): losses ``display_id``, image grid ``display_id + 1``, its label
    table ``display_id + 2`` (separate image windows from ``display_id + 1`` on when ``display_ncols``
    is 0), mask search ``display_id + 3``.
    """

    def __init__(self, opt):
        self.opt = opt
        self.display_id = int(getattr(opt, "display_id", 0))
        self.ncols = int(getattr(opt, "display_ncols", 4))
        self.win_size = int(getattr(opt, "display_winsize", 256))
        self.name = getattr(opt, "name", "default")
        self.server = getattr(opt, "display_server", "http://localhost")
        self.port = int(getattr(opt, "display_port", 8097))
        self.env = getattr(opt, "display_env", "main")
        self.use_html = bool(getattr(opt, "isTrain", False)) and not getattr(opt, "no_html", False)
        self.run_dir = os.path.join(opt.checkpoints_dir, self.name)
        self.web_dir = os.path.join(self.run_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.log_name = os.path.join(self.run_dir, "loss_log.txt")
        self.saved = False
        self.plot_data = {"X": [], "Y": {}}  # Y: loss name -> values aligned with X (NaN where absent)
        self.mask_records = []
        self._labels = []  # visual labels in display order, for the HTML page

        self.win_losses = str(self.display_id)
        self.win_images = str(self.display_id + 1)
        self.win_labels = str(self.display_id + 2)
        self.win_mask_search = str(self.display_id + 3)

        self.vis = None
        if self.display_id > 0:
            self.vis, reason = _connect_visdom(self.server, self.port, self.env)
            if self.vis is None:
                logger.warning("visdom display off: %s at %s:%d. Start one with `%s` (PORT=%d) or pass "
                               "--display_id 0; training continues without it.",
                               reason, self.server, self.port, START_HINT, self.port)
        if self.use_html:
            os.makedirs(self.img_dir, exist_ok=True)
        if getattr(opt, "isTrain", False):
            os.makedirs(self.run_dir, exist_ok=True)
            with open(self.log_name, "a", encoding="utf-8") as log_file:
                log_file.write(f"================ Training Loss ({time.strftime('%c')}) ================\n")

    # ---- visdom plumbing

    def _send(self, what, fn, *args, **kwargs):
        """Run one visdom call; on any failure warn once and switch visdom off for the rest of the run."""
        if self.vis is None:
            return False
        try:
            fn(*args, **kwargs)
            return True
        except Exception as err:  # noqa: BLE001 - display must never stop training
            logger.warning("visdom display off: sending %s to %s:%d failed (%s). Training continues; "
                           "restart the server with `%s` and the run to get it back.",
                           what, self.server, self.port, err, START_HINT)
            self.vis = None
            return False

    @property
    def visdom_enabled(self):
        """Whether visdom is still in use."""
        return self.vis is not None

    # ---- per-epoch results

    def reset(self):
        """Start of an epoch: the next :meth:`display_current_results` saves HTML images again."""
        self.saved = False

    def display_current_results(self, visuals, epoch, save_result):
        """Show ``visuals`` (label -> image tensor in [-1, 1]) in visdom and, when due, on the HTML page.

        HTML images are written when ``save_result`` is true or nothing was saved yet this epoch, as
        ``web/images/epoch%03d_<label>.png``; the page lists every saved epoch, newest first.
        """
        images = {label: tensor2im(t) for label, t in visuals.items()}
        if not images:
            return
        if self.vis is not None:
            self._display_visdom(images)
        if self.use_html and (save_result or not self.saved):
            self.saved = True
            for label, image in images.items():
                save_image(image, os.path.join(self.img_dir, f"epoch{epoch:03d}_{label}.png"))
            self._labels = list(images)
            self._write_index()

    def _display_visdom(self, images):
        if self.ncols > 0:
            ncols = min(self.ncols, len(images))
            h = max(im.shape[0] for im in images.values())
            w = max(im.shape[1] for im in images.values())
            table_css = ("<style>table {border-collapse: separate; border-spacing: 4px; white-space: nowrap; "
                         f"text-align: center}} table td {{width: {w}px; height: {h}px; padding: 4px; "
                         "outline: 4px solid black}</style>")
            white = np.full((3, h, w), 255, dtype=np.uint8)
            grid, rows, row = [], [], []
            for label, image in images.items():
                panel = white.copy()  # pad smaller images so the grid has one size
                panel[:, :image.shape[0], :image.shape[1]] = image.transpose(2, 0, 1)
                grid.append(panel)
                row.append(f"<td>{label}</td>")
                if len(row) == ncols:
                    rows.append("<tr>%s</tr>" % "".join(row))
                    row = []
            while len(grid) % ncols:
                grid.append(white)
                row.append("<td></td>")
            if row:
                rows.append("<tr>%s</tr>" % "".join(row))
            if self._send("images", self.vis.images, grid, nrow=ncols, win=self.win_images, padding=2,
                          opts=dict(title=self.name + " images")):
                self._send("image labels", self.vis.text, table_css + "<table>%s</table>" % "".join(rows),
                           win=self.win_labels, opts=dict(title=self.name + " labels"))
        else:
            for idx, (label, image) in enumerate(images.items(), start=1):
                if not self._send("images", self.vis.image, image.transpose(2, 0, 1), opts=dict(title=label),
                                  win=str(self.display_id + idx)):
                    break

    # ---- losses

    def plot_current_losses(self, epoch, counter_ratio, losses):
        """Append ``losses`` (name -> value) at x = ``epoch + counter_ratio`` and redraw the loss window.

        Names that appear later get NaN (a gap) for the earlier points.
        """
        x = float(epoch) + float(counter_ratio)
        n = len(self.plot_data["X"])
        for name in losses:
            self.plot_data["Y"].setdefault(name, [math.nan] * n)
        for name, values in self.plot_data["Y"].items():
            values.append(float(losses[name]) if name in losses else math.nan)
        self.plot_data["X"].append(x)
        if self.vis is None:
            return
        legend = list(self.plot_data["Y"])
        xs = np.array(self.plot_data["X"])
        ys = np.array([self.plot_data["Y"][name] for name in legend]).T  # [points, losses]
        self._send("losses", self.vis.line, X=np.stack([xs] * len(legend), 1), Y=ys, win=self.win_losses,
                   opts={"title": self.name + " loss over time", "legend": legend, "xlabel": "epoch",
                         "ylabel": "loss"})

    def print_current_losses(self, epoch, iters, losses, t_comp, t_data):
        """The loss line ``(epoch: E, iters: I, time: T, data: D) name: value ...``, also appended to
        ``loss_log.txt``; the caller logs it."""
        message = "(epoch: %d, iters: %d, time: %.3f, data: %.3f) " % (epoch, iters, t_comp, t_data)
        for name, value in losses.items():
            message += "%s: %.3f " % (name, float(value))
        os.makedirs(self.run_dir, exist_ok=True)
        with open(self.log_name, "a", encoding="utf-8") as log_file:
            log_file.write(message + "\n")
        return message

    # ---- mask search

    def plot_mask_search(self, records):
        """Plot the mask search so far (see :func:`mask_search_figure` for ``records``).

        Sent to visdom window ``display_id + 3`` and, with HTML on, saved as
        ``web/images/mask_search.png`` at the top of the page under "Mask search".
        """
        self.mask_records = list(records)
        if not self.mask_records or (self.vis is None and not self.use_html):
            return
        png = mask_search_png(self.mask_records)
        if self.vis is not None:
            from PIL import Image

            with Image.open(io.BytesIO(png)) as im:
                image = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
            self._send("the mask-search plot", self.vis.image, image, win=self.win_mask_search,
                       opts=dict(title=self.name + " mask search"))
        if self.use_html:
            write_bytes(os.path.join(self.img_dir, MASK_SEARCH_PNG), png)
            self._write_index()

    # ---- HTML page

    def _write_index(self):
        """Rebuild ``web/index.html`` from the files in ``web/images`` (so resumed runs keep old epochs)."""
        by_epoch = {}
        for fname in os.listdir(self.img_dir):
            match = _EPOCH_IMAGE.match(fname)
            if match:
                by_epoch.setdefault(int(match.group(1)), {})[match.group(2)] = fname
        webpage = html.HTML(self.web_dir, f"Experiment name = {self.name}", refresh=HTML_REFRESH_S)
        if os.path.exists(os.path.join(self.img_dir, MASK_SEARCH_PNG)):
            webpage.add_header("Mask search")
            webpage.add_image_block(MASK_SEARCH_PNG, "bound and kept-channel fraction per mask layer")
        for epoch in sorted(by_epoch, reverse=True):
            files = by_epoch[epoch]
            labels = [lb for lb in self._labels if lb in files] + sorted(set(files) - set(self._labels))
            webpage.add_header(f"epoch [{epoch}]")
            ims = [files[lb] for lb in labels]
            webpage.add_images(ims, labels, ims, width=self.win_size)
        webpage.save()


def save_images(webpage, visuals, image_path, aspect_ratio=1.0, width=256, flat=False, name=None):
    """Save one test sample's ``visuals`` (label -> tensor) under the page's image folder and add a row.

    ``image_path`` is the sample's source path (or a list whose first entry is); the name is ``name``
    when given (a ``/``-separated relative name such as ``cam1/frame`` keeps its sub-folders; datasets
    give unique ones, ``dataset.result_name(path)``), else the file name up to the first dot. Each image
    goes to ``<image_dir>/<label>/<name>_<label>.png``, or to ``<image_dir>/<name>_<label>.png`` with
    ``flat``. Returns the written paths.
    """
    if isinstance(image_path, (list, tuple)):
        image_path = image_path[0]
    image_dir = webpage.get_image_dir()
    stem = name if name is not None else os.path.basename(os.fspath(image_path)).split(".")[0]
    webpage.add_header(stem)
    ims, txts, paths = [], [], []
    for label, tensor in visuals.items():
        fname = f"{stem}_{label}.png"
        rel = fname if flat else f"{label}/{fname}"
        paths.append(save_image(tensor2im(tensor), os.path.join(image_dir, rel), aspect_ratio=aspect_ratio))
        ims.append(rel)
        txts.append(label)
    webpage.add_images(ims, txts, ims, width=width)
    return paths


def add_options(group):
    """The options of what a training run shows (visdom, the loss log, the HTML page), declared into the
    argparse ``group`` options/ gives this owner."""
    group.add_argument("--display_winsize", type=int, default=256, help="display window size for both visdom and HTML")
    group.add_argument("--display_freq", type=int, default=400,
                       help="frequency (images) of showing training results on screen")
    group.add_argument("--display_ncols", type=int, default=4,
                       help="if positive, display all images in a single visdom web panel with certain number of "
                            "images per row")
    group.add_argument("--display_id", type=int, default=1,
                       help="window id of the web display; <= 0 disables visdom. default: 1")
    group.add_argument("--display_server", type=str, default="http://localhost", help="visdom server of the web display")
    group.add_argument("--display_env", type=str, default="main", help='visdom display environment name (default is "main")')
    group.add_argument("--display_port", type=int, default=8097, help="visdom port of the web display")
    group.add_argument("--update_html_freq", type=int, default=1000,
                       help="frequency (images) of saving training results to html")
    group.add_argument("--print_freq", type=int, default=100,
                       help="frequency (images) of showing training results on console")
    flag(group, "--no_html", "do not save intermediate training results to [checkpoints_dir]/[name]/web/")
