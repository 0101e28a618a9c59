"""``python -m examples.worker --master URL --output-dir DIR``: run a worker until SIGTERM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from examples.common.ffmpeg import FFmpegNotFoundError
from examples.worker.config import build_parser, config_from_args
from examples.worker.worker import Worker


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, build the worker and run it; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = config_from_args(args)
        worker = Worker(config)
    except (ValueError, FFmpegNotFoundError) as exc:
        parser.error(str(exc))
    if not config.api_key:
        logging.getLogger("examples.worker").warning(
            "no worker key (--api-key / FFRTMP_WORKER_KEY): the master must run with an open "
            "worker role"
        )
    worker.install_signal_handlers()
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
