"""One DART iteration, top to bottom: evaluate, attack, select, tune.

Follow one attack through the file. :func:`red_phase` samples it from the Red LLM inside GRPO;
the reward terms (:mod:`llmsafety.dart.rewards`) have the current Target reply to it, the training
judge score the reply (harm) and the archive of earlier iterations' attacks score its novelty; it
is kept as an :class:`~llmsafety.dart.record.AttackRecord` in ``iter_t/attacks.jsonl``.
:func:`target_phase` reads it back, samples more replies to measure how uncertain its verdict is,
selects it (or not) within the budget, makes a safe reply for it and LoRA-tunes the Target on it.
:func:`eval_phase` then grades the tuned Target on held-out prompts with the evaluation judge.

Each phase is a plain function of a :class:`RunContext` (what a run loads once) and the iteration
``t``; it reads its inputs from the run directory and writes its outputs there, so
:mod:`llmsafety.dart.loop` can order, resume and check phases without knowing what they do.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmsafety._io import read_jsonl, stable_hash, write_json, write_jsonl
from llmsafety.dart import distributed
from llmsafety.dart.config import DARTConfig
from llmsafety.dart.eval_sets import EvalSets, build_eval_sets
from llmsafety.dart.evaluate import evaluate_target
from llmsafety.dart.record import AttackRecord
from llmsafety.dart.red import attach_lora, build_red_dataset, run_red_phase
from llmsafety.dart.rewards import RolloutScorer
from llmsafety.dart.selection import select_for_safety_tuning, uncertainty_scores
from llmsafety.dart.target import run_target_sft, safe_replies, sft_examples
from llmsafety.judges.request import HarmfulRequestHead


def phase_seed(seed: int, phase: str) -> int:
    """A stable seed per (run seed, phase): independent of what ran before in this process."""
    return stable_hash(phase, salt=f"{seed}:") >> 224


def build_judge(spec: str, device: str = "auto"):
    """A judge from a config string: ``default``, ``refusal``, ``reward:NAME`` or ``guard:NAME``."""
    from llmsafety import judges

    if spec == "default":
        return judges.default_judge()
    if spec == "refusal":
        return judges.RefusalJudge()
    kind, _, name = spec.partition(":")
    if kind == "reward" and name:
        return judges.RewardModelJudge(name, device=device)
    if kind == "guard" and name:
        return judges.GuardModelJudge(name, device=device)
    raise ValueError(f"judge={spec!r}: use 'default', 'refusal', 'reward:NAME_OR_PATH' or 'guard:NAME_OR_PATH'")


def write_json_numpy(path: Path, data: Any) -> None:
    """JSON that may hold numpy numbers and arrays (the phases' logs do)."""
    write_json(path, data, default=_json_default)


def write_jsonl_numpy(path: Path, rows: list[dict[str, Any]]) -> None:
    write_jsonl(path, rows, default=_json_default)


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ============================================================================ what a run loads once

class RunContext:
    """The things every phase of a run shares, each built on first use: the training judge, the
    evaluation judge, the embedder, the evaluation sets; and where a phase finds its models.

    ``config`` is the run's config with its variant applied (:meth:`DARTConfig.effective`): what
    the phases use. The run directory keeps the config as given.
    """

    def __init__(self, config: DARTConfig, out: Path, progress: bool):
        self.config = config.effective()
        self.out = out
        self.progress = progress
        self._judge = self._embedder = self._eval_sets = self._outcomes = self._eval_judge = self._vllm = None
        if self.config.generation_engine == "vllm" or self.config.red_vllm_mode != "off":
            from llmsafety.vllm_engine import require_vllm

            require_vllm("generation_engine" if self.config.generation_engine == "vllm" else "red_vllm_mode")
        # Our own bars (phases, generation) say where a run is; the libraries' loading bars are noise.
        import datasets
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()

    @property
    def judge(self):
        """The training judge: red reward, uncertainty, safe-reply filter."""
        if self._judge is None:
            self._judge = build_judge(self.config.judge, self.config.device)
        return self._judge

    @property
    def outcomes(self):
        """comply / refuse / other for every evaluation reply, whatever ``eval_judge`` is."""
        if self._outcomes is None:
            from llmsafety.dart.eval_judge import OutcomeJudge

            self._outcomes = OutcomeJudge(self.embed)
        return self._outcomes

    @property
    def eval_judge(self):
        if self._eval_judge is None:
            spec = self.config.eval_judge
            self._eval_judge = (self.outcomes if spec == "outcome" else self.judge if spec == self.config.judge
                                else build_judge(spec, self.config.device))
        return self._eval_judge

    @property
    def eval_sets(self) -> EvalSets:
        if self._eval_sets is None:
            self._eval_sets = build_eval_sets(self.config)
        return self._eval_sets

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32[len(texts), dim], unit-norm sentence embeddings."""
        if self._embedder is None:
            from llmsafety.models import load_embedder

            self._embedder = load_embedder(self.config.embedder, device=self.config.device)
        return self._embedder.encode(list(texts), batch_size=64, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)

    def load_model(self, which: str, adapter: Path | None, *, fresh_lora: bool = False, trainable: bool = False):
        """The Red or Target model from its base checkpoint, with ``adapter`` (or a new LoRA)."""
        from llmsafety.models import load_chat_model

        cfg = self.config
        if cfg.generation_engine == "vllm" and which == "target" and not (trainable or fresh_lora):
            return self._vllm_target(adapter)
        model = load_chat_model(cfg.red_model if which == "red" else cfg.target_model,
                                device=cfg.device, dtype=cfg.dtype)
        r = cfg.red_lora_r if which == "red" else cfg.target_lora_r
        if adapter is not None:
            model.model = attach_lora(model.model, r, adapter, trainable=trainable)
            if not trainable:
                # A frozen adapter only generates and scores: fold it into the weights. peft's
                # per-layer LoRA branch costs ~1.4x in generation time here; the greedy replies of
                # the tuned Target on 24 eval prompts were the same, word for word, merged or not.
                model.model = model.model.merge_and_unload()
        elif fresh_lora:
            model.model = attach_lora(model.model, r, alpha_multiplier=cfg.lora_alpha_multiplier,
                                      dropout=cfg.lora_dropout, target_modules=cfg.lora_target_modules)
        return model

    def _vllm_target(self, adapter: Path | None):
        """The frozen Target served by one vLLM engine per process: base model + this adapter."""
        if self._vllm is None:
            from llmsafety.vllm_engine import VLLMEngine, resolve_checkpoint

            cfg = self.config
            self._vllm = VLLMEngine(resolve_checkpoint(cfg.target_model), seed=cfg.seed,
                                    dtype="bfloat16" if cfg.dtype == "auto" else cfg.dtype,
                                    gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                                    max_lora_rank=cfg.target_lora_r)
        return self._vllm.chat_model(adapter)

    def target_adapter(self, t: int) -> Path | None:
        """The Target's adapter after iteration t (None: the untuned model)."""
        return self.out / f"iter_{t}" / "target_adapter" if t >= 1 else None

    def red_adapter(self, t: int) -> Path | None:
        return self.out / f"iter_{t}" / "red_adapter" if t >= 1 else None

    def archive_embeddings(self, before: int) -> np.ndarray:
        """float32[n, dim]: every attack of iterations < ``before`` (DART's global diversity).

        With ``novelty_includes_seeds`` the seed attacks (train split) count as iteration 0: the
        red model gets no novelty for copying its few-shot examples, already in iteration 1.
        """
        from llmsafety.data import load_seed_attacks

        blocks = [self._iteration_archive(s) for s in range(1, before)]
        if self.config.novelty_includes_seeds:
            blocks.insert(0, self.embed(list(load_seed_attacks(split="train")["prompt"])))
        blocks = [b for b in blocks if b.size]
        if not blocks:
            return np.zeros((0, self.embed(["dimension probe"]).shape[1]), dtype=np.float32)
        return np.concatenate(blocks)

    def _iteration_archive(self, s: int) -> np.ndarray:
        """Iteration s's attack embeddings; only the successful ones with ``novelty_successful_only``."""
        embeddings = np.load(self.out / f"iter_{s}" / "attack_embeddings.npy")
        if not self.config.novelty_successful_only:
            return embeddings
        records = read_jsonl(self.out / f"iter_{s}" / "attacks.jsonl")  # row for row with the embeddings
        keep = [i for i, r in enumerate(records) if r["harm"] is not None and r["harm"] >= self.config.harm_threshold]
        return embeddings[keep]


# ============================================================================ 1. red: write attacks

def red_phase(ctx: RunContext, t: int) -> dict[str, Any]:
    """GRPO on the Red LLM against the Target of iteration t-1; its rollouts are the attacks."""
    from transformers import set_seed

    from llmsafety.data import load_seed_attacks
    from llmsafety.models import generate

    cfg = ctx.config
    seed = phase_seed(cfg.seed, f"red_{t}")
    set_seed(seed)
    main = distributed.is_main_process()
    if main:
        (ctx.out / f"iter_{t}").mkdir(parents=True, exist_ok=True)
    if cfg.variant == "refusal_sft":  # nothing to train: the main process does it alone
        return seed_attack_phase(ctx, t, seed) if main else {}
    red = ctx.load_model("red", ctx.red_adapter(t - 1), fresh_lora=True, trainable=True)
    target = ctx.load_model("target", ctx.target_adapter(t - 1))
    calls = {"n": 0}

    def reply(attacks: list[str]) -> list[str]:
        calls["n"] += 1  # a fresh seed per batch: the Target's replies are sampled (unless red_reward_greedy)
        return generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                        temperature=0 if cfg.red_reward_greedy else cfg.target_temperature, batch_size=cfg.batch_size,
                        seed=seed + calls["n"], progress=False)

    # On N processes the archive is the main process's, sent to all, and grows by every process's
    # attacks in process order: novelty means the same thing on each of them.
    archive = distributed.broadcast(ctx.archive_embeddings(t) if main else None)
    scorer = RolloutScorer(reply_fn=reply, judge=ctx.judge, embed_fn=ctx.embed, gather_fn=distributed.gather_arrays,
                           archive_embeddings=archive, novelty_kind=cfg.novelty_kind,
                           min_attack_words=cfg.min_attack_words, novelty_mode=cfg.novelty_mode,
                           harm_threshold=cfg.harm_threshold, archive_grows=cfg.novelty_archive == "steps",
                           archive_successful_only=cfg.novelty_successful_only, goal_weight=cfg.goal_weight,
                           goal_min_relevance=cfg.goal_min_relevance, request_weight=cfg.request_gate_weight,
                           request_fn=HarmfulRequestHead() if cfg.request_gate_weight > 0 else None)
    dataset = build_red_dataset(load_seed_attacks(split="train"), cfg.red_steps * cfg.red_prompts_per_step,
                                cfg.red_examples_per_prompt, seed, _category_names())
    trainer_dir = ctx.out / f"iter_{t}" / "_trainer" if main else Path(tempfile.mkdtemp(prefix="llmsafety-red-"))
    info = run_red_phase(red=red, scorer=scorer, dataset=dataset, config=cfg, output_dir=trainer_dir,
                         seed=seed, callbacks=_tqdm_callback(ctx.progress, f"red {t}"))
    # Every process's attacks, step by step (within a step in process order), and a check that all
    # of them scored novelty against the same archive.
    records = sorted((r for part in distributed.gather(scorer.records) for r in part), key=lambda r: r.step)
    processes = distributed.gather({"process": distributed.process_index(), "archive_rows": len(scorer.archive_embeddings),
                                    "archive_start_sha256": distributed.checksum(archive),
                                    "archive_end_sha256": distributed.checksum(scorer.archive_embeddings)})
    if len({(p["archive_start_sha256"], p["archive_end_sha256"]) for p in processes}) > 1:
        raise RuntimeError(f"red_{t}: the processes scored novelty against different archives: {processes}")
    if not main:
        return {}
    red.model.save_pretrained(str(ctx.out / f"iter_{t}" / "red_adapter"))
    return _write_attacks(ctx, t, records, {
        "trainer_log": info["log_history"], "processes": processes,
        "seconds": {"total": info["seconds"], "rollouts": info["rollout_seconds"], **scorer.seconds}})


