"""Logging for pcpsim's processes: one format, one `--log-level` flag.

Processes report what happens to them (a CPU declared dead, a recovery, a failed step)
through `logging`, to stderr, each line naming the process; output meant for a person
running a command (tables, results) stays on stdout and does not go through here.
"""

import logging
import sys

from node.shared.config import EnvArgumentParser

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)s %(process_name)s %(name)s: %(message)s"


def add_log_level_flag(parser) -> None:
    """The `--log-level` flag (also PCPSIM_LOG_LEVEL where the parser reads the environment)."""
    env = {"env": "PCPSIM_LOG_LEVEL"} if isinstance(parser, EnvArgumentParser) else {}
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LEVELS,
        help="least severe level of the process's log lines on stderr",
        **env,
    )


def setup(level: str, process_name: str) -> None:
    """Send every logger's records at `level` or above to stderr, each line naming `process_name`
    (e.g. "coordinator" or "cpu3"), so the lines of a cluster's processes can be told apart."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ProcessName(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _ProcessName(logging.Filter):
    def __init__(self, name: str):
        super().__init__()
        self.process_name = name

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_name = self.process_name
        return True
