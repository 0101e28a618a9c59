"""The reference transcoding worker (``python -m examples.worker``).

```python
from pathlib import Path

from examples.worker import Worker, WorkerConfig

config = WorkerConfig(master="http://127.0.0.1:8080", output_dir=Path("out"), cpu=4)
worker = Worker(config)  # finds ffmpeg, detects the rest of the capacity
worker.install_signal_handlers()  # main thread only: SIGTERM drains, a second one hands back
worker.run()  # blocks until stopped; worker.stop() from another thread works too
```
"""

from examples.worker.capacity import Capacity, detect_capacity
from examples.worker.client import MasterClient
from examples.worker.config import WorkerConfig
from examples.worker.runner import JobRunner
from examples.worker.worker import Worker

__all__ = ["Capacity", "JobRunner", "MasterClient", "Worker", "WorkerConfig", "detect_capacity"]
