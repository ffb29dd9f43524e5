"""Helpers of the options/ tests."""
import options


def parse(*argv, script="train"):
    return options.parse(script, ["--dataroot", "x", *argv])
