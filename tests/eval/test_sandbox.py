"""Hostile programs in the sandbox: each is contained (host and evaluator untouched) and reported as failed.

Every test runs under both isolation modes: "namespaces" (mount/net/pid namespaces, read-only root, private
tmpfs) and "fallback" (no namespaces: Landlock, a seccomp socket filter, rlimits and a sandbox-only uid).
The isolation report of each run names the layers that were active; the first tests pin them down.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pytest

from infir.eval.sandbox import Limits, run_python

FAST = Limits(cpu_seconds=2, wall_seconds=4, memory_mb=512, max_processes=16, file_size_mb=4,
              output_bytes=256 * 1024)
MODES = ["namespaces", "fallback"]


def _namespaces_work() -> bool:
    return run_python("pass", FAST, isolation="namespaces").status != "sandbox_error"


needs_linux = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox uses Linux namespaces/rlimits")
pytestmark = needs_linux


@pytest.fixture(params=MODES)
def mode(request):
    if request.param == "namespaces" and not _namespaces_work():
        pytest.skip("namespaces are not available on this machine (unprivileged container?)")
    return request.param


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_isolation_report_names_active_layers():
    plain = run_python("print(6 * 7)", FAST)
    assert plain.passed and plain.stdout.strip() == "42"
    iso = plain.isolation
    print("isolation (auto):", iso)  # shown with -s: documents which layers ran on this machine
    if iso.get("netns"):
        assert iso["pidns"] and iso["mountns"] and iso["readonly_root"]
    else:
        assert iso["seccomp_sockets"], "without a network namespace the socket filter must be on"
    assert iso["rlimits"] and iso["no_new_privs"] and iso["uid"] != 0
    fallback = run_python("print('ok')", FAST, isolation="fallback").isolation
    print("isolation (fallback):", fallback)
    assert not fallback["netns"] and fallback["seccomp_sockets"] and fallback["uid"] != 0


def test_ordinary_program_and_failures_are_told_apart(mode):
    ok = run_python("import math, hashlib, json\nprint(math.factorial(5))\nopen('scratch.txt', 'w').write('x')",
                    FAST, mode)
    assert ok.passed, ok.stderr
    assert ok.stdout == "120\n"
    bad = run_python("assert 1 + 1 == 3, 'arithmetic'", FAST, mode)
    assert bad.status == "failed" and "AssertionError: arithmetic" in bad.stderr
    assert run_python("import sys; sys.exit(3)", FAST, mode).returncode == 3


def test_fork_bomb_is_contained(mode):
    program = ("import os\n"
               "while True:\n"
               "    try:\n"
               "        os.fork()\n"
               "    except OSError:\n"
               "        pass\n")
    t0 = time.perf_counter()
    result = run_python(program, FAST, mode)
    assert not result.passed and result.status in ("timeout", "killed")
    assert time.perf_counter() - t0 < FAST.wall_seconds + 5
    time.sleep(0.2)
    assert _processes_of(result.isolation["uid"]) == [], "fork bomb processes outlived the sandbox"


def test_memory_bomb_is_contained(mode):
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n", FAST, mode)
    assert result.status == "memory", result.summary()
    huge = run_python("x = bytearray(64 << 30)", FAST, mode)
    assert huge.status == "memory"


def test_infinite_loops_hit_cpu_and_wall_limits(mode):
    busy = run_python("while True:\n    pass\n", FAST, mode)
    assert busy.status == "timeout" and busy.seconds < FAST.wall_seconds + 1
    sleepy = run_python("import time\ntime.sleep(60)\n", FAST, mode)
    assert sleepy.status == "timeout" and sleepy.seconds < FAST.wall_seconds + 2


def test_network_connection_to_local_listener_is_blocked(mode):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept_until(deadline):
        while time.time() < deadline:
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except socket.timeout:
                continue

    thread = threading.Thread(target=accept_until, args=(time.time() + FAST.wall_seconds + 1,))
    thread.start()
    try:
        program = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                   "s.sendall(b'leak')\nprint('connected')\n")
        result = run_python(program, FAST, mode)
        udp = run_python("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                         f".sendto(b'x', ('127.0.0.1', {port}))\n", FAST, mode)
    finally:
        thread.join()
        server.close()
    assert not result.passed and "connected" not in result.stdout
    assert accepted == [], "the sandboxed program reached the host's listener"
    if mode == "fallback":
        assert not udp.passed  # the seccomp filter refuses every non-UNIX socket
    else:
        assert "Network is unreachable" in result.stderr or "refused" in result.stderr.lower()


def test_writing_outside_its_directory_is_refused(mode, tmp_path):
    target = tmp_path / "escaped.txt"
    home_target = os.path.expanduser("~/infir-sandbox-escape.txt")
    program = (f"import os\nopen({str(target)!r}, 'w').write('escaped')\n")
    result = run_python(program, FAST, mode)
    assert not result.passed and not target.exists()
    result = run_python(f"open({home_target!r}, 'w').write('escaped')\n", FAST, mode)
    assert not result.passed and not os.path.exists(home_target)
    # Its own directory is writable and is thrown away afterwards.
    keep = run_python("import os\nopen('note.txt', 'w').write('x')\nprint(os.getcwd())\n", FAST, mode)
    assert keep.passed and not os.path.exists(os.path.join(keep.stdout.strip(), "note.txt"))


def test_killing_its_parent_and_the_evaluator_is_refused(mode):
    me = os.getpid()
    program = ("import os, signal\n"
               "for target in (os.getppid(), " + str(me) + "):\n"
               "    try:\n"
               "        os.kill(target, signal.SIGKILL)\n"
               "    except OSError as e:\n"
               "        print('refused', target, e.errno)\n"
               "try:\n"
               "    os.killpg(os.getpgid(0), signal.SIGKILL)\n"
               "except OSError as e:\n"
               "    print('refused group', e.errno)\n")
    result = run_python(program, FAST, mode)
    assert _alive(me)
    assert not result.passed  # it killed at most its own process group
    again = run_python("print('still working')", FAST, mode)
    assert again.passed and again.stdout == "still working\n"


def test_gigabytes_of_output_end_the_run(mode):
    t0 = time.perf_counter()
    flood = run_python("import sys\nchunk = 'x' * (1 << 20)\nwhile True:\n    sys.stdout.write(chunk)\n", FAST, mode)
    assert flood.status == "output_limit" and len(flood.stdout) <= FAST.output_bytes
    err_flood = run_python("import os\nwhile True:\n    os.write(2, b'e' * 65536)\n", FAST, mode)
    assert err_flood.status == "output_limit"
    big_file = run_python("f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))\n", FAST, mode)
    assert big_file.status in ("file_size", "failed") and not big_file.passed
    assert time.perf_counter() - t0 < 3 * FAST.wall_seconds
