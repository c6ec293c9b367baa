"""The paper's experiment: the same training under several recipes and seeds, compared.

``hearby sweep --out DIR --recipes none ts ps ts+ps --seeds 0 1 2`` trains every
(recipe, seed) run that is not finished (each run resumes from its checkpoint, so the whole
experiment is a resumable background job: rerun the same command after an interruption),
evaluates every run whose ``eval.json`` is missing or older than its checkpoint, and
writes ``summary.md`` / ``summary.json``: locality mean and spread over seeds, overall and
within genre, linear-probe accuracy, and the directions McCallum et al. (ICASSP 2024)
report, each checked against the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.checkpoint import CHECKPOINT
from trainer.config import TrainConfig, add_config_arguments, config_from_args, with_overrides
from trainer.evaluate import Evaluation, Locality, evaluate_run, mean_locality

DEFAULT_RECIPES = ("none", "ts", "ps", "ts+ps")
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Direction:
    """One claim of the paper: ``recipe`` moves ``attribute``'s locality vs. ``baseline``."""

    recipe: str
    baseline: str
    attribute: str
    sign: int  # -1: the recipe lowers it, +1: raises it
    view: str  # "overall" or "within genre"

    def describe(self) -> str:
        """E.g. "ps lowers key locality vs none (within genre)"."""
        verb = "lowers" if self.sign < 0 else "raises"
        return f"{self.recipe} {verb} {self.attribute} locality vs {self.baseline} ({self.view})"


# Pitch-shifting a pair removes key as a way to match it, time-stretching removes tempo;
# what is left to match on is genre, instrumentation and mood.
PAPER_DIRECTIONS = (
    Direction("ps", "none", "key", -1, "within genre"),
    Direction("ts", "none", "tempo", -1, "within genre"),
    Direction("ts+ps", "none", "key", -1, "within genre"),
    Direction("ts+ps", "none", "tempo", -1, "within genre"),
    Direction("ts", "none", "genre", +1, "overall"),
    Direction("ps", "none", "genre", +1, "overall"),
    Direction("ts+ps", "none", "genre", +1, "overall"),
    Direction("ts+ps", "none", "instrument", +1, "overall"),
    Direction("ts+ps", "none", "mood", +1, "overall"),
)


def run_folder(out: Path, recipe: str, seed: int) -> Path:
    """Where one (recipe, seed) run lives inside the experiment folder."""
    return out / f"{recipe}-s{seed}"


def finished_steps(run: Path) -> int:
    """Steps a run has completed (0 when it has not started)."""
    metrics = run / "metrics.json"
    if not metrics.exists():
        return 0
    loss = json.loads(metrics.read_text())["loss"]
    return int(loss[-1]["step"]) if loss else 0


def cached_evaluation(run: Path) -> Evaluation | None:
    """The run's ``eval.json`` if it is at least as new as its checkpoint."""
    path = run / "eval.json"
    if not path.exists() or path.stat().st_mtime < (run / CHECKPOINT).stat().st_mtime:
        return None
    data = json.loads(path.read_text())
    return Evaluation.from_dict(data) if "within_genre" in data else None


def run_experiment(
    base: TrainConfig,
    out: Path,
    recipes: Sequence[str] = DEFAULT_RECIPES,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    progress: bool = True,
) -> list[Evaluation]:
    """Trains and evaluates what is missing; returns one evaluation per (recipe, seed)."""
    from trainer.train import train  # torch-heavy; only when the experiment runs

    evaluations = []
    # Seeds outermost: after the first pass every recipe has a result to look at.
    for seed in seeds:
        for name in recipes:
            folder = run_folder(out, name, seed)
            cfg = with_overrides(base, recipe=name, seed=seed, out=str(folder))
            if finished_steps(folder) < cfg.steps:
                logging.getLogger(__name__).info("training %s", folder)
                train(cfg, progress=progress)
    for seed in seeds:
        for name in recipes:
            folder = run_folder(out, name, seed)
            evaluation = cached_evaluation(folder) or evaluate_run(folder, progress=progress)
            evaluations.append(evaluation)
    return evaluations


# -- aggregation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Mean and (population) standard deviation over seeds."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


def _spread(values: Sequence[float]) -> Spread:
    return Spread(float(np.mean(values)), float(np.std(values)), len(values))


def _view(evaluation: Evaluation, view: str) -> list[Locality]:
    if view == "overall":
        return evaluation.locality
    return mean_locality(evaluation.within_genre)


def aggregate(
    evaluations: Sequence[Evaluation], view: str, k: int
) -> tuple[dict[str, dict[str, Spread]], dict[str, float]]:
    """Per recipe and attribute, the locality spread at ``k``; and attribute -> chance rate."""
    values: dict[str, dict[str, list[float]]] = {}
    chance: dict[str, float] = {}
    for e in evaluations:
        for r in _view(e, view):
            if r.k == k:
                values.setdefault(e.recipe, {}).setdefault(r.attribute, []).append(r.value)
                chance[r.attribute] = r.chance
    table = {rec: {a: _spread(v) for a, v in attrs.items()} for rec, attrs in values.items()}
    return table, chance


