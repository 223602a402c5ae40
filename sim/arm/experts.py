"""Privileged scripted experts for the Panda tasks (``ee_delta`` actions), batched and seeded.

Each expert reads the env's exact state (:meth:`ArmEnv.privileged_state` and the controller's commanded pose)
and returns ``(label, executed)``: the clean action, and the action to execute, which has Gaussian noise
injected (``action_noise``) so that demonstrations visit and recover from off-nominal states while their
labels stay clean. Call :meth:`reset` with the mask of envs that were reset (``info["done_mask"]``).
"""

from __future__ import annotations

import numpy as np

from sim.arm.base import ArmEnv


class _Expert:
    def __init__(self, env: ArmEnv, seed: int = 0, action_noise: float = 0.0, gain: float = 1.0) -> None:
        if env.cfg.action.type != "ee_delta":
            raise ValueError(f"{env.task_name}: the scripted expert drives ee_delta actions, not {env.cfg.action.type}")
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.action_noise = action_noise
        self.gain = gain
        self.phase = np.zeros(env.num_envs, dtype=np.int64)
        self.reset(np.ones(env.num_envs, dtype=bool))

    def reset(self, mask: np.ndarray) -> None:
        self.phase[np.asarray(mask, dtype=bool)] = 0

    def _move(self, target: np.ndarray) -> np.ndarray:
        """Delta action driving the commanded TCP pose to ``target`` (clipped to [-1, 1])."""
        c = self.env.controller
        return np.clip(self.gain * (target - c.pos_target) / c.limits.pos_scale, -1, 1)

    def _finish(self, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        noisy = label + self.action_noise * self.rng.standard_normal(label.shape)
        return label.astype(np.float32), np.clip(noisy, -1, 1).astype(np.float32)


class ReachExpert(_Expert):
    """Goes round the wall's left or right edge (drawn at random per episode), then to the goal."""

    def reset(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        super().reset(mask)
        if not hasattr(self, "side"):
            self.side = np.zeros(self.env.num_envs)
        self.side[mask] = self.rng.choice([-1.0, 1.0], int(mask.sum()))

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.env.privileged_state()
        y = self.side * (s["wall_half_width"] + 0.08)
        wps = [np.stack([s["wall_x"] - 0.07, y, s["goal"][:, 2]], 1),
               np.stack([s["wall_x"] + 0.07, y, s["goal"][:, 2]], 1), s["goal"]]
        target = np.choose(np.minimum(self.phase, 2)[:, None], wps)
        near = np.linalg.norm(target - s["tcp"], axis=1) < 0.02
        self.phase = np.where(near & (self.phase < 2), self.phase + 1, self.phase)
        target = np.choose(np.minimum(self.phase, 2)[:, None], wps)
        return self._finish(self._move(target))


class PickExpert(_Expert):
    """Above the cube (yaw aligned to a face), descend, close, lift and hold."""

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        s, c = self.env.privileged_state(), self.env.controller
        cube, tcp = s["cube_pos"], s["tcp"]
        above = cube + np.array([0.0, 0.0, 0.1])
        grasp = cube.copy()
        lift = cube * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, 0.2])
        yaw_err = (s["cube_yaw"] - c.yaw_target + np.pi / 4) % (np.pi / 2) - np.pi / 4
        xy_err = np.linalg.norm((cube - tcp)[:, :2], axis=1)
        ph = self.phase
        # 0: above the cube, 1: descend, 2: close, 3: lift
        ph = np.where((ph == 0) & (xy_err < 0.01) & (np.abs(yaw_err) < 0.05)
                      & (np.abs(tcp[:, 2] - above[:, 2]) < 0.03), 1, ph)
        ph = np.where((ph == 1) & (np.abs(tcp[:, 2] - grasp[:, 2]) < 0.006) & (xy_err < 0.01), 2, ph)
        self._closing = np.where(ph == 2, getattr(self, "_closing", np.zeros_like(ph)) + 1, 0)
        ph = np.where((ph == 2) & (self._closing > 10), 3, ph)
        self.phase = ph
        target = np.choose(np.minimum(ph, 3)[:, None], [above, grasp, grasp, lift])
        move = self._move(target)
        move[ph == 1, :2] = self._move(grasp)[ph == 1, :2]
        yaw = np.clip(yaw_err / c.limits.yaw_scale, -1, 1)
        grip = np.where(ph >= 2, -1.0, 1.0)
        return self._finish(np.concatenate([move, yaw[:, None], grip[:, None]], 1))


