"""Generation throughput of the embedded chat model, against a FLOP-bound estimate for this machine.

    python benchmarks/generation.py [--dtype float32|bfloat16] [--new-tokens 48]

Prints tokens/s at batch 1, 8, 32, 64, the machine's measured matmul rate, the FLOP-bound ceiling
that rate implies (2 x parameters FLOPs per generated token), and the judge's and embedder's items/s.
Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import torch


def matmul_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 20) -> float:
    """Measured dense matmul FLOP/s of this machine in ``dtype`` (all threads)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batches", default="1,8,32,64")
    args = parser.parse_args()

    from llmsafety.data import load_benign_prompts, load_seed_attacks
    from llmsafety.judges import default_judge
    from llmsafety.models import generate, load_chat_model, load_embedder

    model = load_chat_model(dtype=args.dtype)
    n_params = sum(p.numel() for p in model.model.parameters())
    dtype = model.dtype
    rate = matmul_rate(dtype)
    print(f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}, model {model}")
    print(f"measured matmul rate ({dtype}): {rate / 1e9:.1f} GFLOP/s")
    ceiling = rate / (2 * n_params)
    print(f"FLOP-bound ceiling: {ceiling:.0f} tok/s (2 x {n_params / 1e6:.1f}M FLOPs per token; "
          "ignores attention and memory traffic, which dominate at small batch)")

    prompts = list(load_seed_attacks()["prompt"])
    print("\n| batch | tokens/s | % of FLOP bound | seconds |")
    print("|---|---|---|---|")
    generate(model, prompts[:4], max_new_tokens=8, progress=False)  # warm-up
    for bs in (int(b) for b in args.batches.split(",")):
        batch = prompts[:bs]
        t = time.perf_counter()
        out = generate(model, batch, max_new_tokens=args.new_tokens, batch_size=bs, seed=0, progress=False)
        dt = time.perf_counter() - t
        n_tokens = sum(len(model.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
        print(f"| {bs} | {n_tokens / dt:.1f} | {100 * n_tokens / dt / ceiling:.1f}% | {dt:.1f} |")

    judge = default_judge()
    embedder = load_embedder()
    benign = list(load_benign_prompts()["prompt"])
    replies = [f"I can't help with that, but here is a safer idea about {p[:40]}" for p in benign]
    judge(benign[:8], replies[:8])  # warm-up
    t = time.perf_counter()
    judge(benign, replies)
    print(f"\ndefault judge: {len(benign) / (time.perf_counter() - t):.0f} items/s")
    t = time.perf_counter()
    embedder.encode(benign + prompts, batch_size=64)
    print(f"MiniLM embedder: {(len(benign) + len(prompts)) / (time.perf_counter() - t):.0f} texts/s")


if __name__ == "__main__":
    main()
