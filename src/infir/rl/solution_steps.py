"""Partial credit for following a worked solution: the share of its steps a completion reproduces.

A small model often lands on the right final number by luck: many of its right answers rest on a wrong
step, and few of the arithmetic steps it writes hold (README, "The tiny recipe", has the measurements).
An outcome reward alone then reinforces wrong steps as often as right ones, and most groups (all wrong)
carry no signal at all. Generated problems come with the reference
solution they were verified against; the longest run of its steps that a completion writes down
first, word for word, is a dense reward that is grounded in the problem: the first step can only
match if the operands were copied and the fact is right, so writing true but unrelated arithmetic
("0 + 0 = 0", which a reward for any true equation invites) earns nothing.

Steps are the sentences of the solution (split after a full stop), less the closing
"The answer is N." sentence, compared with runs of whitespace collapsed.
"""

from __future__ import annotations

import re

from infir.data.reasoning import ANSWER_PREFIX

_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def solution_steps(text: str) -> list[str]:
    """The step sentences of a worked solution, without the closing answer sentence."""
    sentences = (" ".join(s.split()) for s in _SENTENCE_END.split(text.strip()))
    return [s for s in sentences if s and not s.startswith(ANSWER_PREFIX)]


def reference_prefix_share(reference: str, output: str) -> tuple[int, int]:
    """(reference steps, how many of them the output writes first, in order); (0, 0) without steps."""
    expected, written = solution_steps(reference), solution_steps(output)
    matched = 0
    for want, got in zip(expected, written):
        if want != got:
            break
        matched += 1
    return len(expected), matched


_SENTENCE_STOP = re.compile(r"\.(?=\s|$)")


def step_rewards(reference: str, pieces: list[str], correct: bool) -> list[tuple[int, float]]:
    """Process rewards of one completion: (index of the token that ends the step, reward) per step.

    `pieces` are the completion's tokens as text (their concatenation is the completion). Steps are
    its sentences, judged in order against the reference solution's: a matching step earns 1; the
    first step that does not match earns 0 and ends the list (what follows was written from a wrong
    state: no credit, no blame). The answer sentence earns `correct` when every reference step came
    before it, and its step runs to the last token, so stopping after the answer is credited too.
    """
    if not pieces:
        return []
    ends, total = [], 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    text = "".join(pieces)
    cuts = [m.end() for m in _SENTENCE_STOP.finditer(text)]
    if text[cuts[-1] if cuts else 0 :].strip():
        cuts.append(len(text))  # an unfinished last sentence is a step too

    def token_at(char_end: int) -> int:
        return next(i for i, e in enumerate(ends) if e >= char_end)

    expected, out, start = solution_steps(reference), [], 0
    for cut in cuts:
        sentence = " ".join(text[start:cut].split())
        start = cut
        if not sentence:
            continue
        if sentence.startswith(ANSWER_PREFIX):
            reached = len(out) == len(expected)
            out.append((len(pieces) - 1, float(correct) if reached else 0.0))
            return out
        if len(out) < len(expected) and sentence == expected[len(out)]:
            out.append((token_at(cut), 1.0))
            continue
        out.append((token_at(cut), 0.0))
        return out
    return out or [(len(pieces) - 1, 0.0)]  # nothing judged (no sentence, no answer): one failed step
