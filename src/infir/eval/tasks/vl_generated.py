"""The tiny VL curriculum's held-out tasks: VQA, OCR, GUI actions and math with images.

vl_vqa   shapes and bar charts: counting, colour, shape, position, chart values and comparisons;
         exact match, with the chance level of each question's answer space for reference
vl_position  shapes: which of the 9 grid cells a named shape sits in (chance 1/9)
vl_ocr   rendered text: exact match and character error rate
vl_gui   app screens: click/type/scroll action accuracy (type matches and the point lies in the box)
vl_math  figures with numbers solved step by step: the number after "The answer is"
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from infir.data.reasoning import extract_answer
from infir.eval.answers import normalize_number
from infir.eval.registry import register
from infir.eval.tasks.vl_base import GeneratedVLTask
from infir.eval.vl_scoring import action_correct, character_error_rate, exact_match, parse_action

# How many answers each question kind allows: 1/size is the accuracy of guessing.
_ANSWER_SPACE = {
    "count": 4,
    "count_shape": 5,
    "color": 6,
    "shape": 3,
    "position": 9,
    "chart_value": 9,
    "chart_compare": 2,
}


@register
class VQA(GeneratedVLTask):
    name = "vl_vqa"
    generators = ("shapes", "charts")
    kinds = (
        "count",
        "count_shape",
        "color",
        "shape",
        "position",
        "chart_value",
        "chart_max",
        "chart_min",
        "chart_compare",
    )
    default_max_new_tokens = 12
    report_columns = {"chance": "chance"}

    def evaluate(self, doc: dict, output: str) -> dict:
        return {
            "correct": exact_match(output, doc["answer"]),
            "extracted": output.strip(),
            "kind": doc["kind"],
            "generator": doc["generator"],
            "chance": 1 / answer_space(doc),
        }

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        metrics.update(self.by_kind(verdicts))
        metrics.update(self.by_kind(verdicts, "generator"))
        metrics["chance"] = sum(v["chance"] for v in verdicts) / len(verdicts) if verdicts else 0.0
        return metrics


@register
class Position(VQA):
    """Spatial questions only: vl_vqa asks one about roughly one image in six, too few to tell a model
    that locates shapes from one at chance."""

    name = "vl_position"
    generators = ("shapes",)
    kinds = ("position",)


def answer_space(doc: dict) -> int:
    if doc["kind"] in ("chart_max", "chart_min"):
        return len(doc["spec"]["values"])
    return _ANSWER_SPACE[doc["kind"]]


@register
class OCR(GeneratedVLTask):
    name = "vl_ocr"
    generators = ("text",)
    kinds = ("ocr",)
    default_max_new_tokens = 16
    primary_metric = "exact_match"
    # Exact match with the answers shuffled across the images (the no-reading level), and the error rate.
    report_columns = {"shuffled": "exact_match_shuffled", "cer": "cer"}

    def evaluate(self, doc: dict, output: str) -> dict:
        text = output.strip()
        return {
            "correct": text == doc["answer"],
            "extracted": text,
            "reference": doc["answer"],
            "cer": character_error_rate(text, doc["answer"]),
        }

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        n = len(verdicts)
        metrics = {"exact_match": sum(v["correct"] for v in verdicts) / n if n else 0.0}
        metrics["cer"] = sum(v["cer"] for v in verdicts) / n if n else 0.0
        # Exact match expected if the same answers were shuffled across the images: what a model that
        # learned the vocabulary but does not read scores (a small closed vocabulary makes it large).
        said, truth = Counter(v["extracted"] for v in verdicts), Counter(v["reference"] for v in verdicts)
        metrics["exact_match_shuffled"] = sum(said[w] * truth[w] for w in truth) / n**2 if n else 0.0
        return metrics


@register
class GUIActions(GeneratedVLTask):
    name = "vl_gui"
    generators = ("gui",)
    kinds = ("click", "type", "scroll")
    default_max_new_tokens = 24

    def evaluate(self, doc: dict, output: str) -> dict:
        predicted = parse_action(output)
        target = {k: doc[k] for k in ("action", "box", "text", "direction") if k in doc}
        return {
            "correct": action_correct(predicted, target),
            "extracted": predicted,
            "action": doc["action"],
            "ref": doc.get("ref"),
            "parsed": predicted is not None,
        }

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        metrics.update(self.by_kind(verdicts, "action"))
        metrics.update(
            {f"{k.replace('accuracy_', 'accuracy_by_')}": v for k, v in self.by_kind(verdicts, "ref").items()}
        )
        metrics["parsed"] = sum(v["parsed"] for v in verdicts) / len(verdicts) if verdicts else 0.0
        return metrics


@register
class MathWithImages(GeneratedVLTask):
    name = "vl_math"
    generators = ("math",)
    kinds = ("math",)
    default_max_new_tokens = 48

    def reference_output(self, doc: dict) -> str:
        return doc["answer"]  # the worked solution

    def evaluate(self, doc: dict, output: str) -> dict:
        extracted = extract_answer(output)
        gold = doc["final"]
        ok = extracted is not None and normalize_number(extracted) == normalize_number(gold)
        return {"correct": ok, "extracted": extracted, "figure": doc["spec"]["figure"]}

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        metrics.update(self.by_kind(verdicts, "figure"))
        return metrics
