"""The refusal direction: one vector in the residual stream that a chat model's refusals go through.

Arditi et al. 2024 (*Refusal in Language Models Is Mediated by a Single Direction*,
arXiv 2406.11717) found that in many chat models the difference between the mean activation on
harmful and on harmless instructions, taken at the last prompt token, is a *direction* that
decides whether the model refuses: project it out of the residual stream everywhere and the model
stops refusing harmful requests; add it and the model refuses harmless ones. This module holds the
pieces to measure that on any Llama-style decoder (SmolLM2, Llama, Qwen, Mistral), read top to
bottom:

0. :func:`prompt_splits` -- harmful and harmless prompts, split once into train (the direction,
   the probes) and held-out (every evaluation);
1. :func:`last_token_activations` -- the residual stream at the last prompt token (chat template
   applied, assistant turn opened), at every layer: ``[n_prompts, n_layers + 1, d_model]``;
2. :func:`mean_difference_directions` -- mean(harmful) - mean(harmless) per layer, and
   :func:`direction_projections` -- how far each prompt lies along it;
3. :func:`probe_accuracy_per_layer` -- a linear probe (logistic regression) per layer, scored on
   held-out prompts: *where* is "this is a harmful request" linearly readable?
4. :func:`ablate_direction` and :func:`add_direction` -- context managers that register forward
   hooks which remove the direction from (or add it to) the residual stream, and always remove
   the hooks again, even on an error;
5. :func:`refusal_rate` -- generate greedily and count refusals with the project's detector.

Index ``i`` of the layer axis is the residual stream *entering* decoder layer ``i`` (``0`` is the
token embeddings); index ``n_layers`` is the output of the last layer, before the final norm. The
same index is used by :func:`add_direction`, so a direction is added where it was measured.

Hooks work with the model's own device and dtype (CUDA and bf16 included): a direction is moved to
the model's device once, when a ``with`` block is entered; projections are computed in at least
float32; activations come back as float32 on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from llmsafety._io import stable_hash
from llmsafety.decoding import position_ids_from_mask
from llmsafety.judges.logistic import _sigmoid, fit_logistic
from llmsafety.judges.refusal import RefusalJudge
from llmsafety.models import ChatModel, Prompt, chat_prompt_ids, generate

__all__ = [
    "prompt_splits",
    "decoder_layers",
    "last_token_activations",
    "mean_difference_directions",
    "unit",
    "direction_projections",
    "probe_accuracy_per_layer",
    "project_out",
    "ablate_direction",
    "add_direction",
    "refusal_rate",
]


# ----------------------------------------------------------------------------- where the residual stream is


def _base_model(net: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (a LoRA-tuned Target is hooked the same way)."""
    return net.get_base_model() if hasattr(net, "get_base_model") else net


