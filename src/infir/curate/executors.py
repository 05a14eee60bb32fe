"""datatrove executors: local processes by default, Ray (`RayPipelineExecutor`) for clusters.

Both keep datatrove's per-task completion files under `logging_dir` (a local path or an fsspec
URL, through datatrove's DataFolder), so a rerun of a killed or failed run skips the tasks that
finished and runs only the rest.

Ray runs on the cluster at `ray.address` or $RAY_ADDRESS when one is given, else on a local one.
A task of a cluster with several nodes may run on any of them, so it must find the work folder
and the output there: a plain local path is refused on such a cluster unless `ray.shared_fs` says
every node mounts it; otherwise each node would write its own half of the work and the run would
end with tasks that "completed" where the driver cannot see them. An fsspec URL (s3://, gs://) is
reached from every node; the node-local cache of a remote work folder (`workfolder`) is meant to
be per node and is not checked.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future

from infir.curate.config import RayConfig


class ClusterPathError(RuntimeError):
    """A node-local path given to a Ray cluster of several nodes."""


def run_pipeline(
    kind: str,
    pipeline: list,
    tasks: int,
    workers: int,
    logging_dir,
    ray_cfg: RayConfig | None = None,
    paths: tuple = (),
) -> None:
    """Runs `tasks` tasks of `pipeline`, `workers` at a time; raises when any task failed.
    `paths`: other folders the tasks read or write, checked like `logging_dir` on a cluster."""
    if tasks == 0:
        return
    workers = max(1, min(workers, tasks))
    if kind == "ray":
        from datatrove.executor import RayPipelineExecutor

        settings = ray_cfg or RayConfig()
        connect_ray(settings, workers)
        surface_failed_submissions()
        check_cluster_paths([logging_dir, *paths], settings.shared_fs)
        executor = RayPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=workers,
            logging_dir=logging_dir,
            cpus_per_task=settings.cpus_per_task,
            mem_per_cpu_gb=settings.mem_per_cpu_gb,
        )
    else:
        from datatrove.executor import LocalPipelineExecutor

        start = "fork" if sys.platform.startswith("linux") else "spawn"
        executor = LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, start_method=start
        )
    executor.run()
    missing = executor.get_incomplete_ranks(range(tasks), skip_completed=True)
    if missing:
        where = executor.logging_dir.resolve_paths("logs")
        raise RuntimeError(
            f"{len(missing)} of {tasks} tasks failed (ranks {missing[:10]}); see {where}; "
            "a rerun on the same output runs only these"
        )


def connect_ray(settings: RayConfig, workers: int) -> None:
    """Joins the configured cluster, or starts a local one, unless this process is connected."""
    import ray

    if ray.is_initialized():
        return
    address = settings.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # "local": a new cluster of this process's own, never one someone started on this machine
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)


def surface_failed_submissions() -> None:
    """Makes a Ray task whose submission failed count as a failed task instead of one still pending.

    datatrove 0.10's RayTaskManager submits each task from a thread (a placement group, its worker
    actors, their node addresses) and completes the task's future only when all of that worked.
    When a step raises (a worker actor that cannot start, a node lost meanwhile), the future stays
    pending, the placement group keeps its CPUs, and the executor waits forever. Here a failed
    submission releases its placement group and fails its future: the executor drops the task and
    finishes the others, `run_pipeline` reports it among the failed tasks, and a rerun runs it."""
    import datatrove.executor.ray as datatrove_ray

    base = datatrove_ray.RayTaskManager
    if getattr(base, "releases_failed_submissions", False):
        return

    class ReleasingTaskManager(base):
        releases_failed_submissions = True

        def submit_task(self, executor_ref, ranks_to_submit, remote_options):
            import ray
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            task_future = Future()
            bundle = datatrove_ray.convert_remote_options_to_bundle(remote_options)

            def submit():
                group = ray.util.placement_group([bundle] * self.nodes_per_task)
                try:
                    ray.get(group.ready())
                    workers = [
                        ray.remote(datatrove_ray.RankWorker)
                        .options(
                            scheduling_strategy=PlacementGroupSchedulingStrategy(group, index),
                            **remote_options,
                        )
                        .remote()
                        for index in range(self.nodes_per_task)
                    ]
                    node_ips = ray.get([worker.get_node_ip.remote() for worker in workers])
                    tasks = [
                        worker.run_for_rank.remote(executor_ref, ranks_to_submit, node_ips, index)
                        for index, worker in enumerate(workers)
                    ]
                except BaseException as error:
                    ray.util.remove_placement_group(group)
                    task_future.set_exception(error)
                    return
                record = datatrove_ray.TaskGroup(
                    tasks=tasks, workers=workers, placement_group=group, ranks=ranks_to_submit
                )
                for task in tasks:
                    self.task_to_group[task] = record
                    self.timeout_manager.add_task(task)
                task_future.set_result(tasks)

            self.pg_futures.append(self.executor.submit(submit))
            return task_future

    datatrove_ray.RayTaskManager = ReleasingTaskManager


def alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _is_local(path) -> bool:
    """Whether `path` (a string, or a datatrove DataFolder) is on this machine's own filesystem;
    a URL is judged by its protocol alone, without loading that protocol's filesystem."""
    from datatrove.io import DataFolder
    from fsspec.core import split_protocol
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(path, DataFolder):
        return isinstance(path.fs, LocalFileSystem)
    protocol, _ = split_protocol(str(path))
    return protocol in (None, "file", "local")


def check_cluster_paths(paths: list, shared_fs: bool) -> None:
    """On a cluster of more than one node, refuses paths that only this machine can see."""
    nodes = alive_nodes()
    if nodes <= 1 or shared_fs:
        return
    for path in paths:
        if _is_local(path):
            raise ClusterPathError(
                f"the Ray cluster has {nodes} nodes, but {getattr(path, 'path', path)} is a path on this "
                "machine: tasks on the other nodes would not find it. Give an output and a curate.work_dir on "
                "storage every node reaches (fsspec URLs such as s3://bucket/run and s3://bucket/run/work), or "
                "local paths on a filesystem every node mounts, with ray.shared_fs=true to say so."
            )
