import torch

from infir.model.vlm import IMAGE_TOKEN
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo
from infir.train.trainer import Trainer
from infir.model.vlm_inputs import ImagePreparer, pad_to_square
from infir.vl.batches import VLBatches, encode_all_vl
from infir.vl.data import VLConversation, from_generated
from infir.data.images import generate

from .conftest import make_vlm


def _conversations(n: int, seed: int = 0) -> list[VLConversation]:
    import random

    rng = random.Random(seed)
    images = generate("shapes", n, seed, size=32)
    return [from_generated(g, None, 1 + i % 3, rng) for i, g in enumerate(images)]


def _batches(model, processor, convs, seq_len=160, batch=4, packing=True):
    examples, dropped = encode_all_vl(
        processor.tokenizer, convs, model.config.image_token_id, model.config.image_seq_length, seq_len
    )
    assert not dropped
    data = VLBatches(
        examples,
        seq_len,
        batch,
        seed=1,
        pad_id=processor.tokenizer.pad_token_id,
        prepare_images=ImagePreparer(processor.image_processor),
        packing=packing,
    )
    return examples, data


def test_packed_rows_give_each_conversation_its_own_logits_and_images(vl_tokenizer):
    model, processor = make_vlm(vl_tokenizer, init_std=0.2)
    model.eval()
    convs = _conversations(8)
    examples, data = _batches(model, processor, convs)
    batch = data.batch_at(0)
    assert batch["pixel_values"].shape[0] == batch["image_rows"].shape[0]
    assert (
        int((batch["input_ids"] == model.config.image_token_id).sum())
        == batch["pixel_values"].shape[0] * model.config.image_seq_length
    )
    prepare = ImagePreparer(processor.image_processor)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"],
            pixel_values=batch["pixel_values"],
            position_ids=batch["position_ids"],
            use_cache=False,
        ).logits
        checked = 0
        for row in range(batch["input_ids"].size(0)):
            start = 0
            for i in data.rows[data._row_index(row)]:
                ex = examples[i]
                alone = model(
                    input_ids=torch.tensor([ex.input_ids]),
                    pixel_values=prepare(list(ex.images)),
                    use_cache=False,
                ).logits[0]
                span = packed[row, start : start + len(ex.input_ids)]
                assert torch.allclose(span, alone, atol=1e-4), (row, i)
                assert batch["labels"][row, start : start + len(ex.input_ids)].tolist() == ex.labels
                start += len(ex.input_ids)
                checked += 1
    assert checked > batch["input_ids"].size(0)  # rows really hold several conversations


def test_micro_batches_take_the_images_of_their_rows(vl_tokenizer, tmp_path):
    model, processor = make_vlm(vl_tokenizer, init_std=0.2)
    _, data = _batches(model, processor, _conversations(12))
    batch = data.batch_at(0)
    cfg = TrainConfig(max_steps=1, global_batch_size=4, micro_batch_size=1, seq_len=160, precision="fp32")
    trainer = Trainer(cfg, model, None, data, tmp_path, DistInfo(), log=lambda *_: None)
    micros = trainer._split(batch)
    assert len(micros) == 4
    images = 0
    for r, micro in enumerate(micros):
        mine = batch["pixel_values"][batch["image_rows"] == r]
        assert torch.equal(micro["pixel_values"], mine)
        assert (
            int((micro["input_ids"] == model.config.image_token_id).sum())
            == mine.shape[0] * model.config.image_seq_length
        )
        images += mine.shape[0]
    assert images == batch["pixel_values"].shape[0]
    with torch.no_grad():

        def loss_sum(micro):
            return trainer.objective.loss_sum(trainer._forward(micro), micro)

        whole = loss_sum({k: v for k, v in batch.items() if k != "image_rows"})
        parts = sum(loss_sum(m) for m in micros)
    assert torch.allclose(whole, parts, rtol=1e-4)


def test_rows_without_images_and_text_only_batches(vl_tokenizer, tmp_path):
    model, processor = make_vlm(vl_tokenizer)
    convs = (
        _conversations(3)
        + [
            VLConversation(
                [], [{"role": "user", "content": "Say red."}, {"role": "assistant", "content": "red"}]
            )
        ]
        * 3
    )
    _, data = _batches(model, processor, convs, batch=6, packing=False)
    batch = data.batch_at(0)
    cfg = TrainConfig(max_steps=1, global_batch_size=6, micro_batch_size=1, seq_len=160, precision="fp32")
    trainer = Trainer(cfg, model, None, data, tmp_path, DistInfo(), log=lambda *_: None)
    micros = trainer._split(batch)
    assert sum("pixel_values" in m for m in micros) == 3
    for m in micros:
        trainer.objective.loss_sum(trainer._forward(m), m)  # text-only micro-batches run without pixel values
    _, text_only = _batches(model, processor, convs[3:], batch=2)
    assert "pixel_values" not in text_only.batch_at(0)


def test_resume_gives_the_same_next_batch(vl_tokenizer):
    model, processor = make_vlm(vl_tokenizer)
    _, data = _batches(model, processor, _conversations(10))
    it = iter(data)
    next(it)
    state = data.state_dict()
    expected = next(it)
    _, fresh = _batches(model, processor, _conversations(10))
    fresh.load_state_dict(state)
    got = next(iter(fresh))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_pad_to_square_centres_the_image():
    from PIL import Image

    img = Image.new("RGB", (40, 20), (255, 0, 0))
    square = pad_to_square(img, (127, 127, 127))
    assert square.size == (40, 40)
    assert square.getpixel((20, 20)) == (255, 0, 0) and square.getpixel((20, 2)) == (127, 127, 127)


def test_marker_text_is_a_single_special_token(vl_tokenizer):
    model, processor = make_vlm(vl_tokenizer)
    ids = processor.tokenizer.encode(f"a{IMAGE_TOKEN}b", add_special_tokens=False)
    assert ids.count(model.config.image_token_id) == 1