def seed_attack_phase(ctx: RunContext, t: int, seed: int) -> dict[str, Any]:
    """The ``refusal_sft`` control's "red" phase: no Red LLM, seed-train attacks instead.

    As many attacks as a red phase makes, drawn without replacement from the seed attacks' train
    split (a fresh draw each iteration), answered by the current Target and judged, so the target
    phase selects (at random, the variant's selector) and tunes on them exactly as DART's does.
    Nothing is trained here; the files are the red phase's, without an adapter.
    """
    from llmsafety.data import load_seed_attacks
    from llmsafety.diversity import global_novelty
    from llmsafety.models import generate

    cfg = ctx.config
    t0 = time.perf_counter()
    pool = load_seed_attacks(split="train")
    n = min(len(pool), cfg.red_steps * cfg.red_prompts_per_step * cfg.red_generations)
    picked = pool.iloc[np.random.default_rng(seed).permutation(len(pool))[:n]]
    target = ctx.load_model("target", ctx.target_adapter(t - 1))
    records = [AttackRecord(attack=a, category=c) for a, c in zip(picked["prompt"], picked["taxonomy_id"])]
    attacks = [r.attack for r in records]
    replies = generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                       temperature=0 if cfg.red_reward_greedy else cfg.target_temperature, batch_size=cfg.batch_size,
                       seed=seed, progress=False)
    scores = ctx.judge(attacks, replies).scores
    embeddings = ctx.embed(attacks).astype(np.float32)
    novelty = global_novelty(embeddings, ctx.archive_embeddings(t), kind=cfg.novelty_kind)
    for r, reply, harm, nov, emb in zip(records, replies, scores, novelty, embeddings):
        r.reply, r.harm, r.novelty, r.embedding = reply, harm, float(nov), emb
    return _write_attacks(ctx, t, records, {
        "trainer_log": [], "source": "seed attacks (train split), no Red LLM",
        "seconds": {"total": time.perf_counter() - t0}})


