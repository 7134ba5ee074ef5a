"""run_dart: the adversarial loop, persisted phase by phase so a killed run resumes exactly.

Phases, in order: ``eval_0`` (the Target before any tuning), then for t = 1..T:
``red_t`` (GRPO on the Red LLM against the current Target), ``target_t`` (active-learning
selection + safety SFT of the Target), ``eval_t`` (held-out evaluation; only the last one when
``eval_each_iteration`` is off).

Every phase writes its outputs to ``output_dir`` and then appends its name to ``state.json``,
with a manifest of the files it wrote (:mod:`llmsafety.dart.manifest`); a phase that did not
finish (crash, Ctrl-C, SIGTERM) leaves no name and is redone from its start on resume. Resume and
:func:`load_result` check the manifests: a missing, cut or changed file is named with its phase,
resume redoes that phase and those after it, ``load_result`` refuses to give numbers. Every phase
loads the models it needs from disk (base checkpoint + the adapter of the last finished phase)
and seeds itself from ``(seed, iteration, phase)``, so a resumed run computes exactly what an
uninterrupted one does.

Layout::

    config.json  state.json  metrics.json  eval_0.json  eval_1.json ...
    iter_1/red_adapter/  attacks.jsonl  attack_embeddings.npy  red_log.json
           target_adapter/  selection.jsonl  target_log.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from llmsafety._io import DamagedFileError, read_json, read_jsonl, write_json, write_jsonl
from llmsafety.dart import manifest
from llmsafety.dart.config import DARTConfig
from llmsafety.dart.evaluate import evaluate_target, summarize
from llmsafety.dart.red import attach_lora, build_red_dataset, run_red_phase
from llmsafety.dart.rewards import RedRewards
from llmsafety.dart.selection import select_for_safety_tuning, uncertainty_scores
from llmsafety.dart.target import run_target_sft, safe_replies, sft_examples

# ============================================================================ small helpers

def phase_names(config: DARTConfig) -> list[str]:
    if config.variant == "system_prompt":  # a control with no training: before, and the prompted Target
        return ["eval_0", f"eval_{config.iterations}"]
    names = ["eval_0"]
    for t in range(1, config.iterations + 1):
        names += [f"red_{t}", f"target_{t}"]
        if config.eval_each_iteration or t == config.iterations:
            names.append(f"eval_{t}")
    return names


def phase_seed(seed: int, phase: str) -> int:
    """A stable seed per (run seed, phase): independent of what ran before in this process."""
    digest = hashlib.sha256(f"{seed}:{phase}".encode()).hexdigest()
    return int(digest[:8], 16)


def _write_json(path: Path, data: Any) -> None:
    write_json(path, data, default=_json_default)


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _read_json(path: Path) -> Any:
    return read_json(path)  # errors name the file


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_jsonl(path, rows, default=_json_default)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)  # errors name the file and line; a last line without newline is torn


def _stable_half(ids: list[str], salt: str = "benign") -> tuple[list[int], list[int]]:
    """Split items into two halves by a hash of their id: stable across versions and runs."""
    first, second = [], []
    for i, item in enumerate(ids):
        (first if int(hashlib.sha256(f"{salt}:{item}".encode()).hexdigest(), 16) % 2 == 0 else second).append(i)
    return first, second


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


@dataclass
class EvalSets:
    harmful: pd.DataFrame  # prompt, source, category
    benign_eval: list[str]
    benign_train: list[str]
    benign_eval_sources: list[str] = field(default_factory=list)  # one per benign_eval prompt


def build_eval_sets(config: DARTConfig) -> EvalSets:
    """Held-out prompts whose harmfulness a careful reader checked.

    Harmful: hh-rlhf test prompts labelled harmful that the judge never trained on (source ``hh``,
    the headline) and the seed attacks' eval split (``seed_eval``, in-distribution). Benign, for
    over-refusal: the eval half of the benign-but-alarming prompts (``benign``; the other half is
    mixed into SFT) and held-out hh prompts labelled benign (``hh_benign``).
    """
    from llmsafety.data import load_benign_prompts, load_seed_attacks

    frames = []
    if config.eval_hh_prompts:
        frames.append(pd.DataFrame({"prompt": hh_heldout_prompts(config.eval_hh_prompts, config.hh_source),
                                    "source": "hh", "category": "hh-rlhf"}))
    seed_eval = load_seed_attacks(split="eval")
    if config.eval_seed_prompts:  # 0 = all of them
        seed_eval = seed_eval.sample(n=min(config.eval_seed_prompts, len(seed_eval)), random_state=0)
    frames.append(pd.DataFrame({"prompt": seed_eval["prompt"].values, "source": "seed_eval",
                                "category": seed_eval["taxonomy_id"].values}))
    benign = load_benign_prompts()
    train_idx, eval_idx = _stable_half(list(benign["id"]))
    benign_eval = list(benign["prompt"].iloc[eval_idx])
    if config.eval_benign_prompts:
        benign_eval = benign_eval[: config.eval_benign_prompts]
    hh_benign = (hh_heldout_prompts(config.eval_hh_benign_prompts, config.hh_source, label="benign")
                 if config.eval_hh_benign_prompts else [])
    return EvalSets(pd.concat(frames, ignore_index=True), benign_eval + hh_benign,
                    list(benign["prompt"].iloc[train_idx]), ["benign"] * len(benign_eval) + ["hh_benign"] * len(hh_benign))


def hh_heldout_prompts(n: int, source: str | None = None, label: str | None = "harmful") -> list[str]:
    """``n`` hh-rlhf harmless test prompts from the part the default judge was not trained on.

    ``label``: keep prompts a careful reader labelled so (``harmful``, ``benign``; None: all; the
    labels ship with the package, see ``benchmarks/results/prompt_labels/``). ``source=None`` reads
    the prompts shipped with the package (no network); a path or ``"hub"`` reads the full pairs as
    :func:`llmsafety.data.load_hh_harmless` does. Both give the same list.
    """
    from llmsafety.data import load_hh_harmless, load_hh_prompts
    from llmsafety.judges import hh_judge_split

    shipped = load_hh_prompts("heldout")  # also the labels, which only the shipped copy carries
    if source is None:
        heldout = shipped
    else:
        frame = load_hh_harmless("test", source=source)
        heldout = frame[hh_judge_split(frame) == "heldout"]
    prompts = list(dict.fromkeys(p for p in heldout["prompt"] if p and p.strip()))
    if label is not None:
        labels = dict(zip(shipped["prompt"], shipped["label"]))
        prompts = [p for p in prompts if labels.get(p) == label]
    if n > len(prompts):
        raise ValueError(f"asked for {n} held-out hh prompts labelled {label!r} but only {len(prompts)} exist")
    rng = np.random.default_rng(12345)  # fixed: every run and variant sees the same prompts
    return [prompts[i] for i in sorted(rng.choice(len(prompts), size=n, replace=False))]


# ============================================================================ the result

@dataclass
class DARTResult:
    """Everything a run produced; ``load_result(dir)`` rebuilds it from disk."""

    output_dir: Path
    config: DARTConfig
    completed: list[str]
    evaluations: dict[int, dict[str, Any]] = field(default_factory=dict)
    iterations: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.completed == phase_names(self.config)

    def attacks(self, iteration: int | None = None) -> pd.DataFrame:
        its = [iteration] if iteration is not None else sorted(self.iterations)
        frames = [pd.DataFrame(self.iterations[t]["attacks"]).assign(iteration=t) for t in its if t in self.iterations]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def metrics(self) -> pd.DataFrame:
        """One row per evaluated iteration (0 = before tuning) with Target and Red metrics."""
        rows = []
        for t in sorted(self.evaluations):
            ev = self.evaluations[t]
            row = {"iteration": t, "violation_rate": ev["violation_rate"],
                   "ci_low": ev["violation_ci"][0], "ci_high": ev["violation_ci"][1],
                   "over_refusal": ev.get("over_refusal", float("nan"))}
            for source, s in ev.get("by_source", {}).items():
                row[f"violation_{source}"] = s["violation_rate"]
            row.update({k: v for k, v in self.iterations.get(t, {}).get("red_metrics", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"DART run {self.output_dir} (variant {self.config.variant}, seed {self.config.seed}): "
                 f"{len(self.completed)}/{len(phase_names(self.config))} phases done"]
        for t in sorted(self.evaluations):
            lines.append(f"  after iteration {t}: {summarize(self.evaluations[t])}" if t else
                         f"  before tuning:     {summarize(self.evaluations[t])}")
        if 0 in self.evaluations and len(self.evaluations) > 1:
            first, last = self.evaluations[0]["violation_rate"], self.evaluations[max(self.evaluations)]["violation_rate"]
            if first > 0:
                lines.append(f"  violation risk removed: {1 - last / first:.1%}")
        return "\n".join(lines)


def load_run_config(output_dir: str | Path) -> DARTConfig:
    """The config.json of a run; a torn or invalid one is an error naming it."""
    path = Path(output_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{Path(output_dir)} is not a DART run directory (no config.json)")
    restore = ("restore it as the run was started (runs made since manifests keep a copy in state.json "
               "under 'config')")
    try:
        return DARTConfig.from_dict(read_json(path))
    except DamagedFileError as err:
        raise DamagedFileError(path, f"{err.problem}; {restore}") from None
    except (ValueError, TypeError) as err:  # unknown field, bad value: DARTConfig's message names it
        raise ValueError(f"{path}: {err}; {restore}") from None


def checked_state(out: Path, config: DARTConfig) -> tuple[manifest.RunState, manifest.RunCheck]:
    """state.json of a run and the check of its finished phases against their manifests.

    Raises when nothing of the run can be matched to its config: a torn state.json, or a
    config.json edited after phases ran with other values.
    """
    state = manifest.read_state(out)
    changes = manifest.config_changes(state, config.to_dict(), DARTConfig().to_dict())
    if changes:
        raise manifest.RunConfigChangedError(out, changes)
    return state, manifest.check_run(out, state, phase_names(config))


def load_result(output_dir: str | Path) -> DARTResult:
    """The run in ``output_dir`` as far as it got.

    Every finished phase's files are checked first (against its manifest; runs without manifests:
    parsed and cross-checked). A damaged run raises an error naming the file, the phase that wrote
    it and the command that redoes it: it never yields numbers.
    """
    out = Path(output_dir)
    config = load_run_config(out)
    state, check = checked_state(out, config)
    if not check.ok:
        raise manifest.RunDamagedError(out, check)
    result = DARTResult(out, config, list(state.completed))
    for name in result.completed:
        kind, t = name.rsplit("_", 1)
        t = int(t)
        if kind == "eval":
            result.evaluations[t] = _read_json(out / f"eval_{t}.json")
        elif kind == "red":
            it = result.iterations.setdefault(t, {})
            it["attacks"] = _read_jsonl(out / f"iter_{t}" / "attacks.jsonl")
            it.update(_read_json(out / f"iter_{t}" / "red_log.json"))
        elif kind == "target":
            it = result.iterations.setdefault(t, {})
            it["selection"] = _read_jsonl(out / f"iter_{t}" / "selection.jsonl")
            it["target_log"] = _read_json(out / f"iter_{t}" / "target_log.json")
    return result


# ============================================================================ the run

class _Run:
    """Holds the things a run loads once (judge, embedder, eval sets) and runs phases."""

    def __init__(self, config: DARTConfig, out: Path, progress: bool):
        self.config = config
        self.cfg = config.effective()
        self.out = out
        self.progress = progress
        self._judge = None
        self._embedder = None
        self._eval_sets = None
        self._outcomes = None
        self._eval_judge = None
        # Our own bars (phases, generation) say where a run is; the libraries' loading bars are noise.
        import datasets
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()

    # lazily built, shared by phases
    @property
    def judge(self):
        if self._judge is None:
            self._judge = build_judge(self.cfg.judge, self.cfg.device)
        return self._judge

    @property
    def embedder(self):
        if self._embedder is None:
            from llmsafety.models import load_embedder

            self._embedder = load_embedder(self.cfg.embedder, device=self.cfg.device)
        return self._embedder

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
            spec = self.cfg.eval_judge
            self._eval_judge = (self.outcomes if spec == "outcome" else self.judge if spec == self.cfg.judge
                                else build_judge(spec, self.cfg.device))
        return self._eval_judge

    @property
    def eval_sets(self) -> EvalSets:
        if self._eval_sets is None:
            self._eval_sets = build_eval_sets(self.cfg)
        return self._eval_sets

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(list(texts), batch_size=64, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)

    def load_model(self, which: str, adapter: Path | None, *, fresh_lora: bool = False, trainable: bool = False):
        from llmsafety.models import load_chat_model

        cfg = self.cfg
        model = load_chat_model(cfg.red_model if which == "red" else cfg.target_model,
                                device=cfg.device, dtype=cfg.dtype)
        r = cfg.red_lora_r if which == "red" else cfg.target_lora_r
        lora = {"alpha_multiplier": cfg.lora_alpha_multiplier, "dropout": cfg.lora_dropout,
                "target_modules": cfg.lora_target_modules}
        if adapter is not None:
            model.model = attach_lora(model.model, r, adapter, trainable=trainable)
        elif fresh_lora:
            model.model = attach_lora(model.model, r, **lora)
        return model

    def target_adapter(self, t: int) -> Path | None:
        """The Target's adapter after iteration t (None: the untuned model)."""
        return self.out / f"iter_{t}" / "target_adapter" if t >= 1 else None

    def red_adapter(self, t: int) -> Path | None:
        return self.out / f"iter_{t}" / "red_adapter" if t >= 1 else None

    # ------------------------------------------------------------------ phases
    def eval_phase(self, t: int) -> dict[str, Any]:
        from transformers import set_seed

        seed = phase_seed(self.cfg.seed, f"eval_{t}")
        set_seed(seed)
        prompted = self.cfg.variant == "system_prompt" and t > 0
        target = self.load_model("target", None if prompted else self.target_adapter(t))
        sets = self.eval_sets
        t0 = time.perf_counter()
        ev = evaluate_target(target, self.eval_judge, sets.harmful, sets.benign_eval,
                             benign_sources=sets.benign_eval_sources, outcome_fn=self.outcomes.outcomes,
                             system=self.cfg.safety_system_prompt if prompted else None,
                             harm_threshold=self.cfg.harm_threshold, max_new_tokens=self.cfg.eval_max_new_tokens,
                             batch_size=self.cfg.batch_size, n_boot=self.cfg.bootstrap_samples, seed=seed,
                             progress=self.progress)
        # the training judge's view of the same replies, kept beside the evaluation judge's
        harmful_records = [r for r in ev["records"] if "harm" in r]
        train_view = self.judge([r["prompt"] for r in harmful_records], [r["reply"] for r in harmful_records])
        for r, score in zip(harmful_records, train_view.scores):
            r["train_judge_harm"] = score
        ev["seconds"] = time.perf_counter() - t0
        _write_json(self.out / f"eval_{t}.json", ev)
        return ev

    def archive_embeddings(self, before: int) -> np.ndarray:
        """Embeddings of every attack of iterations < ``before`` (DART's global diversity).

        With ``novelty_includes_seeds`` the seed attacks (train split) count as iteration 0: the
        red model gets no novelty for copying its few-shot examples, already in iteration 1.
        """
        from llmsafety.data import load_seed_attacks

        blocks = [np.load(self.out / f"iter_{s}" / "attack_embeddings.npy") for s in range(1, before)]
        if self.cfg.novelty_includes_seeds:
            blocks.insert(0, self.embed(list(load_seed_attacks(split="train")["prompt"])))
        blocks = [b for b in blocks if b.size]
        if not blocks:
            return np.zeros((0, self.embed(["dimension probe"]).shape[1]), dtype=np.float32)
        return np.concatenate(blocks)

    def red_phase(self, t: int) -> dict[str, Any]:
        from transformers import set_seed

        from llmsafety.data import load_seed_attacks
        from llmsafety.models import generate

        cfg = self.cfg
        seed = phase_seed(cfg.seed, f"red_{t}")
        set_seed(seed)
        it_dir = self.out / f"iter_{t}"
        it_dir.mkdir(parents=True, exist_ok=True)
        if cfg.variant == "refusal_sft":
            return self.seed_attack_phase(t, seed)
        red = self.load_model("red", self.red_adapter(t - 1), fresh_lora=True, trainable=True)
        target = self.load_model("target", self.target_adapter(t - 1))
        calls = {"n": 0}

        def reply(attacks: list[str]) -> list[str]:
            calls["n"] += 1
            return generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                            temperature=cfg.target_temperature, batch_size=cfg.batch_size,
                            seed=seed + calls["n"], progress=False)

        rewards = RedRewards(reply_fn=reply, judge=self.judge, embed_fn=self.embed,
                             archive_embeddings=self.archive_embeddings(t), novelty_kind=cfg.novelty_kind,
                             min_attack_words=cfg.min_attack_words)
        names = _category_names()
        dataset = build_red_dataset(load_seed_attacks(split="train"), cfg.red_steps * cfg.red_prompts_per_step,
                                    cfg.red_examples_per_prompt, seed, names)
        info = run_red_phase(red=red, rewards=rewards, dataset=dataset, config=cfg,
                             output_dir=it_dir / "_trainer", seed=seed, callbacks=_tqdm_callback(self.progress, f"red {t}"))
        records = rewards.log.records
        embeddings = np.stack([r.pop("embedding") for r in records]).astype(np.float32)
        red_metrics = red_side_metrics(records, embeddings, cfg.harm_threshold)
        red.model.save_pretrained(str(it_dir / "red_adapter"))
        np.save(it_dir / "attack_embeddings.npy", embeddings)  # np.save is not atomic: written before the marker
        _write_jsonl(it_dir / "attacks.jsonl", records)
        log = {"red_metrics": red_metrics, "trainer_log": info["log_history"],
               "seconds": {"total": info["seconds"], "rollouts": info["rollout_seconds"], **rewards.log.seconds}}
        _write_json(it_dir / "red_log.json", log)
        red = target = None  # free both models (the reward closure above is done with target)
        gc.collect()
        return log

    def seed_attack_phase(self, t: int, seed: int) -> dict[str, Any]:
        """The ``refusal_sft`` control's "red" phase: no Red LLM, seed-train attacks instead.

        As many attacks as a red phase makes, drawn without replacement from the seed attacks'
        train split (a fresh draw each iteration), answered by the current Target and judged, so
        the Target phase selects (at random, the variant's selector) and tunes on them exactly as
        DART's does. Nothing is trained here; the files are the red phase's, without an adapter.
        """
        from llmsafety.data import load_seed_attacks
        from llmsafety.diversity import global_novelty
        from llmsafety.models import generate

        cfg = self.cfg
        it_dir = self.out / f"iter_{t}"
        t0 = time.perf_counter()
        pool = load_seed_attacks(split="train")
        n = min(len(pool), cfg.red_steps * cfg.red_prompts_per_step * cfg.red_generations)
        picked = pool.iloc[np.random.default_rng(seed).permutation(len(pool))[:n]]
        attacks, categories = list(picked["prompt"]), list(picked["taxonomy_id"])
        target = self.load_model("target", self.target_adapter(t - 1))
        replies = generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                           temperature=cfg.target_temperature, batch_size=cfg.batch_size, seed=seed, progress=False)
        scores = self.judge(attacks, replies).scores
        embeddings = self.embed(attacks).astype(np.float32)
        novelty = global_novelty(embeddings, self.archive_embeddings(t), kind=cfg.novelty_kind)
        records = [{"step": 0, "attack": a, "category": c, "reply": r, "harm": h, "harm_reason": None,
                    "novelty": float(nv)} for a, c, r, h, nv in zip(attacks, categories, replies, scores, novelty)]
        red_metrics = red_side_metrics(records, embeddings, cfg.harm_threshold)
        np.save(it_dir / "attack_embeddings.npy", embeddings)
        _write_jsonl(it_dir / "attacks.jsonl", records)
        log = {"red_metrics": red_metrics, "trainer_log": [], "source": "seed attacks (train split), no Red LLM",
               "seconds": {"total": time.perf_counter() - t0}}
        _write_json(it_dir / "red_log.json", log)
        del target
        gc.collect()
        return log

    def target_phase(self, t: int) -> dict[str, Any]:
        from transformers import set_seed

        from llmsafety.judges import RefusalJudge
        from llmsafety.models import generate

        cfg = self.cfg
        seed = phase_seed(cfg.seed, f"target_{t}")
        set_seed(seed)
        it_dir = self.out / f"iter_{t}"
        seconds: dict[str, float] = {}
        records = [r for r in _read_jsonl(it_dir / "attacks.jsonl") if r["attack"]]
        # one row per distinct attack; its first harm sample is the red phase's reply
        unique: dict[str, dict[str, Any]] = {}
        for r in records:
            unique.setdefault(r["attack"], r)
        rows = list(unique.values())
        target = self.load_model("target", self.target_adapter(t - 1), fresh_lora=(t == 1), trainable=True)
        attacks = [r["attack"] for r in rows]

        t0 = time.perf_counter()
        k_more = cfg.uncertainty_samples - 1
        harm = np.full((len(rows), cfg.uncertainty_samples), np.nan)
        harm[:, 0] = [np.nan if r["harm"] is None else r["harm"] for r in rows]
        if k_more and rows and cfg.selector == "uncertainty":
            more = generate(target, attacks, max_new_tokens=cfg.target_max_new_tokens,
                            temperature=cfg.target_temperature, batch_size=cfg.batch_size, seed=seed,
                            num_return_sequences=k_more, progress="sampling replies" if self.progress else False)
            if k_more == 1:  # generate returns plain strings for one sequence per prompt
                more = [[m] for m in more]
            flat_prompts = [a for a in attacks for _ in range(k_more)]
            flat_scores = self.judge(flat_prompts, [x for group in more for x in group]).scores
            harm[:, 1:] = np.array([np.nan if s is None else s for s in flat_scores]).reshape(len(rows), k_more)
        seconds["uncertainty_sampling"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        chosen = select_for_safety_tuning(harm, strategy=cfg.selector, budget=cfg.selection_budget,
                                          threshold=cfg.harm_threshold, seed=seed)
        unc = uncertainty_scores(harm, cfg.harm_threshold) if len(rows) else np.zeros(0)
        seconds["selection"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sel_attacks = [attacks[i] for i in chosen]
        refusal = RefusalJudge()
        if sel_attacks:
            candidates = generate(target, sel_attacks, system=cfg.safety_system_prompt,
                                  max_new_tokens=cfg.target_max_new_tokens, temperature=0.0,
                                  batch_size=cfg.batch_size, seed=seed, progress=False)
            safe, sources = safe_replies(sel_attacks, candidates, self.judge, threshold=cfg.harm_threshold,
                                         refusal_fn=refusal.is_refusal)
        else:
            safe, sources = [], []
        # benign mix: the Target's own plain replies, kept only when they are not refusals
        rng = np.random.default_rng(seed)
        pool = self.eval_sets.benign_train
        benign = [pool[i] for i in rng.permutation(len(pool))[: cfg.benign_mix]]
        benign_replies = generate(target, benign, max_new_tokens=cfg.target_max_new_tokens, temperature=0.0,
                                  batch_size=cfg.batch_size, seed=seed, progress=False) if benign else []
        keep = [i for i, refused in enumerate(refusal.is_refusal(benign_replies)) if not refused] if benign else []
        seconds["safe_replies"] = time.perf_counter() - t0

        examples = sft_examples(sel_attacks, safe) + sft_examples([benign[i] for i in keep], [benign_replies[i] for i in keep])
        info = {"losses": [], "seconds": 0.0}
        if examples:
            info = run_target_sft(target=target, examples=examples, config=cfg, output_dir=it_dir / "_trainer", seed=seed)
        seconds["sft"] = info["seconds"]
        target.model.save_pretrained(str(it_dir / "target_adapter"))
        selection = [{"attack": attacks[i], "category": rows[i]["category"], "harm_samples": harm[i].tolist(),
                      "uncertainty": float(unc[i]), "safe_reply": safe[j], "reply_source": sources[j]}
                     for j, i in enumerate(chosen)]
        _write_jsonl(it_dir / "selection.jsonl", selection)
        log = {"n_attacks": len(rows), "n_selected": len(chosen), "n_benign": len(keep),
               "self_reply_rate": float(np.mean([s == "self" for s in sources])) if sources else float("nan"),
               "sft_losses": info["losses"], "seconds": seconds}
        _write_json(it_dir / "target_log.json", log)
        del target
        gc.collect()
        return log


def red_side_metrics(records: list[dict[str, Any]], embeddings: np.ndarray, threshold: float) -> dict[str, float]:
    """Attack success rate, mean harm, novelty and diversity of one iteration's attacks."""
    from llmsafety.diversity import distinct_n, embedding_diversity, self_bleu

    harm = np.array([np.nan if r["harm"] is None else r["harm"] for r in records], dtype=float)
    scored = harm[~np.isnan(harm)]  # an unscored attack is neither a success nor a failure
    texts = [r["attack"] for r in records if r["attack"]]
    out = {
        "attack_success_rate": float(np.mean(scored >= threshold)) if len(scored) else float("nan"),
        "mean_harm": float(np.mean(scored)) if len(scored) else float("nan"),
        "n_unscored_attacks": int(len(harm) - len(scored)),
        "mean_novelty": float(np.mean([r.get("novelty", np.nan) for r in records])),
        "n_attacks": len(records),
        "n_distinct_attacks": len(set(texts)),
    }
    if len(texts) >= 2:
        out["self_bleu"] = float(self_bleu(texts, sample=64, seed=0))
        out["distinct_2"] = float(distinct_n(texts, 2))
        out["embedding_diversity"] = float(embedding_diversity(embeddings[[bool(r["attack"]) for r in records]]))
    return out


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


def _check_output_dir(out: Path, config: DARTConfig, resume: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / "config.json").exists():
        raise FileExistsError(f"{out} exists and is not a DART run directory: choose another output_dir")
    if not resume:
        raise FileExistsError(f"{out} already holds a DART run. Resume it with resume=True (CLI: --resume), "
                              "or choose another output directory: nothing is overwritten.")
    saved = load_run_config(out)
    if saved != config:
        diff = [f"{f.name}: saved {getattr(saved, f.name)!r} != given {getattr(config, f.name)!r}"
                for f in dataclasses.fields(config) if getattr(saved, f.name) != getattr(config, f.name)]
        raise ValueError(f"cannot resume {out}: its config differs ({'; '.join(diff)}). "
                         "Use the same config, or another output directory.")


def run_dart(
    config: DARTConfig,
    output_dir: str | Path,
    resume: bool = True,
    *,
    progress: bool = True,
    on_phase_end: Callable[[str, DARTResult], None] | None = None,
    max_phases: int | None = None,
) -> DARTResult:
    """Run (or resume) DART; returns every iteration's attacks, replies, scores and metrics.

    ``resume``: an existing run directory with the same config continues where it stopped;
    ``False`` refuses an existing run instead of overwriting it.
    ``on_phase_end(phase, result)``: called after each phase (the notebook dashboard uses it).
    ``max_phases``: stop after this many phases of *this call* (step-by-step runs, tests).

    On resume every finished phase is checked against its manifest: a damaged one is redone, with
    those after it, and a :class:`~llmsafety.dart.manifest.RunDamageWarning` names the file.
    SIGTERM raises :class:`RunTerminated` (a KeyboardInterrupt): the phase under way is not marked.
    """
    if not isinstance(config, DARTConfig):
        raise TypeError(f"config must be a DARTConfig, got {type(config).__name__}")
    config.validate()
    out = Path(output_dir)
    _check_output_dir(out, config, resume)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.json").exists():
        config.save(out / "config.json")
    state = _usable_state(out, config)
    todo = phase_names(config)[len(state.completed):]  # the finished phases are a checked prefix
    if todo:
        _check_writable(out)
    run = _Run(config, out, progress)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(phase_names(config)), initial=len(state.completed), desc="DART phases", disable=not progress)
    done_now = 0
    with _sigterm_raises():
        for phase in todo:
            if max_phases is not None and done_now >= max_phases:
                break
            bar.set_postfix_str(phase)
            kind, t = phase.rsplit("_", 1)
            try:
                getattr(run, f"{kind}_phase")(int(t))
            except BaseException as err:
                print(f"DART: phase {phase} stopped ({type(err).__name__}) before it finished: none of its "
                      f"files count, resume redoes it from its start", file=sys.stderr)
                raise
            # The marker comes last, with the manifest of the files the phase wrote, in one atomic
            # write: a phase is finished with its manifest, or not finished.
            files = manifest.record_phase(out, phase)
            state = manifest.RunState(state.completed + [phase], {**state.manifests, phase: files}, config.to_dict())
            manifest.write_state(out, state)
            done_now += 1
            bar.update(1)
            result = load_result(out)
            _write_json(out / "metrics.json", result.metrics().to_dict(orient="records"))
            if on_phase_end is not None:
                on_phase_end(phase, result)
            release_memory()
    bar.close()
    return load_result(out)


def release_memory() -> None:
    """Give the memory of a finished phase back to the OS.

    A phase's models and trainers die in reference cycles that only the collector frees, and glibc
    keeps freed heap for reuse instead of returning it: measured on one Target phase repeated five
    times in one process, RSS after each was ~1.6 GB as is, ~1.1 GB after ``gc.collect()`` and
    ~0.5 GB after ``malloc_trim(0)``. Elsewhere than glibc the trim is skipped.
    """
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _usable_state(out: Path, config: DARTConfig) -> manifest.RunState:
    """state.json with damaged finished phases dropped: the first damaged one and every phase
    after it (they were computed from it) are redone, with a warning naming the file and phase."""
    state, check = checked_state(out, config)
    if check.ok:
        return state
    manifest.warn_redo(out, check)
    _check_writable(out)
    state = state.keep(check.sound)
    manifest.write_state(out, state)
    # metrics.json holds numbers of the phases just dropped: rewrite it from what is kept
    _write_json(out / "metrics.json", load_result(out).metrics().to_dict(orient="records"))
    return state


def _check_writable(out: Path) -> None:
    """Fail now, not after a phase's minutes of work, when the run directory cannot be written."""
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write_probe.", suffix=".tmp")
    except OSError as err:
        raise PermissionError(err.errno, f"{out} cannot be written ({err.strerror}): a DART run writes each "
                                         "phase's files there. Make it writable, or copy the run to a "
                                         "writable place and resume the copy") from None
    os.close(fd)
    os.unlink(probe)


class RunTerminated(KeyboardInterrupt):
    """The process got SIGTERM during a run.

    Raised like Ctrl-C's KeyboardInterrupt (and a subclass of it, so no ``except Exception`` in a
    library swallows it): the phase under way stops before its marker, temporary files are
    removed on the way out, and resume redoes the phase.
    """


@contextlib.contextmanager
def _sigterm_raises():
    # Python's default for SIGTERM is to die on the spot; then nothing is half-counted either (the
    # marker is written last), but a phase's cleanup does not run and the caller gets no exception.
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return

    def handler(signum, frame):
        raise RunTerminated(f"SIGTERM (signal {signum}) during a DART run")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
