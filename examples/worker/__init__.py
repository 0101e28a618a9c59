"""The reference transcoding worker (``python -m examples.worker``).

```python
from examples.worker import Worker, WorkerConfig

config = WorkerConfig(master="http://127.0.0.1:8080", output_dir=Path("out"))
Worker(config).run()  # blocks; SIGTERM or worker.stop() drains and deregisters
```
"""

from examples.worker.capacity import Capacity, detect_capacity
from examples.worker.client import MasterClient
from examples.worker.config import WorkerConfig
from examples.worker.runner import JobRunner
from examples.worker.worker import Worker

__all__ = ["Capacity", "JobRunner", "MasterClient", "Worker", "WorkerConfig", "detect_capacity"]
