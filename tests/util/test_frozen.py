"""util/frozen.py: the validated options are read-only; a value a checkpoint fixes goes into a copy."""
import argparse
import copy
import pickle

import pytest

import options
from options import options_text
from pipeline.checkpoint import options_dict
from util.frozen import Options, replace


@pytest.fixture
def opt(tmp_path):
    return options.parse("train", ["--dataroot", str(tmp_path), "--ngf", "8"])


def test_parse_returns_read_only_options(opt):
    assert isinstance(opt, Options)
    with pytest.raises(AttributeError, match=r"read-only \(opt.ngf\).*replace"):
        opt.ngf = 16
    with pytest.raises(AttributeError, match="read-only"):
        del opt.ngf
    with pytest.raises(AttributeError, match="read-only"):
        setattr(opt, "brand_new", 1)
    assert opt.ngf == 8 and not hasattr(opt, "brand_new")


def test_replace_gives_a_changed_read_only_copy(opt):
    before = dict(vars(opt))
    resolved = replace(opt, ngf=16, crop_size=32)
    assert (resolved.ngf, resolved.crop_size) == (16, 32)
    assert vars(opt) == before  # the original is left as it is
    with pytest.raises(AttributeError, match="read-only"):
        resolved.ngf = 4
    # a plain namespace (scripts that build their own) stays a writable one
    plain = replace(argparse.Namespace(a=1), a=2)
    plain.a = 3
    assert plain.a == 3


def test_copies_and_pickles_stay_read_only_and_record_only_options(opt):
    for other in (copy.copy(opt), copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert vars(other) == vars(opt) and other == opt
        with pytest.raises(AttributeError, match="read-only"):
            other.lr = 1.0
    # the read-only flag is no option: it is in no checkpoint and no opt.txt
    assert "_frozen" not in vars(opt) and "_frozen" not in options_dict(opt) and "_frozen" not in options_text(opt)
