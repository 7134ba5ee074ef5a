"""The embedded chat model and embedder: real weights, offline."""

from __future__ import annotations

import pytest
import torch

from llmsafety.models import (
    ChatModel,
    convert_gguf_to_safetensors,
    generate,
    load_chat_model,
    load_embedder,
    resolve_dtype,
    smollm2_gguf_path,
)


@pytest.fixture(scope="module")
def smollm2() -> ChatModel:
    return load_chat_model()


def test_dtype_rule():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype='float8'"):
        resolve_dtype("float8")


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(ValueError, match="Could not load chat model 'no-such-org/no-such-model'"):
        load_chat_model("no-such-org/no-such-model")
    with pytest.raises(ValueError, match="name_or_path=''"):
        load_chat_model("")


@pytest.mark.slow
def test_embedded_smollm2_replies_coherently(smollm2):
    assert smollm2.device.type == "cpu" and smollm2.dtype == torch.float32
    assert 130e6 < sum(p.numel() for p in smollm2.model.parameters()) < 140e6
    (reply,) = generate(smollm2, ["What is the capital of France? Answer in one word."],
                        max_new_tokens=12, temperature=0.0, progress=False)
    assert "paris" in reply.lower()


@pytest.mark.slow
def test_batched_generation_is_seeded_and_ordered(smollm2):
    prompts = [f"Name one animal that starts with the letter {chr(65 + i % 26)}." for i in range(32)]
    a = generate(smollm2, prompts, max_new_tokens=8, batch_size=16, seed=3, progress=False)
    b = generate(smollm2, prompts, max_new_tokens=8, batch_size=16, seed=3, progress=False)
    c = generate(smollm2, prompts, max_new_tokens=8, batch_size=16, seed=4, progress=False)
    assert len(a) == 32 and all(isinstance(x, str) and x for x in a)
    assert a == b
    assert a != c
    # order follows the input even though batches are sorted by length
    greedy_one = generate(smollm2, [prompts[5]], max_new_tokens=8, temperature=0.0, progress=False)
    greedy_all = generate(smollm2, prompts[:8], max_new_tokens=8, temperature=0.0, batch_size=8, progress=False)
    assert greedy_all[5] == greedy_one[0]


@pytest.mark.slow
def test_several_replies_per_prompt(smollm2):
    out = generate(smollm2, ["Say hi.", "Say bye."], max_new_tokens=6, num_return_sequences=3, progress=False)
    assert len(out) == 2 and all(len(group) == 3 for group in out)


def test_generate_rejects_bad_input(smollm2):
    with pytest.raises(ValueError, match="prompts is empty"):
        generate(smollm2, [])
    with pytest.raises(TypeError, match="not one string"):
        generate(smollm2, "hello")
    with pytest.raises(ValueError, match=r"prompts\[1\] is an empty string"):
        generate(smollm2, ["hi", "  "])
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        generate(smollm2, ["hi"], max_new_tokens=0)


@pytest.mark.slow
def test_gguf_conversion_gives_identical_logits(tmp_path, smollm2):
    """The cached checkpoint computes what the GGUF model computes (the conversion loses nothing)."""
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf_path()
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = smollm2.tokenizer("Safety first: ", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = quantized(ids).logits
        got = smollm2.model(ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    with pytest.raises(FileNotFoundError):
        convert_gguf_to_safetensors(tmp_path / "missing.gguf", tmp_path / "out")


@pytest.mark.slow
def test_embedder_offline():
    embedder = load_embedder()
    emb = embedder.encode(["a cat sat on the mat", "a kitten sat on a rug", "tax law in 1990"],
                          normalize_embeddings=True)
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    with pytest.raises(ValueError, match="Could not load embedder 'no-such/embedder'"):
        load_embedder("no-such/embedder")
