"""Real-scale VL benchmarks in their published formats: MMMU, ScreenSpot and AndroidWorld-style episodes.

MMMU (`MMMU/MMMU`, one config per subject, split `validation`): fields `id`, `question`, `options`
(a list, or its Python repr as the hub stores it), `answer` (a letter, or free text for open
questions), `question_type` ("multiple-choice" | "open"), `image_1` ... `image_7`. `<image k>` in the
question or options marks where image k goes; images are passed in that order.

ScreenSpot: the hub's `rootsautomation/ScreenSpot` rows (`image`, `bbox` = [x1, y1, x2, y2] as
fractions of the screen, `instruction`, `data_type`, `data_source`), or SeeClick's original JSON
(`img_filename`, `bbox` = [x, y, w, h] in pixels, images in `image_folder`). A prediction is right
when its `click(x, y)` (x, y in [0, 1000]) falls inside the target box.

AndroidWorld-style episodes (the trajectory logs of AndroidWorld / AndroidControl agents): one record per
episode, `goal` and `steps`, each step a `screenshot` (image bytes record or a path relative to the file)
and the `action` taken: {"action_type": "click" | "long_press", "x", "y"} with coordinates in [0, 1000]
of the screen (and optionally the target element's `bbox` [x0, y0, x1, y1] in the same units),
{"action_type": "type", "text"}, {"action_type": "scroll", "direction"}. Every step is one document: the
goal, the actions so far and the current screen; the answer is the next action, scored like the GUI task
(a click counts inside the element's box, or within `click_tolerance` of the logged point without one).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

from infir.eval.answers import normalize_number
from infir.eval.loading import DataError
from infir.eval.registry import register
from infir.eval.tasks.vl_base import VLTask
from infir.model.vlm import IMAGE_TOKEN
from infir.eval.vl_scoring import action_correct, choice_letter, normalize_answer, parse_action

_IMAGE_REF = re.compile(r"<image (\d+)>")
LETTERS = "ABCDEFGHI"


@register
class MMMU(VLTask):
    name = "vl_mmmu"
    hf_path = "MMMU/MMMU"
    eval_split = "validation"
    required_fields = ("id", "question", "options", "answer")
    default_max_new_tokens = 16

    def __init__(self, data_path=None, *, subjects: Sequence[str] = ("Math",), **kw):
        super().__init__(data_path, **kw)
        self.subjects = [subjects] if isinstance(subjects, str) else list(subjects)

    def load_records(self, split: str, required: bool = True) -> list[dict] | None:
        if self.data_path is not None:  # a local dump holds whatever subjects it holds
            return super().load_records(split, required)
        records = []
        for subject in self.subjects:
            self.hf_config = subject
            records += super().load_records(split, required) or []
        return records

    def prepare(self, records: list[dict]) -> list[dict]:
        docs = []
        for i, r in enumerate(records):
            options = r["options"]
            if isinstance(options, str):
                try:
                    options = ast.literal_eval(options)
                except (ValueError, SyntaxError) as exc:
                    raise DataError(
                        f"{self.source}: record {i} ({r.get('id')}): options are not a list: {options[:60]!r}"
                    ) from exc
            options = [str(o) for o in options]
            mc = r.get("question_type", "multiple-choice") == "multiple-choice" and bool(options)
            text = r["question"]
            if mc:
                text += "\n" + "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(options))
                text += "\nAnswer with the option's letter from the given choices directly."
            else:
                text += "\nAnswer the question using a single word or phrase."
            order = [int(k) for k in _IMAGE_REF.findall(text)]
            present = [k for k in range(1, 8) if r.get(f"image_{k}") is not None]
            unreferenced = [k for k in present if k not in order]
            prompt = IMAGE_TOKEN * len(unreferenced) + ("\n" if unreferenced else "")
            prompt += _IMAGE_REF.sub(
                lambda m, present=present: IMAGE_TOKEN if int(m.group(1)) in present else m.group(0), text
            )
            images = [self._image(r[f"image_{k}"]) for k in unreferenced + [k for k in order if k in present]]
            docs.append(
                {
                    "id": r["id"],
                    "prompt": prompt,
                    "question": r["question"],
                    "images": images,
                    "answer": str(r["answer"]).strip(),
                    "options": options,
                    "multiple_choice": mc,
                    "subject": r.get("subfield") or r.get("subject"),
                }
            )
        return docs

    def _image(self, value):
        return _beside_data(self.data_path, value)

    def chat_user_message(self, doc: dict) -> str:
        return doc["prompt"]  # markers already sit where the images are referenced

    def evaluate(self, doc: dict, output: str) -> dict:
        if doc["multiple_choice"]:
            letter = choice_letter(output, LETTERS[: len(doc["options"])])
            return {"correct": letter == doc["answer"].upper(), "extracted": letter}
        a, b = normalize_number(output.strip()), normalize_number(doc["answer"])
        ok = (
            a == b
            if a is not None and b is not None
            else normalize_answer(output) == normalize_answer(doc["answer"])
        )
        return {"correct": ok, "extracted": output.strip()}


@register
class ScreenSpot(VLTask):
    name = "vl_screenspot"
    hf_path = "rootsautomation/ScreenSpot"
    eval_split = "test"
    required_fields = ("bbox", "instruction")
    default_max_new_tokens = 32

    def __init__(self, data_path=None, *, image_folder: str | None = None, **kw):
        super().__init__(data_path, **kw)
        self.image_folder = image_folder

    def _image_root(self) -> Path:
        if self.image_folder is not None:
            return Path(self.image_folder)
        base = Path(str(self.data_path))
        base = base if base.is_dir() else base.parent
        return base / "images" if (base / "images").is_dir() else base

    def prepare(self, records: list[dict]) -> list[dict]:
        from infir.model.vlm_inputs import open_image

        docs = []
        for i, r in enumerate(records):
            where = f"{self.source}: record {i}"
            if "img_filename" in r:  # SeeClick JSON: pixel [x, y, w, h]
                path = self._image_root() / r["img_filename"]
                if not path.is_file():
                    raise DataError(f"{where}: image {path} not found (set image_folder)")
                width, height = open_image(path, where).size
                x, y, w, h = r["bbox"]
                box, image = [x / width, y / height, (x + w) / width, (y + h) / height], path
            else:
                if r.get("image") is None:
                    raise DataError(f"{where}: no `image` field and no `img_filename`")
                image, box = r["image"], [float(v) for v in r["bbox"]]
                if max(box) > 1:  # pixel corners
                    width, height = open_image(image, where).size
                    box = [box[0] / width, box[1] / height, box[2] / width, box[3] / height]
            if len(box) != 4 or box[0] > box[2] or box[1] > box[3]:
                raise DataError(f"{where}: bbox {r['bbox']} is not a box")
            docs.append(
                {
                    "images": [image],
                    "question": r["instruction"],
                    "answer": None,
                    "box": [round(v * 1000, 1) for v in box],
                    "data_type": r.get("data_type"),
                    "data_source": r.get("data_source"),
                }
            )
        return docs

    def reference_output(self, doc: dict) -> str:
        x0, y0, x1, y1 = doc["box"]
        return f"click({round((x0 + x1) / 2)}, {round((y0 + y1) / 2)})"

    def doc_to_target(self, doc: dict) -> str:
        return self.reference_output(doc)

    def evaluate(self, doc: dict, output: str) -> dict:
        predicted = parse_action(output)
        return {
            "correct": action_correct(predicted, {"action": "click", "box": doc["box"]}),
            "extracted": predicted,
            "data_type": doc.get("data_type"),
        }

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        for kind in sorted({v["data_type"] for v in verdicts if v.get("data_type")}):
            mine = [v for v in verdicts if v.get("data_type") == kind]
            metrics[f"accuracy_{kind}"] = sum(v["correct"] for v in mine) / len(mine)
        return metrics


ACTION_TYPES = ("click", "long_press", "type", "scroll")


@register
class AndroidEpisodes(VLTask):
    name = "vl_android_episodes"
    hf_path = None  # episodes are logged by one's own agent runs: pass data_path
    eval_split = "test"
    required_fields = ("goal", "steps")
    default_max_new_tokens = 32

    def __init__(self, data_path=None, *, click_tolerance: float = 70.0, history: int = 5, **kw):
        super().__init__(data_path, **kw)
        self.click_tolerance, self.history = click_tolerance, history

    def prepare(self, records: list[dict]) -> list[dict]:
        docs = []
        for i, episode in enumerate(records):
            where = f"{self.source}: episode {episode.get('episode_id', i)}"
            steps = episode["steps"]
            if not isinstance(steps, list) or not steps:
                raise DataError(f"{where}: `steps` must be a non-empty list")
            done: list[str] = []
            for j, step in enumerate(steps):
                at = f"{where}, steps[{j}]"
                if not isinstance(step, dict) or step.get("screenshot") is None:
                    raise DataError(f"{at}: no `screenshot`")
                action = self._action(step.get("action"), f"{at}.action")
                history = "; ".join(done[-self.history :]) or "none"
                question = (
                    f"Goal: {episode['goal']}\nPrevious actions: {history}\n"
                    "What is the next action on this screen?"
                )
                docs.append(
                    {
                        "images": [self._image(step["screenshot"])],
                        "question": question,
                        "answer": _write_action(action),
                        "target": action,
                        "episode": episode.get("episode_id", i),
                        "step": j,
                    }
                )
                done.append(_write_action(action))
        return docs

    def _action(self, action, at: str) -> dict:
        if not isinstance(action, dict):
            raise DataError(f"{at}: missing or not an object")
        kind = action.get("action_type")
        if kind not in ACTION_TYPES:
            raise DataError(f"{at}.action_type: {kind!r} is not one of {list(ACTION_TYPES)}")
        if kind in ("click", "long_press"):
            for field in ("x", "y"):
                value = action.get(field)
                if not isinstance(value, (int, float)) or not 0 <= value <= 1000:
                    raise DataError(f"{at}.{field}: {value!r} is not a coordinate in [0, 1000]")
            box = action.get("bbox")
            if box is None:
                t = self.click_tolerance
                box = [action["x"] - t, action["y"] - t, action["x"] + t, action["y"] + t]
            elif len(box) != 4 or box[0] > box[2] or box[1] > box[3] or min(box) < 0 or max(box) > 1000:
                raise DataError(f"{at}.bbox: {box!r} is not a box in [0, 1000]")
            return {"action": "click", "x": action["x"], "y": action["y"], "box": [float(v) for v in box]}
        if kind == "type":
            if not isinstance(action.get("text"), str):
                raise DataError(f"{at}.text: a type action needs the text typed")
            return {"action": "type", "text": action["text"]}
        if action.get("direction") not in ("up", "down", "left", "right"):
            raise DataError(f"{at}.direction: {action.get('direction')!r} is not up, down, left or right")
        return {"action": "scroll", "direction": action["direction"]}

    def _image(self, value):
        return _beside_data(self.data_path, value)

    def reference_output(self, doc: dict) -> str:
        return doc["answer"]

    def evaluate(self, doc: dict, output: str) -> dict:
        predicted = parse_action(output)
        target = {k: v for k, v in doc["target"].items() if k in ("action", "box", "text", "direction")}
        return {
            "correct": action_correct(predicted, target),
            "extracted": predicted,
            "action": target["action"],
        }

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        for kind in sorted({v["action"] for v in verdicts}):
            mine = [v for v in verdicts if v["action"] == kind]
            metrics[f"accuracy_{kind}"] = sum(v["correct"] for v in mine) / len(mine)
        return metrics


def _beside_data(data_path, value):
    """An image as a record holds it: hub rows hold bytes; a local dump may hold paths relative to its file."""
    if isinstance(value, str) and data_path is not None and not Path(value).is_absolute():
        base = Path(str(data_path))
        return (base if base.is_dir() else base.parent) / value
    return value


def _write_action(action: dict) -> str:
    """An action the way infir's GUI data writes it (and `parse_action` reads it)."""
    if action["action"] == "click":
        return f"click({round(action['x'])}, {round(action['y'])})"
    if action["action"] == "type":
        return 'type("' + action["text"].replace('"', '\\"') + '")'
    return f"scroll({action['direction']})"
