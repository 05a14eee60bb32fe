"""datatrove executors: local processes by default, Ray for clusters.

Both keep datatrove's per-task completion files under `logging_dir`, so a rerun of a killed run
skips the shards that finished and runs only the rest.
"""

from __future__ import annotations

import sys
from typing import Callable


def run_pipeline(kind: str, pipeline: list, tasks: int, workers: int, logging_dir: str) -> None:
    if tasks == 0:
        return
    workers = max(1, min(workers, tasks))
    if kind == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(num_cpus=workers if _local_ray() else None, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        executor = RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                       cpus_per_task=1, mem_per_cpu_gb=1)
    else:
        from datatrove.executor import LocalPipelineExecutor

        start = "fork" if sys.platform.startswith("linux") else "spawn"
        executor = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                         start_method=start)
    executor.run()
    missing = [r for r in range(tasks) if not executor.is_rank_completed(r)]
    if missing:
        raise RuntimeError(f"{len(missing)} of {tasks} tasks failed (ranks {missing[:10]}); see {logging_dir}/logs")


def _local_ray() -> bool:
    import os

    return not os.environ.get("RAY_ADDRESS")


PipelineFactory = Callable[[], list]
