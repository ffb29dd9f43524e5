"""datasets/download_*_dataset.sh: a name that is not a dataset is refused with the usage."""
import os
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("script", ["download_cyclegan_dataset.sh", "download_pix2pix_dataset.sh"])
def test_download_scripts_reject_unknown_names(script):
    path = os.path.join(REPO, "datasets", script)
    for args in ([], ["not_a_dataset"], ["facades maps"]):
        result = subprocess.run(["bash", path, *args], capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.startswith("usage:") and "facades" in result.stderr
