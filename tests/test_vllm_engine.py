"""Without vLLM nothing changes, and asking for it fails at once, saying how to install it."""

from __future__ import annotations

import pytest

from llmsafety.dart import DARTConfig
from llmsafety.dart.iteration import RunContext
from llmsafety.vllm_engine import VLLMChat, vllm_available

needs_no_vllm = pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")


def test_engine_fields_are_validated():
    with pytest.raises(ValueError, match=r"DARTConfig.generation_engine='vLLM': must be one of transformers, vllm"):
        DARTConfig(generation_engine="vLLM").validate()
    with pytest.raises(ValueError, match=r"DARTConfig.red_vllm_mode='on': must be one of off, colocate, server"):
        DARTConfig(red_vllm_mode="on").validate()
    with pytest.raises(ValueError, match=r"vllm_gpu_memory_utilization=1.5: must be a number in \(0, 1\)"):
        DARTConfig(vllm_gpu_memory_utilization=1.5).validate()
    assert DARTConfig().generation_engine == "transformers" and DARTConfig().red_vllm_mode == "off"


@needs_no_vllm
@pytest.mark.parametrize("field,value", [("generation_engine", "vllm"), ("red_vllm_mode", "colocate")])
def test_asking_for_vllm_without_it_fails_before_any_model_loads(tmp_path, field, value):
    with pytest.raises(ImportError, match=rf"{field} asks for vLLM, which is not installed: pip install 'llmsafety\[vllm\]'"):
        RunContext(DARTConfig(**{field: value}), tmp_path, progress=False)


def test_generate_hands_prompts_to_a_vllm_backed_model():
    """models.generate keeps its checks and its contract, and lets vLLM decode (a recording engine here)."""
    from llmsafety.models import generate

    calls = []

    class RecordingEngine:
        model = "m"

        def generate(self, prompts, **kwargs):
            calls.append((prompts, kwargs))
            return [f"reply {i}" for i in range(len(prompts))]

    chat = VLLMChat(RecordingEngine(), adapter="iter_1/target_adapter")
    assert generate(chat, ["hi", "there"], system="be safe", temperature=0.0, seed=3) == ["reply 0", "reply 1"]
    (prompts, kwargs), = calls
    assert prompts[0] == [{"role": "system", "content": "be safe"}, {"role": "user", "content": "hi"}]
    assert kwargs["adapter"] == "iter_1/target_adapter" and kwargs["seed"] == 3 and kwargs["temperature"] == 0.0
    with pytest.raises(ValueError, match="prompts is empty"):
        generate(chat, [])
