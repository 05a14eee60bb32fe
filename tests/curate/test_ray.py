"""`executor: ray` on a real two-node Ray cluster started here (a head and a second node, one CPU
each): the curate output equals the local executor's, tasks run on both nodes, a node-local path
is refused unless declared shared, a rerun after a failed task runs only that task, and a whole
curate run killed midway finishes, when rerun, only what was left."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from datatrove.executor import RayPipelineExecutor
from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep
from ray import cloudpickle
from ray.cluster_utils import Cluster

from infir.curate.config import CurateConfig, RayConfig, SourceConfig
from infir.curate.executors import (
    ClusterPathError,
    alive_nodes,
    check_cluster_paths,
    run_pipeline,
    surface_failed_submissions,
)
from infir.curate.pipeline import run_curate
from tests.curate.interrupt import kill_after_first_completion

# Small nodes: the suite shares a small machine; tasks reserve little memory.
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
SMALL_TASKS = RayConfig(shared_fs=True, mem_per_cpu_gb=0.25)

# The steps below are defined here, not in an installed module: Ray ships them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    head_args = dict(NODE, include_dashboard=False)
    nodes = Cluster(initialize_head=True, head_node_args=head_args)
    nodes.add_node(**NODE)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def _write_corpus(path: Path) -> None:
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=40))
    docs += list(iter_builtin("reasoning_gym", docs_per_family=3))
    lines = [json.dumps({"id": d["id"], "text": d["text"], "url": d["url"]}) for d in docs]
    lines.insert(4, json.dumps({"id": "copy", "text": docs[1]["text"], "url": "u"}))
    lines.insert(6, "{not json")
    path.write_text("\n".join(lines) + "\n")


def _cfg(corpus: Path, executor: str) -> CurateConfig:
    cfg = CurateConfig(
        sources=[SourceConfig(type="jsonl", paths=[str(corpus)])],
        workers=2,
        tasks=3,
        executor=executor,
        ray=SMALL_TASKS,
    )
    # The steps that train classifiers run on the driver whatever the executor; off to keep this short.
    cfg.recall.enabled = cfg.quality.enabled = cfg.decontam.enabled = False
    return cfg


def _kept(out: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (p.name, r["id"], r["text"])
        for p in (out / "kept").glob("*.jsonl.gz")
        for r in map(json.loads, gzip.open(p, "rt"))
    )


def test_curate_on_a_two_node_cluster_equals_local(cluster, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.jsonl"
    _write_corpus(corpus)
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)  # the existing cluster, found as a user would
    on_ray = run_curate(_cfg(corpus, "ray"), tmp_path / "ray")
    assert ray.is_initialized() and alive_nodes() == 2
    local = run_curate(_cfg(corpus, "local"), tmp_path / "local")
    assert on_ray["totals"]["executor"] == "ray"
    kept = _kept(tmp_path / "ray")
    assert kept and kept == _kept(tmp_path / "local")
    assert {k: v for k, v in on_ray["totals"].items() if "second" not in k and k != "executor"} == {
        k: v for k, v in local["totals"].items() if "second" not in k and k != "executor"
    }
    assert "copy" not in {doc_id for _, doc_id, _ in kept}


def test_node_local_path_refused_on_a_multi_node_cluster(cluster, tmp_path):
    if not ray.is_initialized():
        ray.init(address=cluster.address)
    with pytest.raises(ClusterPathError, match=r"2 nodes.*ray.shared_fs=true"):
        # small tasks, so that a check that failed to refuse ends in "did not raise", not in a wait for memory
        ray_cfg = RayConfig(shared_fs=False, mem_per_cpu_gb=0.25)
        run_pipeline("ray", [_Mark(str(tmp_path / "ran"), None)], 2, 2, str(tmp_path / "logs"), ray_cfg)
    assert not (tmp_path / "ran").exists()  # refused before any task ran
    with pytest.raises(ClusterPathError):  # a datatrove DataFolder on the local filesystem too
        check_cluster_paths([DataFolder(str(tmp_path / "logs"))], shared_fs=False)
    check_cluster_paths(["s3://bucket/run/logs"], shared_fs=False)  # reachable from every node
    check_cluster_paths([str(tmp_path / "logs")], shared_fs=True)


class _Mark(PipelineStep):
    """Records which task ran on which node and attempt; fails task `fail_rank` while `flag` exists."""

    name = "mark"

    def __init__(self, folder: str, flag: str | None, fail_rank: int = -1):
        super().__init__()
        self.folder, self.flag, self.fail_rank = folder, flag, fail_rank

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        attempt = len(list(folder.glob(f"{rank}-*")))
        node = ray.get_runtime_context().get_node_id()
        (folder / f"{rank}-{attempt}").write_text(node)
        time.sleep(1)  # both nodes' single CPUs are busy at once, so the tasks spread over the nodes
        if rank == self.fail_rank and self.flag and Path(self.flag).exists():
            raise RuntimeError(f"task {rank} fails on purpose")
        yield from data or []


def test_rerun_after_a_failed_task_runs_only_that_task(cluster, tmp_path):
    if not ray.is_initialized():
        ray.init(address=cluster.address)
    flag = tmp_path / "fail"
    flag.touch()
    ran, logs = tmp_path / "ran", str(tmp_path / "logs")
    step = _Mark(str(ran), str(flag), fail_rank=2)
    with pytest.raises(RuntimeError, match=r"1 of 4 tasks failed \(ranks \[2\]\)"):
        run_pipeline("ray", [step], 4, 2, logs, SMALL_TASKS)
    first = {p.name: p.read_text() for p in ran.iterdir()}
    assert set(first) == {"0-0", "1-0", "2-0", "3-0"}
    assert len(set(first.values())) == 2  # tasks ran on both nodes
    flag.unlink()
    run_pipeline("ray", [step], 4, 2, logs, SMALL_TASKS)
    assert {p.name for p in ran.iterdir()} - set(first) == {"2-1"}  # only the failed task ran again
    assert sorted(p.name for p in (tmp_path / "logs/completions").iterdir()) == [f"{r:05d}" for r in range(4)]


@pytest.mark.timeout(120)  # datatrove alone waits forever on a task whose worker could not start
def test_a_task_whose_workers_cannot_start_fails_and_frees_its_cpus(cluster, tmp_path):
    if not ray.is_initialized():
        ray.init(address=cluster.address)
    surface_failed_submissions()
    ran, logs = tmp_path / "ran", str(tmp_path / "logs")

    def executor(**remote):
        return RayPipelineExecutor(
            pipeline=[_Mark(str(ran), None)], tasks=4, workers=2, logging_dir=logs, mem_per_cpu_gb=0.25,
            ray_remote_kwargs=remote,
        )  # fmt: skip

    # a working_dir that does not exist: every worker actor of this run fails to start
    broken = executor(runtime_env={"working_dir": str(tmp_path / "missing")})
    broken.run()  # returns: failed submissions released their placement groups for the next ones
    assert broken.get_incomplete_ranks(range(4)) == [0, 1, 2, 3] and not ran.exists()
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
    executor().run()  # the same run on working workers completes every task
    assert sorted(p.name for p in ran.iterdir()) == ["0-0", "1-0", "2-0", "3-0"]


def test_rerun_after_the_driver_is_killed_runs_only_unfinished_tasks(cluster, tmp_path):
    ran, logs = tmp_path / "ran", tmp_path / "logs"
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "import ray\n"
        "from tests.curate.test_ray import SMALL_TASKS, _Mark\n"
        "from infir.curate.executors import run_pipeline\n"
        "ray.init(address=%r)\n"
        "run_pipeline('ray', [_Mark(%r, None)], 6, 2, %r, SMALL_TASKS)\n"
    ) % (str(Path(__file__).resolve().parents[2]), cluster.address, str(ran), str(logs))
    completions = logs / "completions"
    kill_after_first_completion(script, completions, timeout=60)
    time.sleep(3)  # the killed driver's job and its actors end
    done = {int(p.name) for p in completions.iterdir()}
    assert 0 < len(done) < 6, done  # killed midway
    before = {p.name for p in ran.iterdir()}
    if not ray.is_initialized():
        ray.init(address=cluster.address)
    run_pipeline("ray", [_Mark(str(ran), None)], 6, 2, str(logs), SMALL_TASKS)
    rerun = {int(name.split("-")[0]) for name in {p.name for p in ran.iterdir()} - before}
    assert rerun == set(range(6)) - done
    assert {int(p.name) for p in completions.iterdir()} == set(range(6))


def test_killed_curate_run_rerun_finishes_only_what_is_left(cluster, tmp_path):
    """A whole `run_curate` on the cluster, its driver killed between stages (scan and dedup done,
    the finishing stage not started): the rerun redoes none of the finished work and ends with the
    kept set of an uninterrupted run."""
    corpus, out, signal = tmp_path / "corpus.jsonl", tmp_path / "ray", tmp_path / "expanded"
    _write_corpus(corpus)
    script = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "import ray\n"
        "from pathlib import Path\n"
        "import infir.curate.select as select\n"
        "from tests.curate.test_ray import _cfg\n"
        "from infir.curate.pipeline import run_curate\n"
        "expand = select.expand_prefixes\n"
        "def expand_then_wait(*args):\n"
        "    report = expand(*args)\n"
        "    Path(%r).touch()\n"
        "    time.sleep(120)\n"
        "    return report\n"
        "select.expand_prefixes = expand_then_wait\n"
        "ray.init(address=%r)\n"
        "run_curate(_cfg(Path(%r), 'ray'), Path(%r))\n"
    ) % (str(Path(__file__).resolve().parents[2]), str(signal), cluster.address, str(corpus), str(out))
    driver = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and not signal.exists() and driver.poll() is None:
        time.sleep(0.1)
    assert signal.exists(), "the driver ended before the dedup stage was done"
    driver.kill()
    driver.wait()
    time.sleep(3)  # the killed driver's job and its actors end
    work = out / "_work"
    assert not (work / "logs/finish/completions").exists() and not (out / "summary.json").exists()
    finished = sorted(
        [
            *(work / "scan").glob("*.jsonl"),
            *(work / "pairs").glob("*.bin"),
            work / "dedup.json",
            work / "expand.json",
        ]
    )
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    assert len(stamps) >= 5
    if not ray.is_initialized():
        ray.init(address=cluster.address)
    summary = run_curate(_cfg(corpus, "ray"), out)
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps  # nothing finished ran again
    assert summary["totals"]["executor"] == "ray"
    run_curate(_cfg(corpus, "local"), tmp_path / "local")
    assert _kept(out) and _kept(out) == _kept(tmp_path / "local")


def test_without_an_address_a_local_cluster_is_started(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.shutdown()  # leave any cluster joined above: this run must start its own
    try:
        # small tasks, so that a check that failed to refuse ends in "did not raise", not in a wait for memory
        ray_cfg = RayConfig(shared_fs=False, mem_per_cpu_gb=0.25)
        run_pipeline("ray", [_Mark(str(tmp_path / "ran"), None)], 2, 2, str(tmp_path / "logs"), ray_cfg)
        assert alive_nodes() == 1  # a one-node cluster takes local paths without shared_fs
    finally:
        ray.shutdown()
    assert sorted(p.name for p in (tmp_path / "ran").iterdir()) == ["0-0", "1-0"]
