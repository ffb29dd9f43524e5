"""Logging set-up: ``<run dir>/logger.log`` and the console, lines prefixed with a timestamp.

Console lines go through ``tqdm.write`` so they do not tear the progress bars.
"""
import logging
import os

from tqdm import tqdm

FORMAT = "%(asctime)s | %(message)s"
DATEFMT = "%m/%d %I:%M:%S %p"


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(run_dir=None, level=logging.INFO):
    """Route the root logger to the console and, when ``run_dir`` is given, to ``run_dir/logger.log``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_dmad", False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(FORMAT, DATEFMT)
    console = _TqdmHandler()
    console.setFormatter(formatter)
    console._dmad = True
    root.addHandler(console)
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        filehandler = logging.FileHandler(os.path.join(run_dir, "logger.log"))
        filehandler.setFormatter(formatter)
        filehandler._dmad = True
        root.addHandler(filehandler)
    root.setLevel(level)
    return logging.getLogger("dmad")
