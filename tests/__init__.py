"""The test suite. It mirrors the tree: ``tests/<package>/test_<module>.py`` tests ``<package>/<module>.py``
(``tests/models/families/test_resnet.py`` tests ``models/families/resnet.py``), ``tests/models/test_models.py``
and ``tests/models/test_families.py`` the registries of ``models/__init__.py`` and
``models/families/__init__.py``, ``tests/data/test_loader.py`` ``data/__init__.py``; other files of a package
folder test a feature across its modules (``tests/pipeline/test_resume.py``). ``tests/datasets/`` tests the
scripts of ``datasets/``, ``tests/benchmarks/`` those of ``benchmarks/``, and ``tests/e2e/`` the whole
command lines and the toy pipelines end to end. ``test_layers.py`` (the import rules) and ``test_docs.py``
look at the whole tree.

Shared fixtures and helpers: ``tests/conftest.py`` (toy data, tiny options, running the entry points),
``tests/helpers.py`` (helpers of test files in several folders) and each folder's ``conftest.py``. Test
modules import them as ``from tests.<...> import ...``: the repository root is on ``sys.path``, never
``tests/`` itself (``tests/data`` would hide the ``data`` package)."""
