"""A response cache keyed by request, so a rerun or a resumed run asks a teacher nothing twice.

The key is the sha256 of the canonical JSON of what defines an answer: the teacher's namespace (type
and model, not its URL: the same model behind another address answers the same) and the request body
(messages, sampling settings, seed). Headers, and so API keys, never take part. Entries live in SQLite
(WAL journal): each reply is committed as it arrives, so a killed run keeps every reply it received,
lookups stay on disk at millions of entries, and several threads may write.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable


def request_key(namespace: str, request: Any) -> str:
    canonical = json.dumps(
        {"ns": namespace, "request": request}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut), at a fraction of FULL's cost.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, namespace TEXT, "
            "request TEXT, response TEXT, created REAL)"
        )
        self.hits = self.misses = self.writes = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
                chunk = keys[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update((k, json.loads(v)) for k, v in rows)
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        return found

    def put(self, key: str, namespace: str, request: Any, response: Any) -> None:
        self.put_many([(key, namespace, request, response)])

    def put_many(self, entries: Iterable[tuple[str, str, Any, Any]]) -> None:
        rows = [
            (k, ns, json.dumps(req, ensure_ascii=False), json.dumps(resp, ensure_ascii=False), time.time())
            for k, ns, req, resp in entries
        ]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            self.writes += len(rows)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}
