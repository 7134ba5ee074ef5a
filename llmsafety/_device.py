"""Where a model runs and in which float type: the one place that decides.

:func:`pick_device` turns ``"auto"`` into ``"cuda"`` when a GPU is there, else ``"cpu"``;
:func:`pick_dtype` turns a name such as ``"bf16"`` or ``"auto"`` into a ``torch.dtype``.
Used by :mod:`llmsafety.models` (chat models, the embedder) and by the Hugging Face judges
(:mod:`llmsafety.judges.hub`). torch is imported only when needed, so importing this module is free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["DTYPE_NAMES", "pick_device", "pick_dtype"]

#: Names :func:`pick_dtype` accepts besides ``"auto"`` (the attribute of ``torch`` each stands for).
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
               "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def pick_device(device: str = "auto") -> str:
    """``"cuda"`` when a CUDA GPU is available and ``device == "auto"`` (else ``"cpu"``); any other value as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str | torch.dtype = "auto", device: Any = None, *, bf16_needs_support: bool = True,
               any_torch_name: bool = False) -> torch.dtype:
    """The ``torch.dtype`` for ``dtype``: a ``torch.dtype`` as given, a name, or ``"auto"``.

    ``"auto"`` means bf16 on a CUDA GPU and fp32 elsewhere (the CPU keeps fp32 even where bf16
    would be faster). Two callers had two slightly different rules; both are kept as they were:

    - ``bf16_needs_support=True`` (:func:`llmsafety.models.resolve_dtype`, chat models): bf16 when
      ``device`` (a ``torch.device`` or its string; ``None`` means :func:`pick_device`'s choice)
      is of type ``cuda`` *and* ``torch.cuda.is_bf16_supported()``; fp32 otherwise.
    - ``bf16_needs_support=False`` (:class:`llmsafety.judges.GuardModelJudge`): bf16 whenever
      ``device`` is the string ``"cuda"`` (what ``pick_device("auto")`` gives), without asking
      whether the GPU supports bf16; fp32 otherwise.

    Names: by default one of :data:`DTYPE_NAMES` (``"float32"``, ``"fp32"``, ``"bf16"``, ...),
    anything else is a ValueError. ``any_torch_name=True`` instead looks the name up as an
    attribute of ``torch`` (``"float16"``, ``"half"``, ``"float64"``; an unknown one is an
    AttributeError), as :class:`~llmsafety.judges.GuardModelJudge` always did.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if not bf16_needs_support:
            return torch.bfloat16 if device == "cuda" else torch.float32
        device = torch.device(device if device is not None else pick_device("auto"))
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if any_torch_name:
        return getattr(torch, dtype)
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype={dtype!r} is not one of 'auto', {', '.join(map(repr, DTYPE_NAMES))}")
    return getattr(torch, DTYPE_NAMES[dtype])