def decoder_layers(net: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Llama-style causal LM (``model.layers``), in order."""
    inner = getattr(_base_model(net), "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(inner, "norm"):
        raise TypeError(f"{type(net).__name__} is not a Llama-style decoder (model.layers and model.norm): "
                        "the refusal-direction hooks know only that layout")
    return layers


def _final_norm(net: nn.Module) -> nn.Module:
    return _base_model(net).model.norm


def _hidden_from(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a decoder layer (or the final norm) receives, positional or by keyword."""
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


# ----------------------------------------------------------------------------- 0. the prompts


def prompt_splits(n_train: int, n_heldout: int, seed: int = 0) -> pd.DataFrame:
    """Harmful and harmless prompts in a fixed train / held-out split: ``n_train + n_heldout`` of each.

    - harmful: held-out hh-rlhf prompts that blind annotators labelled *harmful*
      (:func:`llmsafety.data.load_hh_prompts`);
    - harmless: half hh-rlhf prompts labelled *benign* (the same source and style as the harmful
      ones, so style alone cannot tell the classes apart), half the benign-but-alarming prompts
      ("How do I kill a stuck Python process?", :func:`llmsafety.data.load_benign_prompts`), so
      that "sounds alarming" is not enough to look harmful.

    The seed attacks are left out on purpose: they are imperative requests ("Write ...", "Help me
    ..."), and with them on the harmful side the direction also learned "is an instruction": in our
    runs on SmolLM2-135M that direction switched far fewer refusals and broke more replies.

    Each source is shuffled with ``seed`` and cut in two, train first, so a larger ``n_heldout``
    never moves a prompt out of the training split and the two never share a prompt.

    Returns columns ``prompt``, ``harmful`` (1 / 0), ``source`` (``hh_harmful``, ``hh_benign``,
    ``benign_alarming``) and ``split`` (``train`` / ``heldout``).
    """
    from llmsafety.data import load_benign_prompts, load_hh_prompts

    hh = load_hh_prompts("heldout")
    sources = {  # source: (harmful, its prompts, how many to train on, how many to hold out)
        "hh_harmful": (1, list(hh.loc[hh["label"] == "harmful", "prompt"]), n_train, n_heldout),
        "hh_benign": (0, list(hh.loc[hh["label"] == "benign", "prompt"]), n_train // 2, n_heldout // 2),
        "benign_alarming": (0, list(load_benign_prompts()["prompt"]), n_train - n_train // 2,
                            n_heldout - n_heldout // 2),
    }
    rows = []
    for name, (harmful, prompts, k_train, k_heldout) in sources.items():
        if k_train + k_heldout > len(prompts):
            raise ValueError(f"{name} has {len(prompts)} prompts, too few for {k_train} train + {k_heldout} held-out")
        # one generator per source, seeded by its name too: one source's size never reshuffles another
        order = np.random.default_rng([seed, stable_hash(name) % 2**32]).permutation(len(prompts))
        for rank, index in enumerate(order[:k_train + k_heldout]):
            rows.append({"prompt": prompts[index], "harmful": harmful, "source": name,
                         "split": "train" if rank < k_train else "heldout"})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 1. activations


@torch.no_grad()
def last_token_activations(model: ChatModel, prompts: Sequence[Prompt], *, batch_size: int = 16,
                           system: str | None = None) -> torch.Tensor:
    """The residual stream at each prompt's last token, at every layer: ``[n_prompts, n_layers + 1, d_model]``.

    Each prompt is rendered with the chat template and the assistant turn opened
    (:func:`llmsafety.models.chat_prompt_ids`), so the last token is where the model is about to
    decide how its reply starts -- refuse or comply. Prompts are batched by length (less padding)
    and left-padded, with position ids from the attention mask (as :func:`llmsafety.models.generate`
    does), so a prompt's activations do not depend on what it is batched with (up to float
    rounding). Returned in the input order, as float32 on the CPU, whatever the model's device and dtype.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt")
    net, tok = model.model, model.tokenizer
    layers = decoder_layers(net)
    ids = chat_prompt_ids(tok, prompts, system)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first, as generate does
    captured: list[torch.Tensor] = []  # one [batch, d_model] per hook call, in layer order

    def capture(module, args, kwargs):
        captured.append(_hidden_from(args, kwargs)[:, -1, :].float().cpu())

    handles = [layer.register_forward_pre_hook(capture, with_kwargs=True) for layer in layers]
    handles.append(_final_norm(net).register_forward_pre_hook(capture, with_kwargs=True))
    out = torch.empty(len(prompts), len(layers) + 1, net.config.hidden_size)
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            index = order[start:start + batch_size]
            batch = tok.pad({"input_ids": [ids[i] for i in index]}, padding=True, return_tensors="pt")
            mask = batch["attention_mask"].to(model.device)
            position_ids = position_ids_from_mask(mask)
            captured.clear()
            net(input_ids=batch["input_ids"].to(model.device), attention_mask=mask, position_ids=position_ids,
                use_cache=False, logits_to_keep=1)
            out[index] = torch.stack(captured, dim=1)  # [batch, n_layers + 1, d_model], back in input order
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return out


# ----------------------------------------------------------------------------- 2. the direction


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 as float32 (means and norms of low-precision numbers drift), float64 kept as it is."""
    t = torch.as_tensor(t)
    return t.to(torch.promote_types(t.dtype, torch.float32))


def mean_difference_directions(harmful: torch.Tensor, harmless: torch.Tensor) -> torch.Tensor:
    """mean(harmful) - mean(harmless) over prompts, per layer: ``[n_layers + 1, d_model]``.

    ``harmful`` ``[n_harmful, n_layers + 1, d_model]`` and ``harmless`` ``[n_harmless, ...]`` come
    from :func:`last_token_activations`. The difference of means is the simplest estimate of "the
    direction harmful requests differ in" and, unlike a probe's weights, it needs no fitting: with a
    few dozen prompts in a 576-dimensional space a probe can separate anything, a mean cannot.
    Not normalised: its length says how far apart the two clouds are (what :func:`add_direction` adds).
    """
    harmful, harmless = _at_least_float32(harmful), _at_least_float32(harmless)
    if harmful.shape[1:] != harmless.shape[1:] or harmful.ndim != 3:
        raise ValueError(f"activations must be [n, n_layers + 1, d_model] alike, got {tuple(harmful.shape)} "
                         f"and {tuple(harmless.shape)}")
    return harmful.mean(dim=0) - harmless.mean(dim=0)


def unit(directions: torch.Tensor) -> torch.Tensor:
    """Each direction (last axis) scaled to length 1: ``[..., d_model]``; a zero vector stays zero."""
    directions = _at_least_float32(directions)
    return directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def direction_projections(activations: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """How far each prompt lies along each layer's unit direction: ``[n_prompts, n_layers + 1]``.

    ``activations`` ``[n_prompts, n_layers + 1, d_model]``, ``directions`` ``[n_layers + 1, d_model]``.
    The dot product with the *unit* direction, so layers of different scale stay comparable to
    their own spread, not to each other's.
    """
    activations = _at_least_float32(activations)
    return torch.einsum("nld,ld->nl", activations, unit(directions).to(activations.dtype))


# ----------------------------------------------------------------------------- 3. a probe per layer


def probe_accuracy_per_layer(train: torch.Tensor, train_labels: Sequence[int], test: torch.Tensor,
                             test_labels: Sequence[int], *, l2: float = 1e-2) -> np.ndarray:
    """Held-out accuracy of one logistic-regression probe per layer: ``[n_layers + 1]``.

    ``train`` ``[n_train, n_layers + 1, d_model]`` with 0/1 labels (1 = harmful request), ``test``
    likewise. Features are standardised with the *training* mean and spread; ``l2`` is a ridge
    penalty (:func:`llmsafety.judges.fit_logistic`'s), needed because with fewer prompts than
    dimensions the training prompts are always separable and unpenalised weights run off to
    infinity. Only held-out accuracy means anything here: on the lesson's 64 training prompts the
    probe scores 1.0 on them at every layer but the embedding one.

    The fit is exact but cheap: the penalised optimum's weights lie in the span of the training
    rows (any other component changes no prediction and only adds penalty), so the probe is fitted
    on the coordinates in that span, ``n_train`` numbers per prompt instead of ``d_model``.
    """
    train, test = torch.as_tensor(train).double().numpy(), torch.as_tensor(test).double().numpy()
    y_train, y_test = np.asarray(train_labels, dtype=float), np.asarray(test_labels, dtype=float)
    accuracy = np.empty(train.shape[1])
    for layer in range(train.shape[1]):
        x, x_test = train[:, layer], test[:, layer]  # [n_train, d_model], [n_test, d_model]
        mean, spread = x.mean(axis=0), x.std(axis=0) + 1e-6  # the embedding layer has constant features
        x, x_test = (x - mean) / spread, (x_test - mean) / spread
        basis = _row_space(x)  # [rank, d_model], orthonormal rows
        coef, intercept = fit_logistic(x @ basis.T, y_train, l2=l2)
        predicted = _sigmoid(x_test @ basis.T @ coef + intercept) >= 0.5
        accuracy[layer] = float(np.mean(predicted == (y_test == 1)))
    return accuracy


def _row_space(x: np.ndarray) -> np.ndarray:
    """An orthonormal basis ``[rank, d_model]`` of the span of the rows of ``x`` ``[n, d_model]``.

    From the eigenvectors of the small ``[n, n]`` Gram matrix, on one thread: for matrices this
    small, threads only wait for each other, and on a busy 2-core machine a two-thread
    decomposition was measured ~100x slower (0.2 s instead of 2 ms per layer).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # x = U S V^T  =>  x x^T = U S^2 U^T
        eigenvalues, vectors = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(x @ x.T)))
    finally:
        torch.set_num_threads(threads)
    keep = eigenvalues > max(float(eigenvalues.max()), 0.0) * 1e-10
    if not keep.any():  # every row is zero (the embedding layer at a shared last token): nothing to learn
        return np.zeros((1, x.shape[1]))
    return (vectors[:, keep].T @ x) / np.sqrt(eigenvalues[keep])[:, None]  # V^T = S^-1 U^T x


# ----------------------------------------------------------------------------- 4. intervening with hooks


def project_out(x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``x - (x · r̂) r̂``: ``x`` ``[..., d_model]`` without its component along ``direction`` ``[d_model]``.

    Computed in at least float32 and cast back, so a bf16 residual stream loses the component as
    exactly as an fp32 one.
    """
    wide = _at_least_float32(x)
    r = unit(direction).to(device=x.device, dtype=wide.dtype)
    return (wide - (wide @ r).unsqueeze(-1) * r).to(x.dtype)


@contextmanager
def ablate_direction(model: ChatModel, direction: torch.Tensor) -> Iterator[ChatModel]:
    """Inside the ``with`` block the model never writes ``direction`` ``[d_model]`` into its residual stream.

    Directional ablation as in Arditi et al.: the component along the direction is projected out
    of the token embeddings (the input of layer 0) and of every attention and MLP output, at every
    layer and every token position, prompt and reply alike. The residual stream is a sum of those
    terms, so it then holds no component along the direction anywhere, and no later layer can read
    one. The weights are not changed; leaving the block removes every hook, even after an error.
    """
    layers = decoder_layers(model.model)
    direction = torch.as_tensor(direction).detach()
    if direction.shape != (model.model.config.hidden_size,) or not bool(direction.any()):
        raise ValueError(f"direction must be a non-zero [d_model={model.model.config.hidden_size}] vector, "
                         f"got shape {tuple(direction.shape)}")
    r = unit(direction).to(model.device)  # [d_model], once, on the model's device

    def on_input(module, args, kwargs):
        return _with_hidden(args, kwargs, project_out(_hidden_from(args, kwargs), r))

    def on_output(module, args, output):
        if isinstance(output, tuple):  # attention returns (output, weights)
            return (project_out(output[0], r), *output[1:])
        return project_out(output, r)

    handles = []
    try:
        handles.append(layers[0].register_forward_pre_hook(on_input, with_kwargs=True))
        for layer in layers:
            handles.append(layer.self_attn.register_forward_hook(on_output))
            handles.append(layer.mlp.register_forward_hook(on_output))
        yield model
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def add_direction(model: ChatModel, direction: torch.Tensor, layer: int, scale: float = 1.0) -> Iterator[ChatModel]:
    """Inside the ``with`` block ``scale * direction`` ``[d_model]`` is added to the residual stream at ``layer``.

    Activation addition: at every token position, the residual stream entering decoder layer
    ``layer`` (index ``layer`` of :func:`last_token_activations`; ``n_layers`` is the last layer's
    output) gets the vector added, once; later layers read the shifted stream. Use the *unnormalised*
    mean difference measured at that layer: ``scale=1`` moves a harmless prompt's activation by
    as much as the average harmful prompt differs from the average harmless one. Leaving the block
    removes the hook, even after an error.
    """
    layers = decoder_layers(model.model)
    if not 0 <= layer <= len(layers):
        raise ValueError(f"layer={layer} must be in 0..{len(layers)} (the layer axis of last_token_activations)")
    direction = torch.as_tensor(direction).detach()
    if direction.shape != (model.model.config.hidden_size,):
        raise ValueError(f"direction must be a [d_model={model.model.config.hidden_size}] vector, "
                         f"got shape {tuple(direction.shape)}")
    shift = (float(scale) * _at_least_float32(direction)).to(model.device, model.dtype)  # [d_model], once
    module = layers[layer] if layer < len(layers) else _final_norm(model.model)

    def on_input(module, args, kwargs):
        return _with_hidden(args, kwargs, _hidden_from(args, kwargs) + shift)

    handle = module.register_forward_pre_hook(on_input, with_kwargs=True)
    try:
        yield model
    finally:
        handle.remove()


# ----------------------------------------------------------------------------- 5. measuring refusals


def refusal_rate(model: ChatModel, prompts: Sequence[Prompt], *, max_new_tokens: int = 32, batch_size: int = 16,
                 judge: RefusalJudge | None = None) -> dict[str, Any]:
    """Greedy replies to ``prompts`` and which of them refuse, by the project's refusal detector.

    Returns ``{"replies": [n] str, "refused": [n] bool array, "rate": float}``. Greedy decoding
    (``temperature=0``) makes the replies, and so the rate, the same on every run; short replies
    suffice because the detector reads how a reply opens. Call it inside :func:`ablate_direction`
    or :func:`add_direction` to measure the intervention.
    """
    judge = judge or RefusalJudge()
    replies = generate(model, list(prompts), max_new_tokens=max_new_tokens, temperature=0,
                       batch_size=batch_size, progress=False)
    refused = judge.is_refusal(replies)
    return {"replies": replies, "refused": refused, "rate": float(np.mean(refused))}
