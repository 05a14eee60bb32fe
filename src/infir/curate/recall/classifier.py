"""fastText helpers: one text normalisation for every classifier, deterministic training.

The normalisation keeps what separates code, math and prose: indentation and line breaks become
tokens (`<ind>`, `<nl>`), punctuation and LaTeX commands are tokens of their own, numbers
collapse to their digit count. Training runs on one thread with a fixed seed, so a rerun
(after a kill, for example) gives the same model and the same decisions.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

_TOKEN = re.compile(r"\n[ \t]+|\n|\\[A-Za-z]+|[^\W\d_]+|_+|\d+|[^\s\w]")


_MIN_ROWS_SEEN = 10_000
_CHARS_PER_TOKEN = 8  # generous: the text cut before tokenizing always holds enough tokens


_SPECIAL_START = frozenset("\n0123456789")


def _special(tok: str) -> str:
    if tok[0] == "\n":
        return "<ind>" if len(tok) > 1 else "<nl>"
    return f"<d{min(len(tok), 4)}>"


def _tokens(text: str, max_tokens: int, out: list[str]) -> None:
    # the regex does the scanning in C; Python only touches line breaks and numbers
    out += [
        _special(tok) if tok[0] in _SPECIAL_START else tok
        for tok in _TOKEN.findall(text.lower())[:max_tokens]
    ]


def normalize(text: str, max_tokens: int, windows: int = 1) -> str:
    """At most `max_tokens` tokens of the text. With `windows` > 1, a long document is read in
    that many evenly spaced windows (separated by `<cut>`), not only from its start: a module
    that opens with a long docstring, a problem that opens with a diagram, is judged on its body too."""
    span = max_tokens * _CHARS_PER_TOKEN
    out: list[str] = []
    if windows <= 1 or len(text) <= span:
        _tokens(text[:span], max_tokens, out)
        return " ".join(out)
    per_window = max_tokens // windows
    step = (len(text) - span // windows) / (windows - 1)
    for w in range(windows):
        start = int(w * step)
        if w:
            out.append("<cut>")
            start = text.find("\n", start, start + 200) + 1 or start  # start on a line
        _tokens(text[start : start + span // windows], per_window, out)
    return " ".join(out)


def train_supervised(
    lines: list[str],
    *,
    epoch: int,
    dim: int,
    lr: float,
    word_ngrams: int,
    seed: int,
    workdir: Path | None = None,
):
    """`lines` are '__label__X text' rows; returns a fastText model. Small sets get more epochs:
    the learning rate decays to zero over the run, and a few hundred rows seen five times leave
    the model near its initial guess."""
    import fasttext

    epoch = max(epoch, min(100, math.ceil(_MIN_ROWS_SEEN / max(len(lines), 1))))

    fd, path = tempfile.mkstemp(suffix=".txt", dir=workdir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return fasttext.train_supervised(
            input=path,
            epoch=epoch,
            dim=dim,
            lr=lr,
            wordNgrams=word_ngrams,
            minCount=1,
            bucket=200_000,
            thread=1,
            seed=seed,
            verbose=0,
        )
    finally:
        os.unlink(path)


def distribution(model, text: str) -> dict[str, float]:
    """All label probabilities of one normalised text. Calls the binding's `f.predict` directly:
    the Python wrapper's batch predict returns wrong probabilities with numpy 2."""
    return {label.removeprefix("__label__"): prob for prob, label in model.f.predict(text, -1, 0.0, "strict")}


def label_probabilities(model, texts: list[str], label: str) -> list[float]:
    """Probability of `label` for each text (texts are already normalised, one line each)."""
    return [distribution(model, t).get(label, 0.0) for t in texts]
