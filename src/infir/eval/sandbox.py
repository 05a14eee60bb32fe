"""Run untrusted Python (model-generated code) in a sandboxed child process.

    result = run_python(program, Limits(wall_seconds=10))
    result.passed, result.status, result.stderr, result.isolation

Model output is hostile input. Each program runs in a fresh interpreter in its own namespaces (see
`sandbox_boot.py` for the layers) under CPU-time, wall-time, memory, process-count, open-file and
file-size limits, with no network and a throwaway working directory, and the evaluator never trusts it
with a pipe it must read to the end: output past `output_bytes` ends the run. Whatever the program does,
`run_python` returns a `SandboxResult`; it does not raise for the program's failures.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from infir.config_base import Section

BOOT = Path(__file__).with_name("sandbox_boot.py")
Isolation = Literal["auto", "namespaces", "fallback"]


class Limits(Section):
    cpu_seconds: float = 10.0
    wall_seconds: float = 20.0
    memory_mb: int = 1024  # address space; Python needs ~30 MB to start
    max_processes: int = 32
    open_files: int = 64
    file_size_mb: int = 16  # largest file the program may write
    workdir_mb: int = 64  # size of the throwaway working directory (a tmpfs, with namespaces)
    output_bytes: int = 1 << 20  # stdout + stderr kept; more ends the run


@dataclass
class SandboxResult:
    status: str  # passed | failed | timeout | memory | output_limit | file_size | sandbox_error
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def summary(self) -> str:
        if self.passed:
            return "passed"
        last = self.stderr.strip().splitlines()[-1:] if self.stderr.strip() else []
        return f"{self.status}: {last[0][:200]}" if last else self.status

    def to_dict(self) -> dict:
        return asdict(self)


_SIGNAL_STATUS = {signal.SIGXCPU: "timeout", signal.SIGKILL: "killed", signal.SIGXFSZ: "file_size",
                  signal.SIGSEGV: "crashed"}


def _status(returncode: int, stderr: str) -> str:
    if returncode == 0:
        return "passed"
    if returncode > 128 and (returncode - 128) in _SIGNAL_STATUS:
        return _SIGNAL_STATUS[signal.Signals(returncode - 128)]
    if "MemoryError" in stderr:
        return "memory"
    return "failed"


def _stop(proc: subprocess.Popen) -> None:
    """End a run: SIGTERM asks the boot process to kill and reap everything below it; SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=5)


def _kill_uid(uid: int) -> None:
    """Without a pid namespace, a program's processes are those of the uid only it runs as.

    A helper that becomes that uid and calls kill(-1, SIGKILL) reaches all of them at once (the kernel
    walks the process list under a lock, so a fork bomb cannot outrun it) and nothing else, because a
    process without capabilities may only signal its own uid.
    """
    code = f"import os\nos.setgroups([])\nos.setresgid({uid}, {uid}, {uid})\nos.setresuid({uid}, {uid}, {uid})\n" \
           "try:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\n"
    subprocess.run([sys.executable, "-I", "-S", "-c", code], check=False, timeout=30)


def run_python(source: str, limits: Limits | None = None, isolation: Isolation = "auto") -> SandboxResult:
    """Run `source` as `__main__` in a sandbox and report how it ended."""
    limits = limits or Limits()
    host_dir = Path(tempfile.mkdtemp(prefix="infir-sandbox-"))
    start = time.perf_counter()
    try:
        request = host_dir / "request.json"
        report_r, report_w = os.pipe()
        request.write_text(json.dumps({"source": source, "workdir": str(host_dir), "isolation": isolation,
                                       "limits": limits.model_dump(), "report_fd": report_w}))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", str(BOOT), str(request)], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=host_dir, start_new_session=True,
                pass_fds=(report_w,), env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, close_fds=True)
        finally:
            os.close(report_w)
        out, err, report, over = _collect(proc, report_r, limits, start)
        returncode = proc.returncode
        uid = report.get("uid")
        if not report.get("pidns") and report.get("root_at_start") and isinstance(uid, int) and uid > 0:
            _kill_uid(uid)  # a safety net: the boot process has already done this unless it was killed
        seconds = time.perf_counter() - start
        stderr = err.decode("utf-8", "replace")
        if over == "output":
            status = "output_limit"
        elif over == "wall":
            status = "timeout"
        elif returncode == 125 and "error" in report:
            status = "sandbox_error"
            stderr = report["error"] + "\n" + stderr
        else:
            status = _status(returncode, stderr)
        return SandboxResult(status, returncode, out.decode("utf-8", "replace"), stderr, round(seconds, 4), report)
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def _collect(proc: subprocess.Popen, report_fd: int, limits: Limits, start: float):
    """Read stdout, stderr and the isolation report until exit, the wall-time limit or too much output."""
    chunks = {"out": bytearray(), "err": bytearray(), "report": bytearray()}
    total, over = 0, None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    sel.register(report_fd, selectors.EVENT_READ, "report")
    deadline = start + limits.wall_seconds
    try:
        while sel.get_map():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                over = "wall"
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                if key.data != "report":
                    total += len(data)
                    if total > limits.output_bytes:
                        over = "output"
                        break
                chunks[key.data] += data
            if over:
                break
    finally:
        sel.close()
        if not over:
            try:
                proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                over = "wall"
        _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        os.close(report_fd)
    try:
        report = json.loads(bytes(chunks["report"]) or b"{}")
    except json.JSONDecodeError:
        report = {"error": "unreadable isolation report"}
    return bytes(chunks["out"]), bytes(chunks["err"]), report, over
