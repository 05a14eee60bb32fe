"""The work folder and the output on S3: a real object store API (moto's S3 server on a free
local port, reached through s3fs as a user's bucket would be), with the local executor, with
Ray on a two-node local cluster, and a run killed midway and resumed with another node's (empty)
cache. Each kept set must equal a run on local paths."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import moto.server as moto_server
import pytest
import s3fs  # noqa: F401  (the dev extra installs it: a missing s3fs fails here rather than skipping)

from infir.curate.config import CurateConfig, RayConfig, SourceConfig
from infir.curate.pipeline import run_curate
from tests.curate.interrupt import kill_after_first_completion
from tests.ports import free_port

BUCKET = "infir-curate"


@pytest.fixture(scope="module")
def s3():
    """An S3 endpoint; s3fs finds it the way a user's would, through botocore's environment
    (AWS_ENDPOINT_URL_S3 and credentials), which forked workers and Ray nodes started here inherit."""
    import logging

    import fsspec

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir(BUCKET)
        try:
            yield fs
        finally:
            server.stop()


def _corpus(path: Path) -> None:
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=40)) + list(
        iter_builtin("reasoning_gym", docs_per_family=3)
    )
    lines = [json.dumps({"id": d["id"], "text": d["text"], "url": d["url"]}) for d in docs]
    lines.insert(4, json.dumps({"id": "copy", "text": docs[1]["text"], "url": "u"}))  # an exact duplicate
    path.write_text("\n".join(lines) + "\n")


def _cfg(corpus: str, cache: Path | None, executor: str = "local", workers: int = 2, **kw) -> CurateConfig:
    cfg = CurateConfig(
        sources=[SourceConfig(type="jsonl", paths=[corpus])],
        workers=workers,
        tasks=3,
        executor=executor,
        work_cache_dir=str(cache) if cache else None,
        **kw,
    )
    cfg.recall.enabled = cfg.quality.enabled = cfg.decontam.enabled = (
        False  # driver-side training: not the point here
    )
    return cfg


def _kept(fs, folder: str) -> list[tuple[str, str, str]]:
    return sorted(
        (name.rsplit("/", 1)[-1], r["id"], r["text"])
        for name in fs.glob(f"{folder}/kept/*.jsonl.gz")
        for r in map(json.loads, gzip.decompress(fs.cat_file(name)).splitlines())
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The corpus and the kept set of a run on local paths."""
    import fsspec

    root = tmp_path_factory.mktemp("local")
    _corpus(root / "corpus.jsonl")
    summary = run_curate(_cfg(str(root / "corpus.jsonl"), root / "cache"), root / "out")
    kept = _kept(fsspec.filesystem("file"), str(root / "out"))
    assert kept and "copy" not in {i for _, i, _ in kept} and summary["select"]["dedup"]["removed"] >= 1
    return root / "corpus.jsonl", kept, summary


def test_work_and_output_on_s3_equal_a_local_run(s3, reference, tmp_path):
    corpus, kept, local = reference
    run = f"s3://{BUCKET}/local-executor"
    summary = run_curate(_cfg(str(corpus), tmp_path / "cache", work_dir=f"{run}/workfolder"), f"{run}/out")
    assert _kept(s3, f"{run}/out") == kept
    assert summary["totals"]["docs_kept"] == local["totals"]["docs_kept"]
    # the work files and the completion markers live in the bucket; the driver's cache is dropped
    assert (
        s3.exists(f"{run}/workfolder/dedup.json")
        and len(s3.ls(f"{run}/workfolder/logs/scan/completions")) == 3
    )
    assert len(s3.glob(f"{run}/workfolder/sigs/*.u32")) == 3 and s3.exists(f"{run}/out/summary.json")
    assert not list((tmp_path / "cache").glob("*/*"))


def test_killed_run_on_s3_resumes_from_another_node(s3, reference, tmp_path):
    """Killed once its first scan task completed; rerun with an empty cache (another node's view):
    the finished scan tasks are not redone and the kept set is the reference one."""
    corpus, kept, _ = reference
    run = f"s3://{BUCKET}/killed"
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from pathlib import Path\n"
        "from tests.curate.test_s3 import _cfg\n"
        "from infir.curate.pipeline import run_curate\n"
        "run_curate(_cfg(%r, Path(%r), workers=1), %r)\n"
    ) % (str(Path(__file__).resolve().parents[2]), str(corpus), str(tmp_path / "first"), f"{run}/out")
    completions = f"{run}/out/_work/logs/scan/completions"

    def completed() -> bool:
        s3.invalidate_cache()
        return s3.exists(completions) and bool(s3.ls(completions))

    kill_after_first_completion(script, completed, timeout=120)
    s3.invalidate_cache()
    done = sorted(p.rsplit("/", 1)[-1] for p in s3.ls(completions))
    assert 0 < len(done) < 3 and not s3.exists(f"{run}/out/summary.json"), done
    stamps = {r: s3.info(f"{run}/out/_work/scan/{r}.jsonl")["LastModified"] for r in done}
    time.sleep(1.1)  # S3 stamps have one-second resolution: a rewrite would show
    run_curate(_cfg(str(corpus), tmp_path / "second", workers=1), f"{run}/out")
    s3.invalidate_cache()
    assert {r: s3.info(f"{run}/out/_work/scan/{r}.jsonl")["LastModified"] for r in done} == stamps
    assert _kept(s3, f"{run}/out") == kept


@pytest.fixture()
def two_nodes(s3, tmp_path):
    """A head and a second node, started after the S3 environment is set, so their workers have
    it; each node has a cache folder of its own, as separate machines would."""
    import ray  # the dev extra installs it: a missing ray fails here rather than skipping
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    node = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
    nodes = Cluster(
        initialize_head=True,
        head_node_args=dict(
            node, include_dashboard=False, env_vars={"INFIR_CURATE_CACHE": str(tmp_path / "head")}
        ),
    )
    nodes.add_node(**node, env_vars={"INFIR_CURATE_CACHE": str(tmp_path / "second")})
    nodes.wait_for_nodes()
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_ray_on_two_nodes_with_everything_on_s3(s3, reference, two_nodes, tmp_path, monkeypatch):
    """No shared filesystem (`ray.shared_fs` false): input, work folder and output in the bucket."""
    from infir.curate.executors import alive_nodes

    corpus, kept, local = reference
    run = f"s3://{BUCKET}/ray"
    s3.put_file(str(corpus), f"{run}/corpus.jsonl")
    monkeypatch.setenv("RAY_ADDRESS", two_nodes.address)
    monkeypatch.setenv("INFIR_CURATE_CACHE", str(tmp_path / "driver"))
    cfg = _cfg(f"{run}/corpus.jsonl", None, executor="ray", ray=RayConfig(mem_per_cpu_gb=0.25))
    summary = run_curate(cfg, f"{run}/out")
    assert alive_nodes() == 2 and summary["totals"]["executor"] == "ray"
    # tasks ran on both nodes, each with its own cache: what one wrote, the other read from S3
    assert all(list((tmp_path / node).glob("*/scan/*.jsonl")) for node in ("head", "second"))
    assert _kept(s3, f"{run}/out") == kept
    assert summary["totals"]["docs_kept"] == local["totals"]["docs_kept"]