class PegExpert(_Expert):
    """Align the tip above the hole as seen, descend, and spiral-search if the rim stops the tip."""

    def __init__(self, env: ArmEnv, seed: int = 0, action_noise: float = 0.0, privileged_hole: bool = False,
                 search_pitch: float = 0.0015, search_max: float = 0.008) -> None:
        self.privileged_hole = privileged_hole
        self.search_pitch, self.search_max = search_pitch, search_max
        self.theta = np.zeros(env.num_envs)
        super().__init__(env, seed, action_noise)

    def reset(self, mask: np.ndarray) -> None:
        super().reset(mask)
        self.theta[np.asarray(mask, dtype=bool)] = 0.0

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.env.privileged_state()
        hole = s["hole"] if self.privileged_hole else s["hole_seen"]
        tip, below = s["peg_tip"], s["tip_below_tcp"][:, None]
        rim = s["hole"][:, 2]  # the rim height is known (table + block), only the xy estimate is noisy
        ph = self.phase
        xy_err = np.linalg.norm((hole - tip)[:, :2], axis=1)
        # 0: align above the rim, 1: descend, 2: spiral search while pressing lightly, 3: inside, push down
        ph = np.where((ph == 0) & (xy_err < 0.002), 1, ph)
        touching = tip[:, 2] < rim + 0.003
        ph = np.where((ph == 1) & touching, 2, ph)
        ph = np.where((ph >= 1) & (tip[:, 2] < rim - 0.006), 3, ph)
        self.theta = np.where(ph == 2, self.theta + 0.4, self.theta)
        r = np.minimum(self.search_pitch * self.theta / (2 * np.pi), self.search_max)
        offset = np.stack([r * np.cos(self.theta), r * np.sin(self.theta)], 1)
        tip_target = hole.copy()
        tip_target[:, 2] = np.where(ph == 0, rim + 0.01, np.where(ph == 1, rim - 0.03, rim - 0.004))
        tip_target[:, :2] += np.where((ph == 2)[:, None], offset, 0.0)
        tip_target[ph == 3] = np.c_[tip[ph == 3, :2], np.full((int((ph == 3).sum()), 1), 0.0)]
        self.phase = ph
        tcp_target = tip_target + np.c_[np.zeros((len(ph), 2)), below]
        return self._finish(self._move(tcp_target))


EXPERTS = {"panda-reach-bimodal": ReachExpert, "panda-pick-cube": PickExpert, "panda-peg-insert": PegExpert}


def make_expert(env: ArmEnv, seed: int = 0, action_noise: float = 0.0, **kwargs) -> _Expert:
    """The scripted expert of ``env``'s task."""
    if env.task_name not in EXPERTS:
        raise ValueError(f"no scripted expert for task {env.task_name!r}; have {sorted(EXPERTS)}")
    return EXPERTS[env.task_name](env, seed=seed, action_noise=action_noise, **kwargs)


def evaluate_expert(env: ArmEnv, episodes: int, seed: int = 0, action_noise: float = 0.0, **kwargs) -> dict:
    """Run the expert until ``episodes`` episodes finished; success rate and mean episode length."""
    import torch

    env.reset(seed)
    expert = make_expert(env, seed=seed + 1, action_noise=action_noise, **kwargs)
    successes, lengths, steps = [], [], np.zeros(env.num_envs, dtype=np.int64)
    while len(successes) < episodes:
        _, executed = expert.act()
        _, _, _, _, info = env.step(torch.from_numpy(executed))
        steps += 1
        done = info["done_mask"].numpy()
        for i in np.flatnonzero(done):
            successes.append(bool(info["success"][i]))
            lengths.append(int(steps[i]))
        steps[done] = 0
        expert.reset(done)
    return {"episodes": episodes, "success_rate": float(np.mean(successes[:episodes])),
            "mean_length": float(np.mean(lengths[:episodes])), "stats": dict(env.stats)}
