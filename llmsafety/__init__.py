"""llmsafety: learn and do LLM safety in Jupyter.

Modules, one concept each:

- ``llmsafety.taxonomy``  the survey's taxonomy (arXiv 2412.17686) as a tree
- ``llmsafety.papers``    its curated paper list as a DataFrame, search, BibTeX
- ``llmsafety.models``    chat models (embedded SmolLM2-135M-Instruct) and the MiniLM embedder
- ``llmsafety.data``      Anthropic hh-rlhf harmless, seed attacks, benign prompts
- ``llmsafety.judges``    harm judges with one protocol: ``judge(prompts, responses)``
- ``llmsafety.diversity`` global novelty, self-BLEU, distinct-n, the attack archive
- ``llmsafety.dart``      Deep Adversarial Automated Red Teaming (arXiv 2407.03876v1)
- ``llmsafety.exercises`` the lessons' checked exercises

The course's other areas, a module each: ``alignment`` (SFT/DPO), ``jailbreaks``, ``gcg`` and
``defenses`` (lesson 07), ``refusal_direction`` (08), ``bias`` and ``toxicity`` (09), ``privacy``
(10), ``watermark`` (11), ``agents`` and ``behaviour_evals`` (12), ``eval_report`` (13).
"""

__version__ = "0.1.0"
