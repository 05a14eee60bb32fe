"""JSON over HTTP for teachers and scorers: concurrency, retries with backoff, rate limiting, secrets kept.

    client = JsonClient(endpoint_config)
    results = client.post_many("/chat/completions", payloads, on_result=store)   # dicts or HttpError

Standard library only (http.client and threads): waiting on a socket releases the GIL, so a pool of
`concurrency` threads, each holding its own keep-alive connection, keeps that many requests in flight
without an extra dependency. Retryable failures (408, 409, 425, 429, 5xx, dropped connections, timeouts)
are retried `max_retries` times after exponentially growing, jittered pauses, honouring a server's
Retry-After; others fail at once. Opening a connection has its own short timeout (`connect_timeout`); a
reply may take up to `timeout` between bytes; and a batch in which nothing has succeeded for
`give_up_after` seconds stops, so a server that accepts and never answers costs at most that long. Ctrl-C
(or SIGTERM, turned into the same exception by the CLI) stops a batch within a moment: the waiting
sockets are shut down under the worker threads, nothing queued is sent, and every reply received so far
has already been handed to `on_result` (the cache). The API key is read from the environment variable the
config names, sent only in the Authorization header, and scrubbed from every error message.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from infir.synth.config import EndpointConfig

log = logging.getLogger("infir.synth")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# A wrong key, a wrong model name or a wrong URL: every other request would fail the same way.
FATAL_STATUS = frozenset({401, 403, 404})
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, TimeoutError)


class HttpError(RuntimeError):
    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status, self.retryable = status, retryable

    @property
    def reason(self) -> str:
        return f"http_{self.status}" if self.status else "connection"


class _ConnectTimeouts:
    """An HTTP(S) connection that connects within `timeout` and then reads with `read_timeout`."""

    read_timeout: float | None = None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock.settimeout(self.read_timeout)  # type: ignore[attr-defined]


class _HTTPConnection(_ConnectTimeouts, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectTimeouts, http.client.HTTPSConnection):
    pass


class SecretError(ValueError):
    """The environment variable that should hold an API key is not set."""


def read_api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise SecretError(
            f"environment variable {env_name} (api_key_env) is not set; export the API key "
            "there (the config holds only the variable's name)"
        )
    return key


class RateLimiter:
    """Spaces request starts `1 / rate` seconds apart across all threads (a token bucket of depth 1)."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class ClientStats:
    requests: int = 0  # HTTP attempts, retries included
    succeeded: int = 0
    retries: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, reason: str | None = None) -> None:
        with self._lock:
            if reason is not None:
                self.failed[reason] = self.failed.get(reason, 0) + 1
            else:
                setattr(self, name, getattr(self, name) + 1)

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "retries": self.retries,
            "failed": dict(self.failed),
        }


