"""``robot-rl train PRESET [overrides]`` and ``robot-rl train --resume DIR`` (also under ``torchrun``: one process
per rank, see :mod:`robot_rl.distributed`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import tyro

from robot_rl import distributed, presets  # noqa: F401  (presets registers the presets)
from robot_rl.commands.bc import bc_train_main, bc_usage_lines, is_bc_run
from robot_rl.commands.expo import is_expo_run
from robot_rl.commands.resip import is_resip_run, resip_train_main, resip_usage_line
from robot_rl.config import PRESETS, TrainConfig, cli_class, get_training_config
from robot_rl.policies.presets import bc_presets
from robot_rl.runs import default_run_dir, load_config, make_runner
from sim.core import Unsupported
from sim.registry import get_task, task_families, task_names


def run_training(cfg: TrainConfig, run_dir: Path, resume: bool = False, evaluate_after: bool = True) -> dict:
    """Train (or continue), export, evaluate; returns a summary of where everything went.

    Under ``torchrun`` every rank trains; rank 0 alone exports and evaluates (the others return the training
    summary)."""
    device = distributed.init(cfg.device)
    if device != cfg.device:
        cfg = dataclasses.replace(cfg, device=device)
    runner = make_runner(cfg, run_dir)
    if resume:
        runner.load(run_dir / "checkpoint")
        if runner.dist.is_main:
            print(f"resuming {run_dir} at {runner.env_steps} env steps"
                  + (f" on {runner.world} ranks" if runner.world > 1 else ""))
    out = runner.train()
    if runner.logger:
        runner.logger.close()
    runner.env.close()  # before export and evaluation build their envs (Isaac Lab: one simulation per process)
    if not runner.dist.is_main:
        return out
    from robot_rl.commands.export import export_run

    try:
        doc = export_run(run_dir)
    except Unsupported as exc:  # the task has no deployment contract: say so, evaluate the checkpoint
        print(f"export skipped: {exc}")
        out["export"] = f"not exported: {exc}"
    else:
        out["export"] = str(run_dir / "export")
        out["export_max_abs_error"] = max(doc["verification"]["max_abs_error_random"],
                                          doc["verification"]["max_abs_error_on_distribution"])
    if evaluate_after:
        from robot_rl.commands.evaluate import run_eval

        summary = run_eval(run_dir)
        out["eval"] = summary["headline"]
        out["report"] = summary["report"]
    return out


def _as(cls: type[TrainConfig], cfg: TrainConfig) -> TrainConfig:
    """``cfg``'s fields in an instance of ``cls`` (the plain class or its typed CLI subclass)."""
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)})


def get_preset_task(name: str) -> str:
    return PRESETS[name][1]().task_name


def _task_line(name: str) -> str:
    spec = get_task(name)
    extra = f" (alias {', '.join(spec.aliases)})" if spec.aliases else ""
    return f"{spec.description}{extra}; env implementations: auto, {', '.join(spec.backends)}"


def train_main(argv: list[str]) -> None:
    """``robot-rl train ...``; under ``torchrun`` the process group is left when training ends."""
    try:
        _train_main(argv)
    finally:
        distributed.shutdown()


def _train_main(argv: list[str]) -> None:
    usage = ("usage: robot-rl train PRESET|TASK [--seed S] [--out DIR] [--device cpu|cuda] [overrides...]\n"
             "       robot-rl train --resume DIR\n"
             "       robot-rl train PRESET|TASK --help   (every option of that preset's or task's config)\n"
             "       torchrun --nproc_per_node N -m robot_rl.cli train ...   (data-parallel, README)\n\n"
             "presets (tuned recipes):\n"
             + "\n".join(f"  {k:26s} {v[0]} [task {get_preset_task(k)}]" for k, v in sorted(PRESETS.items()))
             + "\n\nbehaviour-cloning presets (robot-rl train NAME --demos DIR [--seed S] [--out RUN]):\n"
             + "\n".join(bc_usage_lines())
             + "\n\nresidual RL on a frozen behaviour-cloning base (robot-rl train resip --base RUN [overrides]):\n"
             + resip_usage_line()
             + "\n  expo --base RUN            EXPO: edit policy + argmax-Q over base candidates (--help: options)"
             + "\n  vgps --base RUN            re-ranking K base chunks by a value (IQL; --value branched)"
             + "\n\ntasks (the task's default config, no curriculum):\n"
             + "\n".join(f"  {k:26s} {_task_line(k)}" for k in task_names())
             + "".join(f"\n  {p + '<id>':26s} needs {r}" for p, r in task_families().items()))
    if not argv:
        raise ValueError("train needs a preset or --resume DIR\n" + usage)
    if argv[0] in ("-h", "--help"):
        print(usage)
        return
    if argv[0] in bc_presets():
        return bc_train_main(argv[0], argv[1:])
    if argv[0] == "expo" or (argv[0] == "--resume" and len(argv) >= 2 and is_expo_run(argv[1])):
        from robot_rl.commands.expo import expo_train_main

        return expo_train_main(argv[1:]) if argv[0] == "expo" else expo_train_main(argv[2:], Path(argv[1]))
    if argv[0] == "vgps":
        from robot_rl.commands.vgps import vgps_train_main

        return vgps_train_main(argv[1:])
    if argv[0] == "resip":
        return resip_train_main(argv[1:])
    if argv[0] == "--resume" and len(argv) >= 2 and is_resip_run(argv[1]):
        return resip_train_main(argv[2:], resume=Path(argv[1]))
    if argv[0] == "--resume" and len(argv) >= 2 and is_bc_run(argv[1]):
        return bc_train_main(None, argv[2:], resume=Path(argv[1]))
    if argv[0] == "--resume":
        if len(argv) != 2:
            raise ValueError("usage: robot-rl train --resume DIR")
        run_dir = Path(argv[1])
        cfg = load_config(run_dir)
        out = run_training(cfg, run_dir, resume=(run_dir / "checkpoint.json").is_file())
    else:
        name = argv[0]
        default = get_training_config(name)
        typed = cli_class(default)
        parsed = tyro.cli(typed, default=_as(typed, default), args=argv[1:], prog=f"robot-rl train {name}")
        cfg = _as(TrainConfig, parsed).check()
        cfg.preset = name
        run_dir = default_run_dir(cfg)
        if (run_dir / "checkpoint.json").is_file():
            raise ValueError(f"{run_dir} already holds a run; continue it with `robot-rl train --resume {run_dir}` "
                             "or choose another --out")
        cfg.out = str(run_dir)
        out = run_training(cfg, run_dir)
    if not distributed.info().is_main:
        return
    print(f"run directory : {run_dir}")
    print(f"  config      : {run_dir / 'config.json'}")
    print(f"  checkpoint  : {run_dir / 'checkpoint.safetensors'} (+ .json)")
    print(f"  metrics     : {run_dir / 'metrics.csv'}, TensorBoard: {run_dir / 'tb'}")
    exported = "export_max_abs_error" in out
    print(f"  export      : {out['export']}{' (policy.onnx + policy.json)' if exported else ''}")
    if "report" in out:
        print(f"  report      : {out['report']}")
    print(json.dumps({k: v for k, v in out.items() if k not in ("export", "report")}))
