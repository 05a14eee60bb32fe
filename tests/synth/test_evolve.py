"""Instruction evolution through an HTTP teacher: configured prompts, cleaning, rejections, seed pointers."""

from __future__ import annotations

from infir.synth.config import EvolveConfig, TeacherConfig
from infir.synth.evolve import clean_rewrite, evolve
from infir.synth.items import Item
from infir.synth.loopback import LoopbackServer
from infir.synth.teachers import OpenAITeacher


def seeds(n: int) -> list[Item]:
    return [
        Item(
            id=f"s:{i}",
            prompt=f"Tom has {i} apples and eats one. How many are left?",
            domain="math",
            source="s",
            seed_id=f"s:{i}",
            reference=str(i - 1),
            label="word problem",
        )
        for i in range(n)
    ]


def rewrite(body: dict) -> str:
    text = body["messages"][-1]["content"]
    problem = text.split("<<")[1].split(">>")[0]
    number = int(problem.split()[2])
    if number == 3:
        return problem  # unchanged
    if number == 4:
        return "I'm sorry, I cannot help with that."
    if number == 5:
        return "   "
    return f"**New problem:** {problem} Then he buys twice as many as he has left. How many now?"


def test_evolution_uses_the_configured_prompts_and_keeps_pointers():
    cfg = EvolveConfig(rounds=2, fraction=1.0, strategies={"deeper": "Make it deeper: <<{prompt}>>"})
    with LoopbackServer(rewrite) as server:
        teacher = OpenAITeacher(
            TeacherConfig(type="openai", base_url=server.url, model="m"), None, show_progress=False
        )
        evolved, counts = evolve(seeds(8), teacher, cfg)
        assert server.stats.answered == counts["requested"] == 8 + 5  # round 2 rewrites round 1's five
    assert counts["rejected"] == {"unchanged": 1, "refused": 1, "empty": 1}
    first = [e for e in evolved if len(e.evolution) == 1]
    second = [e for e in evolved if len(e.evolution) == 2]
    assert len(first) == 5 and len(second) == 5
    for e in second:
        parent = next(p for p in first if p.id == e.parent_id)
        assert e.seed_id == parent.seed_id and e.prompt.startswith(parent.prompt)
        assert e.reference is None and e.label == "word problem"
    assert not first[0].prompt.startswith("**New problem")


def test_fraction_picks_the_same_items_every_time():
    cfg = EvolveConfig(rounds=1, fraction=0.5, strategies={"deeper": "Deeper: <<{prompt}>>"})
    with LoopbackServer(rewrite) as server:
        teacher = OpenAITeacher(
            TeacherConfig(type="openai", base_url=server.url, model="m"), None, show_progress=False
        )
        one, _ = evolve(seeds(40), teacher, cfg, seed=1)
        two, _ = evolve(seeds(40), teacher, cfg, seed=1)
        other, _ = evolve(seeds(40), teacher, cfg, seed=2)
    assert [e.id for e in one] == [e.id for e in two] and 10 <= len(one) <= 30
    assert [e.id for e in one] != [e.id for e in other]


def test_clean_rewrite():
    assert clean_rewrite('Rewritten problem: "What is 2+2?"') == "What is 2+2?"
    assert clean_rewrite("```\nQuestion: x?\n```") == "x?"
    assert clean_rewrite("A plain problem.") == "A plain problem."
