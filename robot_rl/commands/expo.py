"""``robot-rl train expo --base RUN [overrides]``, ``robot-rl train --resume RUN`` and ``robot-rl eval RUN`` for
EXPO runs (a frozen behaviour-cloning base refined by an edit policy and argmax-Q candidate selection).

An EXPO run directory holds ``config.json`` (:class:`~robot_rl.runners.expo.EXPOTrainConfig`), ``metrics.csv``
+ TensorBoard events (losses, temperature, in-training success), ``checkpoint.safetensors``/``.json`` and,
after evaluation, ``eval.json`` and ``report.md`` (held-out episodes of the task's protocol).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tyro

from robot_rl.commands.run_flags import split_run_flags
from robot_rl.io import atomic_write_json, atomic_write_text


def is_expo_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds an EXPO run (its config names a base run and EXPO settings)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return False
    cfg = json.loads(path.read_text())
    return "base" in cfg and "expo" in cfg


def expo_train_main(argv: list[str], resume: Path | None = None) -> None:
    """``robot-rl train expo --base RUN [--out DIR] [--eval-episodes N] [overrides]`` or ``--resume RUN``."""
    from robot_rl.runners.expo import EXPORunner, EXPOTrainConfig

    rest, flags = split_run_flags(argv, {"--out": str, "--eval-episodes": int})
    out, episodes = flags.get("out"), flags.get("eval_episodes")
    if resume is not None:
        if rest or out:
            raise ValueError("--resume continues the saved config; it takes only --eval-episodes")
        run_dir = Path(resume)
        cfg = EXPOTrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    else:
        cfg = tyro.cli(EXPOTrainConfig, args=rest, prog="robot-rl train expo")
        if not cfg.base:
            raise ValueError("robot-rl train expo needs --base RUN (a dp-<task> or mse-<task> run)")
        cfg.base = str(Path(cfg.base).resolve())
        run_dir = Path(out or Path("runs") / f"expo-{Path(cfg.base).name}" / f"seed{cfg.seed}")
        if (run_dir / "checkpoint.json").is_file():
            raise ValueError(f"{run_dir} already holds a run; continue it with `robot-rl train --resume {run_dir}` "
                             "or choose another --out")
    runner = EXPORunner(cfg, run_dir)
    if resume is not None and (run_dir / "checkpoint.json").is_file():
        runner.load(run_dir / "checkpoint", extend=True)  # a config.json with more env_steps extends the run
        print(f"resuming {run_dir} at {runner.env_steps} env steps")
    result = runner.train()
    if runner.logger:
        runner.logger.close()
    if episodes != 0:
        result["eval"] = run_expo_eval(run_dir, episodes)["headline"]
    print(f"run directory : {run_dir}")
    print(f"  checkpoint  : {run_dir / 'checkpoint.safetensors'} (+ .json)")
    print(f"  metrics     : {run_dir / 'metrics.csv'}, TensorBoard: {run_dir / 'tb'}")
    print(json.dumps(result))


def base_note(meta: dict[str, Any]) -> str:
    """How the run's base was used: frozen, or trained further on its imitation loss over successful data."""
    bc = meta.get("base_bc")
    if not bc:
        return "frozen"
    return (f"further-trained ({bc['steps']} imitation steps on a pool of {bc['pool_windows']} windows from the "
            f"demonstrations and {bc['episodes_added']} successful online episodes)")


def run_expo_eval(run_dir: str | Path, episodes: int | None = None) -> dict[str, Any]:
    """Evaluate an EXPO run on its task's held-out episodes (deterministic edits, argmax Q) and write
    ``eval.json`` and ``report.md``."""
    from robot_rl.runners.expo import CandidatePolicy, load_expo
    from sim.registry import get_task

    run_dir = Path(run_dir)
    cfg, policy, agent, meta = load_expo(run_dir)
    task = get_task(cfg.task)
    ecfg = task.evaluation.config_cls()
    n = ecfg.episodes if episodes is None else episodes
    from robot_rl.runners.resip import task_config

    result = task.evaluate(CandidatePolicy(policy, agent, cfg.seed, cfg.wrench), task_config(cfg.task, cfg.wrench),
                           ecfg, episodes=n)
    ok = task.evaluation.passes(result, ecfg)
    summary = {k: v for k, v in result.items() if k != "traces"} | {
        "passed": ok, "env_steps": meta["env_steps"], "base": cfg.base, "candidates": cfg.expo.num_candidates,
        "edit_scale": cfg.expo.edit_scale, "env_steps_to_target": meta["first_pass"]}
    atomic_write_json(run_dir / "eval.json", summary)
    lines = [f"# Evaluation of `{run_dir}`", "",
             f"EXPO on the {base_note(meta)} base `{cfg.base}` (task `{task.name}`), seed {cfg.seed}, "
             f"{meta['env_steps']} env steps; {cfg.expo.num_candidates} base chunks where one is due (the "
             f"winner runs its n_action_steps) and their edits (at most {cfg.expo.edit_scale} normalised), mean "
             f"edits, argmax of the ensemble-mean Q; "
             f"{n} held-out episodes from seed {result['seed']}.", "",
             f"**{task.evaluation.summary(result)}** — bar success ≥ {ecfg.success_bar:.0%}: "
             f"{'PASSED' if ok else 'not passed'}.", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(lines))
    summary["report"] = str(run_dir / "report.md")
    summary["headline"] = {"success": result["success"], "mean_return": result["mean_return"], "passed": ok}
    return summary
