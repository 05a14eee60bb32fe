"""Ports for processes the tests launch (torchrun stores, S3 endpoints)."""

import socket
import subprocess
from collections.abc import Callable


def free_port() -> int:
    """A port the kernel has just confirmed unused. A fixed or random pick can land on a port another
    test's process (Ray, a loopback server) or an outgoing connection already holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def retry_on_port_clash(launch: Callable[[int], subprocess.CompletedProcess], tries: int = 3):
    """Runs `launch(port)`; if the port was taken between `free_port` and the launcher's bind, runs it
    again on a fresh port. Any other failure is returned as it is."""
    for _ in range(tries - 1):
        done = launch(free_port())
        if done.returncode == 0 or "EADDRINUSE" not in (done.stderr or ""):
            return done
    return launch(free_port())
