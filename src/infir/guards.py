"""How an `infir` command fails and stops: one line per error, tracebacks kept aside, signals obeyed.

    run_command(dispatch, argv)      # what `infir.cli.main` does around the subcommand table

- An error is one line on stderr (`error: ...`), user text printed as written (never as rich markup,
  so `[line 36]` and `[/x]` survive). `--debug` (anywhere on the line, or INFIR_DEBUG=1) prints the
  traceback too; a failed stage also keeps it in `<run-dir>/<stage>/error.log`.
- A full disk is reported as such, whichever library hit it (torch's "unexpected pos", safetensors'
  "StorageFull", OSError ENOSPC).
- SIGTERM interrupts like Ctrl-C (exit 143; Ctrl-C 130), and an interrupted command then leaves at
  once: libraries caught mid-work (a datatrove pool, HTTP threads) can block a normal interpreter exit
  for minutes. A SIGTERM that some library swallows still ends the command after `TERM_GRACE`.
- Forked children die with the command (`infir.procs`), so a SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
DEBUG = False  # set from `--debug` by run_command
# Seconds a SIGTERM'd command may take to unwind before it is ended without cleanup.
TERM_GRACE = 10.0


class CliError(Exception):
    """A failure already explained in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup runs (caches closed, locks dropped)."""


def error(message: object) -> None:
    console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)


def say(message: object) -> None:
    console.print(str(message), markup=False, highlight=False, soft_wrap=True)


def disk_full(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        text = str(exc)
        # torch.save's zip writer and safetensors report a full disk in their own words.
        if any(
            s in text
            for s in ("unexpected pos", "No space left on device", "StorageFull", "file write failed")
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def stage_failed(name: str, stage_dir: Path, exc: Exception) -> CliError:
    """The one line for a failed stage; its traceback goes to `<stage_dir>/error.log`."""
    log_path = stage_dir / "error.log"
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(traceback.format_exception(exc)))
        where = f" (traceback: {log_path})"
    except OSError:
        where = ""
    if DEBUG:
        traceback.print_exception(exc)
    if disk_full(exc):
        return CliError(f"stage {name!r} failed: no space left on device: {stage_dir}{where}", 1)
    detail = str(exc) or type(exc).__name__
    if not isinstance(exc, (OSError, ValueError)):  # their messages say what they are; others may not
        detail = f"{type(exc).__name__}: {detail}"
    first, *rest = detail.splitlines() or [detail]
    more = " ..." if rest else ""
    return CliError(f"stage {name!r} failed: {first}{more}{where}", 1)


# ---- signals ------------------------------------------------------------------------------------
_state: dict = {"main_pid": None, "terminated": False, "fork_hook": False, "timer": None}


def _on_sigterm(signum, frame):
    if os.getpid() != _state["main_pid"]:
        # A forked worker (datatrove's pool, a job) that kept our handler: die the default way, as its
        # parent expects when it terminates it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not _state["terminated"]:
        _state["terminated"] = True
        # The exception can be swallowed (raised inside a finalizer, or caught by library code); the
        # flag and this timer make sure the command still ends, and soon.
        timer = _state["timer"] = threading.Timer(TERM_GRACE, _hard_exit, args=(143,))
        timer.daemon = True
        timer.start()
    raise Terminated()


def _hard_exit(code: int) -> None:
    try:
        error("interrupted (SIGTERM); stopped without cleanup after a grace period")
        sys.stderr.flush()
    finally:
        os._exit(code)


def _default_sigterm_in_child() -> None:
    if _state["main_pid"] is None:
        return  # no infir command is running in the parent: its handlers are its own
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # forked from a thread that is not the child's main thread: nothing to undo
        pass


@contextmanager
def process_guards():
    """For the duration of a command: SIGTERM interrupts like Ctrl-C, and forked children die with us.
    Restored afterwards, so calling `main` in-process (tests) leaves the caller as it was."""
    # Under torchrun SIGTERM is the launcher's way to stop a rank at once; it keeps its default there.
    under_torchrun = "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or under_torchrun or signal.getsignal(signal.SIGTERM) is _on_sigterm:
        yield
        return
    from infir.procs import children_die_with_parent, tie_children

    _state.update(main_pid=os.getpid(), terminated=False)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    if not _state["fork_hook"]:
        # Children keep the default: pools terminate their workers with SIGTERM and expect them gone.
        os.register_at_fork(after_in_child=_default_sigterm_in_child)
        _state["fork_hook"] = True
    tied = children_die_with_parent()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if _state["timer"] is not None:
            _state["timer"].cancel()  # an in-process caller outlives the command: no exit on its behalf
        _state.update(main_pid=None, timer=None)
        if tied:
            tie_children(False)


def _guarded(dispatch: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        code = dispatch(argv)
        if _state["terminated"]:
            raise Terminated()  # raised where something swallowed it: the command still stops as asked
        return code
    except CliError as exc:
        error(exc)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`infir ... | head`): nothing to report, as for any Unix filter.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        error(f"interrupted ({name}); rerun the same command to resume")
        return 143 if name == "SIGTERM" else 130
    except Exception as exc:  # noqa: BLE001 - no raw traceback for a user unless asked
        if DEBUG:
            raise
        if disk_full(exc):
            error(f"no space left on device: {getattr(exc, 'filename', None) or exc}")
            return 1
        error(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


def run_command(dispatch: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run `dispatch(argv)` as a command; `argv=None` means this process IS the command (sys.argv)."""
    global DEBUG
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    DEBUG = "--debug" in argv or os.environ.get("INFIR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    with process_guards():
        code = _guarded(dispatch, argv)
        if code in (130, 143) and from_command_line:
            # Leave now, while forked children are still tied to us (see the module doc).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
