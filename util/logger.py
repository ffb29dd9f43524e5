"""Logging set-up: ``<run dir>/logger.log`` and the console, lines prefixed with a timestamp.

Detail that would flood the console (the per-layer sparsity report of every update point of the
search, the per-layer pruning table, the options table) is logged to the ``dmad.detail`` logger
(:data:`DETAIL`): it is written to ``logger.log`` in full and kept off the console, which gets a
summary line instead.

Console lines go through ``tqdm.write`` so they do not tear the progress bars. An entry point may
hold the console lines back while it checks its input (``setup_logging(hold=True)``): when a check
fails, :func:`drop_console` discards them so that the error is the only line; otherwise they are
shown when the run folder is set up or :func:`release_console` is called.
"""
import logging
import os

from tqdm import tqdm

FORMAT = "%(asctime)s | %(message)s"
DATEFMT = "%m/%d %I:%M:%S %p"
# the logger of file-only detail; its records propagate to the root logger's handlers as usual
DETAIL = "dmad.detail"


def detail_logger():
    """The logger whose lines go to the run's ``logger.log`` only, never to the console."""
    return logging.getLogger(DETAIL)


def _not_detail(record):
    return record.name != DETAIL and not record.name.startswith(DETAIL + ".")


class _TqdmHandler(logging.StreamHandler):
    def __init__(self, hold=False):
        super().__init__()
        self.holding = hold
        self.held = []

    def emit(self, record):
        if self.holding:
            self.held.append(record)
            return
        try:
            tqdm.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    # not named ``release``: logging.Handler.release() unlocks the handler after every record, and
    # overriding it would both show held lines at the first record and never unlock
    def show_held(self, drop=False):
        """Stop holding; write the held lines (or drop them)."""
        held, self.held, self.holding = self.held, [], False
        if not drop:
            for record in held:
                self.emit(record)


def _console():
    return next((h for h in logging.getLogger().handlers if isinstance(h, _TqdmHandler) and h._dmad), None)


def release_console():
    """Show the console lines held back so far, and show new ones at once."""
    handler = _console()
    if handler is not None:
        handler.show_held()


def drop_console():
    """Discard the console lines held back so far (the command failed on its input)."""
    handler = _console()
    if handler is not None:
        handler.show_held(drop=True)


def setup_logging(run_dir=None, level=logging.INFO, hold=False):
    """Route the root logger to the console and, when ``run_dir`` is given, to ``run_dir/logger.log``.

    ``hold``: keep console lines back until :func:`release_console` (or a later call with a
    ``run_dir``, which shows them); lines held by an earlier call carry over.
    """
    root = logging.getLogger()
    held, holding = [], False
    for handler in list(root.handlers):
        if getattr(handler, "_dmad", False):
            if isinstance(handler, _TqdmHandler):
                held, holding = handler.held, handler.holding
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(FORMAT, DATEFMT)
    console = _TqdmHandler(hold=hold or (holding and run_dir is None))
    console.setFormatter(formatter)
    console.addFilter(_not_detail)
    console._dmad = True
    console.held = held
    root.addHandler(console)
    if not console.holding:
        console.show_held()
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        filehandler = logging.FileHandler(os.path.join(run_dir, "logger.log"))
        filehandler.setFormatter(formatter)
        filehandler._dmad = True
        root.addHandler(filehandler)
    root.setLevel(level)
    return logging.getLogger("dmad")
