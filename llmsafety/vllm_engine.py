"""vLLM as an optional generation engine for the Target's replies and the evaluation (GPU users).

``DARTConfig.generation_engine = "vllm"`` makes a run's Target replies (to the Red LLM's attacks,
the extra samples of the uncertainty selector, the evaluations) come from vLLM instead of
:func:`llmsafety.models.generate`. Same contract: chat-formatted prompts in, one reply string per
prompt (or ``num_return_sequences`` of them) out, input order kept, seeded. A tuned Target is
served as its base model plus the iteration's LoRA adapter (vLLM's ``LoRARequest``), so nothing
is merged or copied after a Target update: the next request names the new adapter.

The Red LLM's GRPO rollouts use TRL's own vLLM integration instead (``red_vllm_mode``: TRL's
``use_vllm`` with ``vllm_mode="colocate"``, or ``"server"`` against ``trl vllm-serve``).

vLLM is not a dependency (``pip install 'llmsafety[vllm]'`` on a CUDA machine); without it every
run uses transformers, and asking for vLLM fails at once with the command that installs it. This
module was written against vLLM's documented offline API (``LLM``, ``LLM.chat``,
``SamplingParams``, ``LoRARequest``); the project's CPU machines cannot install vLLM, so it runs
only where the GPU check finds vLLM installed.
"""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path
from typing import Sequence


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def require_vllm(field: str = "generation_engine") -> None:
    """A clear error, before any model loads, when vLLM was asked for and is not installed."""
    if not vllm_available():
        raise ImportError(f"{field} asks for vLLM, which is not installed: pip install 'llmsafety[vllm]' on a "
                          "CUDA machine, or use the default (transformers)")


class VLLMEngine:
    """One vLLM model (a checkpoint path or hub id), optionally serving LoRA adapters of it.

    ``max_lora_rank``: the largest adapter rank it will be asked to serve (0: no adapters).
    """

    def __init__(self, model: str | Path, *, dtype: str = "bfloat16", seed: int = 0,
                 gpu_memory_utilization: float = 0.3, max_lora_rank: int = 0, max_model_len: int = 2048):
        require_vllm()
        from vllm import LLM

        self.model = str(model)
        self._lora_ids: dict[str, int] = {}
        kwargs = dict(model=self.model, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                      max_model_len=max_model_len, trust_remote_code=False)
        if max_lora_rank:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        self.llm = LLM(**kwargs)

    def _lora(self, adapter: str | Path | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)  # a new adapter, a new id
        return LoRARequest(f"adapter-{lora_id}", lora_id, path)

    def generate(self, prompts: Sequence[str | list[dict[str, str]]], *, max_new_tokens: int = 64,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, num_return_sequences: int = 1,
                 adapter: str | Path | None = None) -> list[str] | list[list[str]]:
        """Replies in input order: ``list[str]``, or ``list[list[str]]`` with ``num_return_sequences > 1``.

        A prompt is a user message (str) or a list of chat messages, as for ``models.generate``.
        """
        from vllm import SamplingParams

        conversations = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
        params = SamplingParams(n=num_return_sequences, temperature=temperature, top_p=top_p if temperature else 1.0,
                                max_tokens=max_new_tokens, seed=seed)
        outputs = self.llm.chat(conversations, params, use_tqdm=False, lora_request=self._lora(adapter))
        replies = [[o.text.strip() for o in out.outputs] for out in outputs]
        return [r[0] for r in replies] if num_return_sequences == 1 else replies

    def chat_model(self, adapter: str | Path | None = None) -> "VLLMChat":
        """The engine with one adapter (or none), for :func:`llmsafety.models.generate`."""
        return VLLMChat(self, adapter)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.get_tokenizer()(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        """Free the GPU memory vLLM holds (its KV cache is preallocated) before training starts."""
        import torch

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class VLLMChat:
    """What :func:`llmsafety.models.generate` needs of a model, served by vLLM: pass it where a
    :class:`~llmsafety.models.ChatModel` goes and ``generate`` hands the prompts to vLLM."""

    engine_name = "vllm"

    def __init__(self, engine: VLLMEngine, adapter: str | Path | None = None):
        self.engine, self.adapter = engine, adapter

    def generate(self, prompts, *, system: str | None = None, max_new_tokens: int = 64, temperature: float = 0.7,
                 top_p: float = 0.9, seed: int = 0, num_return_sequences: int = 1):
        if system is not None:
            prompts = [[{"role": "system", "content": system}] +
                       ([{"role": "user", "content": p}] if isinstance(p, str) else list(p)) for p in prompts]
        return self.engine.generate(prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=seed, num_return_sequences=num_return_sequences, adapter=self.adapter)

    def __repr__(self) -> str:
        return f"VLLMChat({self.engine.model}, adapter={self.adapter})"


def resolve_checkpoint(name: str) -> str:
    """A model name as vLLM reads it: the embedded names become their converted checkpoint folder."""
    from llmsafety.models import _EMBEDDED_CHAT_MODELS, embedded_checkpoint

    return str(embedded_checkpoint(name)) if name in _EMBEDDED_CHAT_MODELS else name
