"""Progress and throughput on the console (rich): one line per stage, then the funnel as a table."""

from __future__ import annotations

import contextlib
import logging
import time

from rich.console import Console
from rich.table import Table

log = logging.getLogger("infir.curate")


class Reporter:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def stage(self, name: str, what: str):
        t0 = time.perf_counter()
        with self.console.status(f"[bold]curate {name}[/]: {what}"):
            yield lambda: time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        self.console.log(f"curate {name}: done in {seconds:.1f}s")
        log.info("curate %s: %.1fs", name, seconds)

    def funnel(self, summary: dict) -> None:
        table = Table(title="infir curate: funnel")
        for col in ("step", "docs in", "docs out", "dropped", "tokens out", "seconds", "docs/s"):
            table.add_column(col, justify="right" if col != "step" else "left")
        for s in summary["steps"]:
            rate = s["docs_in"] / s["seconds"] if s["seconds"] > 0 else float("inf")
            table.add_row(
                s["name"],
                str(s["docs_in"]),
                str(s["docs_out"]),
                str(sum(s["dropped"].values())),
                str(s["tokens_out"]),
                f"{s['seconds']:.2f}",
                f"{rate:,.0f}",
            )
        self.console.print(table)
        t = summary["totals"]
        self.console.log(
            f"kept {t['docs_kept']}/{t['docs_read']} docs, {t['tokens_kept']:,} tokens, "
            f"{t['seconds']:.1f}s ({t['docs_read'] / max(t['seconds'], 1e-9):,.0f} docs/s)"
        )
