"""Logging for every command line of the project (``mathcode-pile``, ``mathcode-eval``, training and evaluation
scripts): one format, and the HTTP and file-system libraries kept quiet, since a build sends thousands of requests
and each would otherwise log a line."""

from __future__ import annotations

import logging


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "filelock", "fsspec", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
