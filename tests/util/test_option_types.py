"""util/option_types.py: boolean values as the seed README writes them, boolean flags that are true when
bare, and integers that also take ``inf``."""
import argparse
import math

import pytest

from util.option_types import flag, int_or_inf, str2bool


@pytest.mark.parametrize("word", ["1", "true", "True", "T", "yes", "Y", "on", " ON "])
def test_str2bool_reads_the_true_words(word):
    assert str2bool(word) is True


@pytest.mark.parametrize("word", ["0", "false", "False", "f", "no", "N", "off"])
def test_str2bool_reads_the_false_words(word):
    assert str2bool(word) is False


def test_str2bool_keeps_booleans_and_refuses_other_words():
    assert str2bool(True) is True and str2bool(False) is False
    for word in ("maybe", "", "2"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a boolean"):
            str2bool(word)


def test_flag_is_true_when_bare_and_takes_a_value():
    parser = argparse.ArgumentParser()
    flag(parser, "--mask", "use masks")
    flag(parser, "--no_flip", "do not flip", default=True, aliases=("--noflip",))
    assert parser.parse_args([]).mask is False and parser.parse_args([]).no_flip is True
    assert parser.parse_args(["--mask"]).mask is True
    assert parser.parse_args(["--mask", "False"]).mask is False
    assert parser.parse_args(["--mask", "--noflip", "0"]).no_flip is False
    assert "(bare flag = true). default: False" in parser.format_help()


def test_int_or_inf():
    assert int_or_inf("12") == 12 and isinstance(int_or_inf("12"), int)
    assert int_or_inf("inf") == math.inf and int_or_inf(" Infinity ") == math.inf
    for text in ("1.5", "many", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer or 'inf'"):
            int_or_inf(text)
