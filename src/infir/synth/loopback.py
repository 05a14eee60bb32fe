"""An OpenAI-compatible chat-completions server on 127.0.0.1, for tests, benchmarks and dry runs.

    with LoopbackServer(lambda request: "The answer is 4.", latency=0.01) as server:
        teacher_cfg = TeacherConfig(type="openai", base_url=server.url, model="test")
        ...
        server.stats.answered, server.stats.max_in_flight, server.stats.by_key

It answers `POST /v1/chat/completions` with `respond(request_body)` (a string, or (text, finish_reason)),
and `POST /v1/score` with `score(request_body)`. It can demand an API key, inject failures
(`faults(n, body)` returns a status to send instead of an answer for the n-th request), simulate
generation time (`latency`), and stop answering after `hold_after` answers (requests then wait until
`release()` and are dropped unanswered), which is how a test kills a client at a known point. It counts
requests per canonical body, so a test can prove nothing was asked twice. It binds loopback only.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def body_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class ServerStats:
    received: int = 0
    answered: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_key: Counter = field(default_factory=Counter)  # answered requests per canonical body
    in_flight: int = 0
    max_in_flight: int = 0
    held: int = 0  # requests that arrived after hold_after and were dropped unanswered
    authorization: set = field(default_factory=set)  # Authorization headers seen
    arrival_times: list = field(default_factory=list)

    @property
    def repeated(self) -> int:
        """Answers given for a request body that had been answered before."""
        return sum(n - 1 for n in self.by_key.values() if n > 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of concurrent connections must not be refused


class LoopbackServer:
    def __init__(
        self,
        respond: Callable[[dict], str | tuple[str, str]],
        *,
        score: Callable[[dict], float] | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        faults: Callable[[int, dict], int | None] | None = None,
        retry_after: float | None = 0.0,
        hold_after: int | None = None,
    ):
        self.respond, self.score, self.api_key, self.latency = respond, score, api_key, latency
        self.faults, self.retry_after, self.hold_after = faults, retry_after, hold_after
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.hold_reached = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def release(self) -> None:
        """Let held requests finish (unanswered) and answer new ones again."""
        self.hold_after = None
        self._release.set()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- request handling ----------------------------------------------------------------------
    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: without this, 40 ms stalls

            def log_message(self, *args) -> None:  # quiet: tests read stats, not logs
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.stats.received += 1
                    n = server.stats.received
                    server.stats.arrival_times.append(time.monotonic())
                    server.stats.authorization.add(self.headers.get("Authorization"))
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                if (
                    server.api_key is not None
                    and self.headers.get("Authorization") != f"Bearer {server.api_key}"
                ):
                    server._count_status(401)
                    self._send(401, {"error": {"message": "invalid API key"}})
                    return
                status = server.faults(n, body) if server.faults is not None else None
                if status:
                    server._count_status(status)
                    headers = (
                        {"Retry-After": str(server.retry_after)} if server.retry_after is not None else {}
                    )
                    self._send(status, {"error": {"message": f"injected {status}"}}, headers)
                    return
                server._enter()
                try:
                    if server._should_hold():
                        server._release.wait()
                        self.close_connection = True  # dropped: the client never gets an answer
                        return
                    if server.latency:
                        time.sleep(server.latency)
                    if self.path.rstrip("/").endswith("/chat/completions"):
                        reply = server._completion(body)
                    elif self.path.rstrip("/").endswith("/score") and server.score is not None:
                        reply = {"score": float(server.score(body))}
                    else:
                        self._send(404, {"error": {"message": f"no route {self.path}"}})
                        return
                    server._answered(body)  # counted before the client can read it, so tests see it
                    self._send(200, reply)
                finally:
                    server._leave()

        return Handler

    def _count_status(self, status: int) -> None:
        with self._lock:
            self.stats.statuses[status] += 1

    def _enter(self) -> None:
        with self._lock:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    def _should_hold(self) -> bool:
        with self._lock:
            if self.hold_after is None or self.stats.answered < self.hold_after:
                return False
            self.stats.held += 1
            self.hold_reached.set()
            return True

    def _answered(self, body: dict) -> None:
        with self._lock:
            self.stats.answered += 1
            self.stats.statuses[200] += 1
            self.stats.by_key[body_key(body)] += 1

    def _completion(self, body: dict) -> dict:
        out = self.respond(body)
        text, finish = (out, "stop") if isinstance(out, str) else out
        return {
            "id": f"cmpl-{self.stats.received}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": len(text.split()),
                "total_tokens": len(text.split()),
            },
        }


_CALC = re.compile(r"<<[^>]*>>")


class ReferenceTeacher:
    """A test teacher for the loopback server: answers known problems from their worked solutions, and a
    hash-chosen `wrong_fraction` of requests wrongly (the final number shifted), in varied final-answer
    formats ("The answer is N.", a box, "#### N", "$1,234 dollars", "**Final answer:** 1,234"). It
    remembers, per (question, reply), whether the reply was wrong: the ground truth for measuring
    verification.

        teacher = ReferenceTeacher({question: (steps, "18")}, wrong_fraction=0.3)
        LoopbackServer(teacher)
    """

    FORMATS = (
        "The answer is {v}.",
        "The final answer is $\\boxed{{{v}}}$.",
        "#### {v}",
        "The answer is ${c} dollars.",
        "**Final answer:** {c}",
    )

    def __init__(
        self,
        solutions: dict[str, tuple[str, str]],
        wrong_fraction: float = 0.3,
        seed: int = 0,
        strip: tuple[str, ...] = (),
    ):
        self.solutions = {" ".join(q.split()): v for q, v in solutions.items()}
        self.wrong_fraction, self.seed, self.strip = wrong_fraction, seed, strip
        self.truth: dict[tuple[str, str], bool] = {}  # (question, reply) -> the reply is correct
        self.by_request: dict[tuple[str, object], bool] = {}  # (question, request seed) -> answered correctly
        self._lock = threading.Lock()

    @classmethod
    def from_gsm8k(cls, records: list[dict], **kw) -> "ReferenceTeacher":
        """Worked steps from GSM8K's `answer` (calculator notes removed), final answer after `####`."""
        solutions = {}
        for r in records:
            steps, final = r["answer"].rsplit("####", 1)
            solutions[r["question"]] = (_CALC.sub("", steps).strip(), final.strip().replace(",", ""))
        return cls(solutions, **kw)

    def question_of(self, body: dict) -> str:
        text = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
        for suffix in self.strip:
            text = text.replace(suffix, "")
        return " ".join(text.split())

    def __call__(self, body: dict) -> str:
        question = self.question_of(body)
        if question not in self.solutions:
            return "I do not know."
        steps, final = self.solutions[question]
        salt = f"{self.seed}|{question}|{body.get('seed')}"
        wrong = _fraction(salt + "|wrong") < self.wrong_fraction
        value = Decimal(final)
        if wrong:
            shift = 1 + int(_fraction(salt + "|shift") * float(max(3, abs(value) // 4)))
            value = value + shift if _fraction(salt + "|sign") < 0.5 else value - shift
        fmt = self.FORMATS[int(_fraction(salt + "|format") * len(self.FORMATS))]
        text = f"{steps}\n{fmt.format(v=value, c=f'{value:,}')}"
        with self._lock:
            self.truth[(question, text)] = not wrong
            self.by_request[(question, body.get("seed"))] = not wrong
        return text


def _fraction(salt: str) -> float:
    return int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "big") / 2**64
