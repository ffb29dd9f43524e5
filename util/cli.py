"""What every entry point does around its ``main``: a :class:`util.errors.UserError` becomes one line on
stderr and exit status 2, a Ctrl-C becomes "interrupted" and exit status 130 (also while torch is
still importing), and the run folder's lock and the held-back console lines are released."""
import functools
import logging
import os
import signal
import sys

from util.errors import UserError
from util.files import release_locks
from util.logger import drop_console, release_console


def launch_rank(variable="RANK"):
    """This process's rank as torchrun set it (``RANK``, or ``LOCAL_RANK``: the rank on its machine; in
    the environment before Python starts), 0 when not started by torchrun or when the variable is not
    a number."""
    try:
        return int(os.environ.get(variable, "0"))
    except ValueError:
        return 0


def exit_on_user_error(err):
    """Print ``error: <err>`` on stderr and exit with status 2. Under torchrun every process refuses the
    same input, so one process per machine prints the line (LOCAL_RANK 0: on one machine that is rank
    0; each machine prints its own, since a file can be missing on one machine only), the others exit
    2 quietly; a UserError with ``every_rank`` is printed by every process that raised it, named by its
    rank."""
    if getattr(err, "every_rank", False) and launch_rank() != 0:
        print(f"error: rank {launch_rank()}: {err}", file=sys.stderr)
    elif launch_rank("LOCAL_RANK") == 0:
        print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


def _interrupted_while_starting(signum, frame):
    if launch_rank("LOCAL_RANK") == 0:
        print("interrupted", file=sys.stderr)
    sys.exit(130)


def before_imports():
    """Call first in an entry point, before torch loads:

    * idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless the environment
      sets it): on a shared or busy CPU, spinning threads make training many times slower, and the
      setting is read only when torch loads OpenMP;
    * a Ctrl-C while the entry point is still importing (torch takes seconds) ends it as one during the
      run does: "interrupted" on stderr and exit status 130, not a KeyboardInterrupt traceback from
      inside an import; :func:`cli_entry` restores Python's own handler when ``main`` starts."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_starting)


def cli_entry(main):
    """Wrap a script's ``main`` so that a :class:`UserError` becomes one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt again, handled below
        try:
            try:
                result = main(*args, **kwargs)
            finally:
                release_locks()  # a run's folder is free once its command is over
        except UserError as err:
            drop_console()  # the error is the only line: messages held back during the checks go
            logging.shutdown()
            exit_on_user_error(err)
        except KeyboardInterrupt as err:
            release_console()
            # under torchrun every process gets the Ctrl-C: one says so, unless a line saying how to
            # resume was already written (``reported``, set by pipeline.trainer.Trainer.train)
            if launch_rank("LOCAL_RANK") == 0 and not getattr(err, "reported", False):
                print("interrupted", file=sys.stderr)
            sys.exit(130)
        except BaseException:
            release_console()
            raise
        release_console()
        return result

    return wrapper