def _write_attacks(ctx: RunContext, t: int, records: list[AttackRecord], log: dict[str, Any]) -> dict[str, Any]:
    """attacks.jsonl, attack_embeddings.npy (row for row) and red_log.json of iteration t."""
    it_dir = ctx.out / f"iter_{t}"
    embeddings = np.stack([r.embedding for r in records]).astype(np.float32)  # [n_attacks, dim]
    log = {"red_metrics": red_side_metrics(records, embeddings, ctx.config.harm_threshold), **log}
    np.save(it_dir / "attack_embeddings.npy", embeddings)  # np.save is not atomic: written before the marker
    write_jsonl_numpy(it_dir / "attacks.jsonl", [r.to_json() for r in records])
    write_json_numpy(it_dir / "red_log.json", log)
    return log


def red_side_metrics(records: list[AttackRecord], embeddings: np.ndarray, threshold: float) -> dict[str, float]:
    """Attack success rate, mean harm, novelty and diversity of one iteration's attacks."""
    from llmsafety.diversity import distinct_n, embedding_diversity, self_bleu

    harm = np.array([np.nan if r.harm is None else r.harm for r in records], dtype=float)
    scored = harm[~np.isnan(harm)]  # an unscored attack is neither a success nor a failure
    texts = [r.attack for r in records if r.attack]
    out = {
        "attack_success_rate": float(np.mean(scored >= threshold)) if len(scored) else float("nan"),
        "mean_harm": float(np.mean(scored)) if len(scored) else float("nan"),
        "n_unscored_attacks": int(len(harm) - len(scored)),
        "mean_novelty": float(np.mean([np.nan if r.novelty is None else r.novelty for r in records])),
        "n_attacks": len(records),
        "n_distinct_attacks": len(set(texts)),
    }
    on_goal = [r.on_goal for r in records if r.on_goal is not None]
    if on_goal:  # goal-conditioned harm was on
        out["mean_on_goal"] = float(np.mean(on_goal))
    p_request = [r.harmful_request for r in records if r.harmful_request is not None]
    if p_request:  # request-gated harm was on
        out["mean_harmful_request"] = float(np.mean(p_request))
    if len(texts) >= 2:
        out["self_bleu"] = float(self_bleu(texts, sample=64, seed=0))
        out["distinct_2"] = float(distinct_n(texts, 2))
        out["embedding_diversity"] = float(embedding_diversity(embeddings[[bool(r.attack) for r in records]]))
    return out


