"""util/logger.py: detail lines go to the run's logger.log only, summary lines to the console too."""
import logging

from tests.conftest import _detach_logging
from util.logger import detail_logger, setup_logging


def test_detail_lines_go_to_the_log_file_only(tmp_path, capsys):
    setup_logging(str(tmp_path))
    try:
        logging.getLogger("dmad").info("a summary line")
        detail_logger().info("a per-layer line")
    finally:
        _detach_logging()
    console = capsys.readouterr()
    assert "a summary line" in console.out and "a per-layer line" not in console.out + console.err
    log = (tmp_path / "logger.log").read_text()
    assert "a summary line" in log and "a per-layer line" in log