def aggregate_probe(evaluations: Sequence[Evaluation]) -> dict[str, dict[str, Spread]]:
    """Per recipe and attribute, the held-out linear-probe accuracy spread."""
    values: dict[str, dict[str, list[float]]] = {}
    for e in evaluations:
        for attribute, accuracy in e.probe.items():
            values.setdefault(e.recipe, {}).setdefault(attribute, []).append(accuracy)
    return {rec: {a: _spread(v) for a, v in attrs.items()} for rec, attrs in values.items()}


def _markdown(
    table: dict[str, dict[str, Spread]], recipes: Sequence[str], chance: dict[str, float] | None
) -> list[str]:
    attributes = list(dict.fromkeys(a for rec in recipes for a in table.get(rec, {})))
    head = ["attribute", *(["chance"] if chance is not None else []), *recipes]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for a in attributes:
        cells = [a, *([f"{chance[a]:.3f}"] if chance is not None else [])]
        cells += [str(table[rec][a]) if a in table.get(rec, {}) else "-" for rec in recipes]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def check_direction(
    direction: Direction, evaluations: Sequence[Evaluation], k: int
) -> tuple[float, float, bool | None] | None:
    """(difference of means, larger of the two spreads, shows) or None if a recipe is absent.

    A direction "shows" when the difference has the paper's sign and exceeds both runs'
    seed spread: a difference inside seed noise is not evidence either way. With a single
    seed there is no spread to judge against, and ``shows`` is None (undecided).
    """
    table, _ = aggregate(evaluations, direction.view, k)
    try:
        a = table[direction.recipe][direction.attribute]
        b = table[direction.baseline][direction.attribute]
    except KeyError:
        return None
    delta, noise = a.mean - b.mean, max(a.std, b.std)
    if min(a.n, b.n) < 2:
        return delta, noise, None
    return delta, noise, delta * direction.sign > noise


def summary(evaluations: Sequence[Evaluation], recipes: Sequence[str], k: int) -> str:
    """Markdown: locality overall and within genre, probe accuracy, the paper's directions."""
    seeds = len(evaluations) // max(1, len(recipes))
    lines = [f"Mean ± standard deviation over {seeds} seed(s); locality at k = {k}.", ""]
    for view in ("overall", "within genre"):
        table, chance = aggregate(evaluations, view, k)
        lines += [f"**Locality, {view}**", "", *_markdown(table, recipes, chance), ""]
    lines += [
        "**Linear-probe accuracy (held-out tracks)**",
        "",
        *_markdown(aggregate_probe(evaluations), recipes, None),
        "",
        "**The paper's directions**",
        "",
    ]
    for direction in PAPER_DIRECTIONS:
        checked = check_direction(direction, evaluations, k)
        if checked is None:
            continue
        delta, noise, shows = checked
        verdict = {True: "shows", False: "does NOT show", None: "undecided (one seed)"}[shows]
        lines.append(
            f"- {direction.describe()}: {verdict} "
            f"(difference {delta:+.3f}, seed spread {noise:.3f})"
        )
    return "\n".join(lines)


def write_summary(
    out: Path, evaluations: Sequence[Evaluation], recipes: Sequence[str], k: int
) -> str:
    """Writes ``summary.md`` and ``summary.json`` (every evaluation) into ``out``."""
    text = summary(evaluations, recipes, k)
    (out / "summary.md").write_text(text + "\n")
    (out / "summary.json").write_text(
        json.dumps({"k": k, "runs": [e.to_dict() for e in evaluations]}, indent=1)
    )
    return text


# -- command line -----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Experiment folder, recipes, seeds, and the training config shared by all runs."""
    parser.add_argument("--out", type=Path, required=True, help="experiment folder (resumable)")
    parser.add_argument(
        "--recipes", nargs="+", default=list(DEFAULT_RECIPES), help="recipes to compare"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="seeds per recipe"
    )
    add_config_arguments(parser, " shared by every run")
    parser.add_argument("--k", type=int, default=5, help="neighbourhood size of the tables (5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby sweep``: prints the summary, writes it into --out."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        base = config_from_args(args)
        from trainer.augment import recipe

        for name in args.recipes:
            recipe(name)  # unknown recipe names fail before hours of training
        args.out.mkdir(parents=True, exist_ok=True)
        evaluations = run_experiment(
            base, args.out, args.recipes, args.seeds, progress=not args.no_progress
        )
    except (ValueError, KeyError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(write_summary(args.out, evaluations, args.recipes, args.k) + "\n")
    return 0
