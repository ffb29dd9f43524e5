"""Read-only options: what :func:`options.parse` returns, and :func:`replace`, the one way a stage
changes a value (a copy; docs/architecture.md, "How options flow")."""
import argparse
import copy


class Options(argparse.Namespace):
    """The options of one script, as :func:`parse` returns them: read-only once validated
    (:meth:`freeze`). Writing an option of frozen options is an AttributeError: a value a checkpoint
    fixes goes into a copy, :func:`replace`. ``vars(opt)`` holds the options only."""

    __slots__ = ("_frozen",)

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"the validated options are read-only (opt.{name}): resolve a value a checkpoint "
                                 "fixes into a copy with util.frozen.replace(opt, ...)")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"the validated options are read-only (opt.{name})")
        super().__delattr__(name)

    def freeze(self):
        """Make these options read-only; returns them."""
        object.__setattr__(self, "_frozen", True)
        return self


def replace(opt, **changes):
    """A copy of ``opt`` (:class:`Options`, frozen or not, or any namespace) with ``changes``
    (``{option: value}``); ``opt`` itself is left as it is, and the copy is read-only when ``opt`` is."""
    resolved = copy.copy(opt)
    vars(resolved).update(changes)
    return resolved