# ============================================================================ 2. target: select and tune

def target_phase(ctx: RunContext, t: int) -> dict[str, Any]:
    """Active-learning selection of iteration t's attacks, safe replies, LoRA SFT of the Target."""
    from transformers import set_seed

    from llmsafety.judges import RefusalJudge
    from llmsafety.models import generate

    cfg = ctx.config
    seed = phase_seed(cfg.seed, f"target_{t}")
    set_seed(seed)
    it_dir = ctx.out / f"iter_{t}"
    seconds: dict[str, float] = {}
    # one record per distinct attack; its harm is the red phase's reply, the first of K samples
    unique: dict[str, AttackRecord] = {}
    for row in read_jsonl(it_dir / "attacks.jsonl"):
        record = AttackRecord.from_json(row)
        if record.attack:
            unique.setdefault(record.attack, record)
    rows = list(unique.values())
    attacks = [r.attack for r in rows]
    target = ctx.load_model("target", ctx.target_adapter(t - 1), fresh_lora=(t == 1), trainable=True)
    if not distributed.is_main_process():
        # On N processes the main one samples, selects and writes the safe replies (below); the
        # others only join the data-parallel SFT, on the examples the main process sends them.
        examples = distributed.broadcast(None)
        if examples:
            run_target_sft(target=target, examples=examples, config=cfg,
                           output_dir=Path(tempfile.mkdtemp(prefix="llmsafety-sft-")), seed=seed)
        return {}

    # (a) how uncertain is each verdict: K-1 more sampled replies, judged (harm: [n_attacks, K])
    t0 = time.perf_counter()
    k_more = cfg.uncertainty_samples - 1
    harm = np.full((len(rows), cfg.uncertainty_samples), np.nan)
    harm[:, 0] = [np.nan if r.harm is None else r.harm for r in rows]
    if k_more and rows and cfg.selector == "uncertainty":
        more = generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                        temperature=cfg.target_temperature, batch_size=cfg.batch_size, seed=seed,
                        num_return_sequences=k_more, progress="sampling replies" if ctx.progress else False)
        if k_more == 1:  # generate returns plain strings for one sequence per prompt
            more = [[m] for m in more]
        flat_prompts = [a for a in attacks for _ in range(k_more)]
        flat_scores = ctx.judge(flat_prompts, [x for group in more for x in group]).scores
        harm[:, 1:] = np.array([np.nan if s is None else s for s in flat_scores]).reshape(len(rows), k_more)
    seconds["uncertainty_sampling"] = time.perf_counter() - t0

    # (b) select within the budget
    t0 = time.perf_counter()
    chosen = select_for_safety_tuning(harm, strategy=cfg.selector, budget=cfg.selection_budget,
                                      threshold=cfg.harm_threshold, seed=seed)
    uncertainty = uncertainty_scores(harm, cfg.harm_threshold) if len(rows) else np.zeros(0)
    seconds["selection"] = time.perf_counter() - t0

    # (c) a safe reply for each selected attack (context distillation), and the benign mix
    t0 = time.perf_counter()
    selected = [attacks[i] for i in chosen]
    refusal = RefusalJudge()
    pool = ctx.eval_sets.benign_train
    benign = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))[: cfg.benign_mix]]
    # One greedy pass writes both: candidate safe replies (the attack under the safety system prompt)
    # and the Target's own plain replies to benign prompts. One decoding loop instead of two: its
    # per-token overhead, not the batch size, is what generation costs on a CPU.
    with_system = [[{"role": "system", "content": cfg.safety_system_prompt}, {"role": "user", "content": a}]
                   for a in selected]
    replies = generate(target, with_system + benign, max_new_tokens=cfg.target_max_new_tokens, temperature=0.0,
                       batch_size=cfg.batch_size, seed=seed, progress=False) if with_system or benign else []
    candidates, benign_replies = replies[: len(selected)], replies[len(selected):]
    safe, sources = [], []
    if selected:
        safe, sources = safe_replies(selected, candidates, ctx.judge, threshold=cfg.harm_threshold,
                                     refusal_fn=refusal.is_refusal)
    # the benign replies are kept only when they are not refusals
    keep = [i for i, refused in enumerate(refusal.is_refusal(benign_replies)) if not refused] if benign else []
    seconds["safe_replies"] = time.perf_counter() - t0

    # (d) LoRA SFT of the Target on both
    examples = sft_examples(selected, safe) + sft_examples([benign[i] for i in keep], [benign_replies[i] for i in keep])
    examples = distributed.broadcast(examples)
    info = {"losses": [], "seconds": 0.0}
    if examples:
        info = run_target_sft(target=target, examples=examples, config=cfg, output_dir=it_dir / "_trainer", seed=seed)
    seconds["sft"] = info["seconds"]
    target.model.save_pretrained(str(it_dir / "target_adapter"))
    selection = [{"attack": attacks[i], "category": rows[i].category, "harm_samples": harm[i].tolist(),
                  "uncertainty": float(uncertainty[i]), "safe_reply": safe[j], "reply_source": sources[j]}
                 for j, i in enumerate(chosen)]
    write_jsonl_numpy(it_dir / "selection.jsonl", selection)
    log = {"n_attacks": len(rows), "n_selected": len(chosen), "n_benign": len(keep),
           "self_reply_rate": float(np.mean([s == "self" for s in sources])) if sources else float("nan"),
           "sft_losses": info["losses"], "seconds": seconds}
    write_json_numpy(it_dir / "target_log.json", log)
    return log


