"""``robot-rl`` command line (tyro): one subcommand per job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import tyro


def sim(
    robot: tyro.conf.Positional[Literal["crazyflie"]],
    steps: int = 500,
    episodes: int = 3,
    seed: int = 0,
    out: Path = Path("runs/sim_demo/crazyflie.png"),
) -> None:
    """Fly the simulator open-loop (hover RPM plus random-action episodes) and plot position/attitude."""
    from robot_rl.commands.sim_demo import run_sim_demo

    summary = run_sim_demo(steps, episodes, seed, out)
    print(f"hover at {summary['hover_max_drift_m']:.2e} m max drift over {steps} steps; random-action "
          f"episodes lasted {summary['random_episode_steps']} steps")
    print(f"plot written to {summary['plot']}")


COMMANDS = {
    "sim": sim,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robot-rl`` console script."""
    try:
        tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, description=__doc__)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"robot-rl: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
