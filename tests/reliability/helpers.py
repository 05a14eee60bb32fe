"""What the reliability tests share: running the CLI as a user would, and servers that misbehave."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TRACEBACK = "Traceback (most recent call last)"

# The tiny recipe shrunk to seconds per stage (the e2e suite's sizes, smaller still).
TINY = [
    "curate.sources.0.kwargs.max_docs=20",
    "curate.sources.1.kwargs.max_docs=10",
    "curate.sources.2.kwargs.docs_per_family=6",
    "tokenizer.vocab_size=400",
]


def env(**extra: str) -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [out.get("PYTHONPATH")])])
    out.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return out


def infir_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "infir", *args]


def infir(*args: str, cwd: Path, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        infir_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env(**extra_env)
    )


def spawn(*args: str, cwd: Path, new_session: bool = False, **extra_env: str) -> subprocess.Popen:
    # A suite started in the background (`nohup pytest &`) ignores SIGINT, and an ignored signal stays
    # ignored across exec: the child would never see the Ctrl-C the interrupt tests send. It is started
    # while this process has a handler instead, so it gets the default a user's shell gives it.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            infir_cmd(*args),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(**extra_env),
            start_new_session=new_session,
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class SilentServer:
    """Accepts TCP connections on loopback and never answers: a teacher that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc), zombies excluded."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def error_block(stderr: str) -> str:
    """The error as printed: its first line (`error: ...` or `infir X: error: ...`) and the indented
    lines that detail it (one per invalid key). Asserts it is there and short."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    starts = [
        i
        for i, ln in enumerate(lines)
        if ln.startswith("error:") or ": error:" in ln or ln.startswith("infir synth:")
    ]
    assert starts, f"no error line on stderr: {stderr[-1500:]}"
    block = [lines[starts[-1]]]
    block += [ln for ln in lines[starts[-1] + 1 :] if ln.startswith("  ")]
    assert len(block) <= 4, block
    return "\n".join(block)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (zombies excluded), whoever their parent is now."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), to tell it from a later process with its pid;
    None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def one_step_pretrain(hidden: int) -> list[str]:
    """Overrides for a one-step pretraining of a one-layer model `hidden` wide."""
    return [
        "model.preset=null",
        f"model.hidden_size={hidden}",
        "model.num_layers=1",
        "model.num_heads=2",
        f"model.intermediate_size={2 * hidden}",
        "model.max_position_embeddings=128",
        "pretrain.max_steps=1",
        "pretrain.global_batch_size=2",
        "pretrain.micro_batch_size=2",
        "pretrain.seq_len=64",
        "pretrain.save_every=0",
    ]