# ============================================================================ 3. eval: grade the Target

def eval_phase(ctx: RunContext, t: int) -> dict[str, Any]:
    """Greedy replies of the Target after iteration t to the held-out sets, graded twice: by the
    evaluation judge (the numbers) and by the training judge (kept beside, for comparison)."""
    from transformers import set_seed

    cfg = ctx.config
    if not distributed.is_main_process():  # ~150 greedy replies: the main process alone, the others wait
        return {}
    seed = phase_seed(cfg.seed, f"eval_{t}")
    set_seed(seed)
    prompted = cfg.variant == "system_prompt" and t > 0
    target = ctx.load_model("target", None if prompted else ctx.target_adapter(t))
    sets = ctx.eval_sets
    t0 = time.perf_counter()
    ev = evaluate_target(target, ctx.eval_judge, sets.harmful, sets.benign_eval,
                         benign_sources=sets.benign_eval_sources, outcome_fn=ctx.outcomes.outcomes,
                         system=cfg.safety_system_prompt if prompted else None,
                         harm_threshold=cfg.harm_threshold, max_new_tokens=cfg.eval_max_new_tokens,
                         batch_size=cfg.batch_size, n_boot=cfg.bootstrap_samples, seed=seed, progress=ctx.progress)
    harmful_records = [r for r in ev["records"] if "harm" in r]
    train_view = ctx.judge([r["prompt"] for r in harmful_records], [r["reply"] for r in harmful_records])
    for r, score in zip(harmful_records, train_view.scores):
        r["train_judge_harm"] = score
    ev["seconds"] = time.perf_counter() - t0
    write_json_numpy(ctx.out / f"eval_{t}.json", ev)
    return ev


#: What each kind of phase runs; :func:`llmsafety.dart.loop.phase_names` gives their order.
PHASES = {"eval": eval_phase, "red": red_phase, "target": target_phase}


# ============================================================================ small helpers

def _category_names() -> dict[str, str]:
    try:
        from llmsafety.taxonomy import load_taxonomy

        return {node.id: node.name for node in load_taxonomy().walk()}
    except Exception:  # the names only make the red instruction read better
        return {}


def _tqdm_callback(progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class TqdmSteps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.bar = tqdm(total=state.max_steps, desc=desc, leave=False)

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                self.bar.set_postfix(reward=f"{logs['reward']:.3f}")

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()

    return [TqdmSteps()]