class JsonClient:
    def __init__(self, cfg: EndpointConfig, *, sleep: Callable[[float], None] = time.sleep):
        if not cfg.base_url:
            raise ValueError("an HTTP endpoint needs `base_url`")
        url = urlsplit(cfg.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url {cfg.base_url!r} is not an http(s) URL")
        self.cfg = cfg
        self.https = url.scheme == "https"
        self.host, self.port = url.hostname, url.port
        self.prefix = url.path.rstrip("/")
        self.where = f"{url.scheme}://{url.netloc}{self.prefix}"  # for messages: never holds the key
        self._key = read_api_key(cfg.api_key_env)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "infir-synth",
        }
        if self._key:
            self._headers["Authorization"] = f"Bearer {self._key}"
        self._local = threading.local()
        self.limiter = RateLimiter(cfg.requests_per_second)
        self.stats = ClientStats()
        # Once set (interrupt, or the batch gave up) nothing more is sent and backoff pauses end at once.
        self._stop = threading.Event()
        self._sleep = self._stop.wait if sleep is time.sleep else sleep
        self._open: set[http.client.HTTPConnection] = set()
        self._open_lock = threading.Lock()
        self._last_success = time.monotonic()

    def __repr__(self) -> str:  # never shows headers
        return f"JsonClient({self.where}, concurrency={self.cfg.concurrency})"

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # ---- one request ---------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = _HTTPSConnection if self.https else _HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.cfg.connect_timeout)
            conn.read_timeout = self.cfg.timeout
            with self._open_lock:
                self._open.add(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._open_lock:
                self._open.discard(conn)

    def abort(self) -> None:
        """Stop: no new request starts, and every request waiting on a socket fails now."""
        self._stop.set()
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    # shutdown (not close) wakes a thread blocked in recv on this socket, safely.
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def budget(self) -> str:
        """The limits that bound how long a failing endpoint is tried, for error messages."""
        c = self.cfg
        return (
            f"connect timeout {c.connect_timeout:g} s, read timeout {c.timeout:g} s, {c.max_retries} "
            f"retries, giving up after {c.give_up_after:g} s without a successful reply"
        )

    def _attempt(self, path: str, body: bytes) -> tuple[dict, None] | tuple[None, HttpError]:
        self.limiter.acquire()
        if self._stop.is_set():
            return None, HttpError(f"POST {self.where}{path}: stopped before sending")
        self.stats.add("requests")
        try:
            conn = self._connection()
            conn.request("POST", self.prefix + path, body=body, headers=self._headers)
            resp = conn.getresponse()
            data = resp.read()
            retry_after = resp.getheader("Retry-After")
            if resp.getheader("Connection", "").lower() == "close":
                self._drop_connection()
        except _TRANSPORT_ERRORS as exc:
            self._drop_connection()
            err = HttpError(
                f"POST {self.where}{path}: {type(exc).__name__}: {self.redact(str(exc))}", retryable=True
            )
            return None, err
        if resp.status == 200:
            try:
                return json.loads(data), None
            except json.JSONDecodeError:
                return None, HttpError(
                    f"POST {self.where}{path}: the reply is not JSON: "
                    f"{self.redact(data[:200].decode('utf-8', 'replace'))!r}",
                    200,
                    True,
                )
        snippet = self.redact(data[:300].decode("utf-8", "replace"))
        hint = (
            " (check the API key in the environment variable named by api_key_env)"
            if resp.status in (401, 403)
            else ""
        )
        err = HttpError(
            f"POST {self.where}{path}: HTTP {resp.status}{hint}: {snippet}",
            resp.status,
            resp.status in RETRYABLE_STATUS,
        )
        err.retry_after = _seconds(retry_after)  # type: ignore[attr-defined]
        return None, err

    def post(self, path: str, payload: Any) -> dict:
        """POST JSON, retrying what can be retried; raises HttpError once retries are spent."""
        body = json.dumps(payload).encode()
        for attempt in range(self.cfg.max_retries + 1):
            result, err = self._attempt(path, body)
            if err is None:
                self.stats.add("succeeded")
                self._last_success = time.monotonic()
                return result  # type: ignore[return-value]
            if not err.retryable or attempt == self.cfg.max_retries or self._stop.is_set():
                self.stats.add("failed", err.reason)
                raise err
            self.stats.add("retries")
            self._sleep(self._backoff(attempt, getattr(err, "retry_after", None)))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self.cfg.max_backoff_seconds
        if retry_after is not None:
            return min(cap, retry_after)
        # Full jitter on the upper half keeps many clients that failed together from retrying together.
        return min(cap, self.cfg.backoff_seconds * 2**attempt) * random.uniform(0.5, 1.0)

    # ---- many requests -------------------------------------------------------------------------
    def post_many(
        self,
        path: str,
        payloads: Iterable[Any],
        on_result: Callable[[int, dict | HttpError], None] | None = None,
    ) -> list[dict | HttpError]:
        """Results in input order; a request that failed for good gives its HttpError in its place.

        `on_result(i, result)` runs in the worker thread right when a reply arrives (a cache stores it
        there, so a kill loses only replies still in flight). At most a few times `concurrency` requests
        are queued at once, so millions of payloads do not sit in memory as futures.

        A misconfigured endpoint stops the batch instead of failing every request after its retries: an
        HTTP 401, 403 or 404, `abort_after` failures in a row with no success, or no success for
        `give_up_after` seconds, raise HttpError. KeyboardInterrupt (Ctrl-C, or SIGTERM via the CLI)
        aborts the requests in flight and propagates at once.
        """
        results: dict[int, dict | HttpError] = {}
        streak = {"failures": 0}
        fatal: list[tuple[HttpError, int]] = []  # the error that stopped the batch, the streak then
        abort_after = max(8, 2 * self.cfg.concurrency)

        def one(i: int, payload: Any) -> None:
            if fatal or self._stop.is_set():
                return  # the batch is being abandoned: do not send what is still queued
            try:
                out: dict | HttpError = self.post(path, payload)
            except HttpError as err:
                out = err
            if self._stop.is_set() and isinstance(out, HttpError):
                return  # aborted under our feet: not a reply, and not a failure of the endpoint
            with self.stats._lock:
                streak["failures"] = streak["failures"] + 1 if isinstance(out, HttpError) else 0
                if isinstance(out, HttpError) and (
                    out.status in FATAL_STATUS or streak["failures"] >= abort_after
                ):
                    fatal.append((out, streak["failures"]))
            if on_result is not None:
                on_result(i, out)
            results[i] = out

        def gave_up() -> bool:
            idle = time.monotonic() - max(self._last_success, started)
            if idle >= self.cfg.give_up_after and not fatal:
                fatal.append((HttpError(f"no request to {self.where}{path} succeeded for {idle:.0f} s"), 0))
                self.abort()
            return bool(fatal)

        def drain(futures: set, until_below: int) -> set:
            while len(futures) > until_below:
                done, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()  # re-raise a bug in on_result here, not silently
                if gave_up() and until_below:
                    break
            return futures

        started = time.monotonic()
        window = 4 * self.cfg.concurrency
        pool = ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="infir-http")
        try:
            pending: set = set()
            for i, payload in enumerate(payloads):
                if fatal:
                    break
                pending.add(pool.submit(one, i, payload))
                if len(pending) >= window:
                    pending = drain(pending, window - 1)
            drain(pending, 0)
        except BaseException:
            # Ctrl-C or a bug: stop sending, wake the threads blocked on sockets, do not wait for them.
            self.abort()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if fatal:
            first, count = fatal[0]
            why = "" if first.status in FATAL_STATUS or not count else f"{count} requests in a row failed; "
            raise HttpError(f"stopped: {why}{first} ({self.budget})", first.status)
        return [results[i] for i in range(len(results))]


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
