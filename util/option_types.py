"""Value types and a boolean flag for command-line options, shared by every owner that declares a group
of options (options/ assembles the parsers from them).

Boolean options are real flags: ``--mask`` alone means true, and ``--continue_train True`` /
``--continue_train false`` work as written in the seed README (the original's ``type=bool`` parsed
``False`` as true).
"""
import argparse
import math

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def str2bool(value):
    """Parse a boolean option value: true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def flag(group, name, help_text, default=False, aliases=()):
    """Add the boolean option ``name`` to ``group``: a bare flag means true, a value is parsed by
    :func:`str2bool`."""
    group.add_argument(name, *aliases, type=str2bool, nargs="?", const=True, default=default,
                       metavar="BOOL", help=f"{help_text} (bare flag = true). default: {default}")


def int_or_inf(value):
    """An integer option that also takes ``inf`` (no cap)."""
    low = str(value).strip().lower()
    if low in ("inf", "infinity"):
        return math.inf
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'inf', got {value!r}") from None
    return number
