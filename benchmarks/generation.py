"""Generation throughput of the embedded chat model, against a FLOP-bound estimate for this machine.

    python benchmarks/generation.py [--json] [--dtype float32] [--new-tokens 48] [--batches 1,8,32,64]
                                    [--engines decode,generate]

Measures in one run: this machine's dense matmul rate, the FLOP-bound ceiling it implies (2 x
parameters FLOPs per generated token), and tokens/s at each batch size for

- ``decode``: llmsafety's decoding loop (what :func:`llmsafety.models.generate` uses), and
- ``generate``: transformers' ``model.generate`` with the same prompts and sampling settings,

so the ratio between them is measured on the same machine in the same minute. Sampling is
temperature 0.7, top-p 0.9 (the Target's settings); tokens/s counts generated tokens over the whole
call (prefill included). Also checks that greedy replies of both engines agree token for token.
``--json`` prints one JSON object instead of tables. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def matmul_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 10, device: str | torch.device = "cpu") -> float:
    """Measured dense matmul FLOP/s of this machine in ``dtype`` (all threads; on a GPU, synchronised)."""
    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(2):
        a @ b
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hf_generate(model, prompts, *, max_new_tokens, temperature, top_p, batch_size):
    """transformers' generate over the same batches as llmsafety.models.generate (for comparison)."""
    from llmsafety.models import chat_prompt_ids

    tok = model.tokenizer
    ids = chat_prompt_ids(tok, prompts)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first, as generate batches them
    replies = [""] * len(ids)
    for start in range(0, len(ids), batch_size):
        index = order[start:start + batch_size]
        batch = tok.pad({"input_ids": [ids[i] for i in index]}, padding=True, return_tensors="pt")
        batch = {k: v.to(model.device) for k, v in batch.items()}
        sampling = temperature > 0
        out = model.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=sampling,
                                   temperature=temperature if sampling else None,
                                   top_p=top_p if sampling else None, top_k=None,
                                   pad_token_id=tok.pad_token_id)
        for i, text in zip(index, tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)):
            replies[i] = text.strip()
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--engines", default="decode,generate")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    from llmsafety.data import load_seed_attacks
    from llmsafety.models import cpu_has_fast_bf16, generate, load_chat_model

    say = (lambda *a, **k: None) if args.json else print
    model = load_chat_model(dtype=args.dtype)
    n_params = sum(p.numel() for p in model.model.parameters())
    rate = matmul_rate(model.dtype)
    ceiling = rate / (2 * n_params)
    result = {
        "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "native_bf16": cpu_has_fast_bf16(), "device": str(model.device)},
        "dtype": str(model.dtype).replace("torch.", ""),
        "matmul_gflop_per_s": round(rate / 1e9, 1),
        "flop_bound_tok_per_s": round(ceiling, 1),
        "new_tokens": args.new_tokens,
    }
    say(f"machine: {result['machine']}")
    say(f"measured matmul rate ({model.dtype}): {rate / 1e9:.1f} GFLOP/s; FLOP-bound ceiling "
        f"{ceiling:.0f} tok/s (2 x {n_params / 1e6:.1f}M FLOPs a token; ignores attention, prefill and "
        "memory traffic, which dominate at small batch)")

    prompts = list(load_seed_attacks()["prompt"])
    engines = {
        "decode": lambda batch, bs, **kw: generate(model, batch, batch_size=bs, seed=0, progress=False, **kw),
        "generate": lambda batch, bs, **kw: hf_generate(model, batch, batch_size=bs, **kw),
    }
    chosen = [e for e in args.engines.split(",") if e]
    unknown = set(chosen) - set(engines)
    if unknown:
        raise SystemExit(f"--engines: unknown {sorted(unknown)}; choose from {sorted(engines)}")

    greedy = {e: engines[e](prompts[:8], 8, max_new_tokens=24, temperature=0.0, top_p=1.0) for e in chosen}
    if len(chosen) == 2:
        agree = sum(a == b for a, b in zip(*greedy.values()))
        result["greedy_replies_identical"] = f"{agree}/8"
        say(f"greedy replies identical across engines: {agree}/8")

    result["tok_per_s"] = {e: {} for e in chosen}
    say("\n| batch | " + " | ".join(f"{e} tok/s | % of bound" for e in chosen) + " |")
    say("|---|" + "---|---|" * len(chosen))
    for bs in (int(b) for b in args.batches.split(",")):
        cells = []
        for e in chosen:
            torch.manual_seed(0)
            t = time.perf_counter()
            out = engines[e](prompts[:bs], bs, max_new_tokens=args.new_tokens, temperature=0.7, top_p=0.9)
            dt = time.perf_counter() - t
            n_tokens = sum(len(model.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
            result["tok_per_s"][e][bs] = round(n_tokens / dt, 1)
            cells.append(f"{n_tokens / dt:.1f} | {100 * n_tokens / dt / ceiling:.0f}%")
        say(f"| {bs} | " + " | ".join(cells) + " |")
    if len(chosen) == 2:
        result["speedup_decode_over_generate"] = {
            bs: round(result["tok_per_s"]["decode"][bs] / result["tok_per_s"]["generate"][bs], 2)
            for bs in result["tok_per_s"]["decode"]
        }
        say(f"\ndecode / generate: {result['speedup_decode_over_generate']}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
