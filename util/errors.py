"""The one exception type for problems with the user's input.

Library code raises :class:`UserError` with a one-line message that names the problem and the fix;
the entry points (train.py, test.py, prune.py, scripts/) print it and exit with status 2.
"""
import argparse
import difflib


class UserError(Exception):
    """Bad input: missing folders, unreadable images, wrong checkpoints, contradictory options.

    ``every_rank``: under torchrun the problem is this process's own (its LOCAL_RANK, say), so every
    process that meets it prints it (see :func:`exit_on_user_error`)."""

    def __init__(self, message, every_rank=False):
        super().__init__(message)
        self.every_rank = every_rank


def first_line(err, limit=200):
    """The start of an exception's message (its first two lines, at most ``limit`` characters), for
    one-line errors that quote a library's message."""
    text = str(err).strip().splitlines()
    return " ".join(text[:2])[:limit] if text else type(err).__name__


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are UserErrors (one line, exit 2 through :func:`cli_entry`).

    An unknown option is named with the closest real one (``--lamda_A`` -> "did you mean
    --lambda_A?"), which argparse itself does not do before Python 3.14."""

    def error(self, message):
        raise UserError(f"{message} (see `{self.prog} -h`)")

    def parse_args(self, args=None, namespace=None):
        # unknown options are named before missing required ones: a mistyped --load_path would
        # otherwise be reported as "--load_path is required", hiding the typo
        required = [action for action in self._actions if action.required]
        for action in required:
            action.required = False
        try:
            opt, extras = self.parse_known_args(args, namespace)
        finally:
            for action in required:
                action.required = True
        if extras:
            self.error(unknown_arguments_message(extras, self.option_strings()))
        return super().parse_args(args, namespace) if required else opt

    def option_strings(self):
        """Every option string the parser knows (``--lambda_A``, ``-h``, aliases)."""
        return [s for action in self._actions for s in action.option_strings]


def _looks_like_option(token):
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)  # a negative number is a value, not an option
    except ValueError:
        return True
    return False


def suggest_option(token, known):
    """The real option closest to the mistyped ``token`` (``--lamda_A=10`` -> ``--lambda_A``), or None.

    A spelling that differs only in case wins (``--netg`` -> ``--netG``); otherwise
    ``difflib.get_close_matches`` at its default similarity cut-off (0.6). ``known``: option strings."""
    name = token.split("=", 1)[0]
    same_case = [k for k in known if k.lower() == name.lower()]
    if same_case:
        return same_case[0]
    # compared without the dashes, which every option shares and which would make "--foo" as close
    # to "--ngf" as the cut-off
    bare = {k.lstrip("-"): k for k in known}
    close = difflib.get_close_matches(name.lstrip("-"), list(bare), n=1)
    return bare[close[0]] if close else None


def unknown_arguments_message(extras, known):
    """One line naming the arguments argparse left over: each unknown option with its closest real
    one, then stray values that follow no unknown option (the value of an unknown option is not
    named separately)."""
    parts, stray, after_option = [], [], False
    for token in extras:
        if _looks_like_option(token):
            name = token.split("=", 1)[0]
            guess = suggest_option(name, known)
            parts.append(f"unknown option {name}" + (f": did you mean {guess}?" if guess else ""))
            after_option = "=" not in token
        elif after_option:
            after_option = False  # the value given to the unknown option just named
        else:
            stray.append(token)
    if stray:
        parts.append(f"unrecognized arguments: {' '.join(stray)}")
    return "; ".join(parts)
