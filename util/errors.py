"""The one exception type for problems with the user's input.

Library code raises :class:`UserError` with a one-line message that names the problem and the fix;
the entry points (train.py, test.py, prune.py, scripts/) print it and exit with status 2.
"""
import argparse
import functools
import logging
import sys


class UserError(Exception):
    """Bad input: missing folders, unreadable images, wrong checkpoints, contradictory options."""


def first_line(err, limit=200):
    """The start of an exception's message (its first two lines, at most ``limit`` characters), for
    one-line errors that quote a library's message."""
    text = str(err).strip().splitlines()
    return " ".join(text[:2])[:limit] if text else type(err).__name__


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are UserErrors (one line, exit 2 through :func:`cli_entry`)."""

    def error(self, message):
        raise UserError(f"{message} (see `{self.prog} -h`)")


def cli_entry(main):
    """Wrap a script's ``main`` so that a :class:`UserError` becomes one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        from util.files import release_locks
        from util.logger import drop_console, release_console

        try:
            try:
                result = main(*args, **kwargs)
            finally:
                release_locks()  # a run's folder is free once its command is over
        except UserError as err:
            drop_console()  # the error is the only line: messages held back during the checks go
            logging.shutdown()
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            release_console()
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except BaseException:
            release_console()
            raise
        release_console()
        return result

    return wrapper
