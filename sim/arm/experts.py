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
    """Align above the hole, descend with a small lead, and localise the hole by touch where the rim blocks the peg.

    The peg's round tip over a hole of radius ``r_h`` rests on the rim's inner edge at a depth that depends
    only on its offset ``delta`` from the hole's axis (``depth = R - sqrt(R^2 - (r_h - delta)^2)``, ``R`` the
    peg radius), so every blocked descent measures the distance to the true axis. The expert probes at
    ``probe_step`` (m) beside the first blocked point, then descends at the centre that best explains all probes
    (least-squares trilateration), re-probing where it is blocked again. With ``privileged_hole`` (default) it
    starts from the true hole, as a privileged expert may (the policy still sees the noisy estimate); without,
    it starts from the noisy estimate the policy sees and relies on the probes.
    """

    ALIGN, DESCEND, MOVE, INSERT = 0, 1, 2, 3
    PROBES = 6

    def __init__(self, env: ArmEnv, seed: int = 0, action_noise: float = 0.0, privileged_hole: bool = True,
                 probe_step: float = 0.003) -> None:
        self.privileged_hole, self.probe_step = privileged_hole, probe_step
        n = env.num_envs
        self.goal = np.zeros((n, 2))
        self.probe_xy, self.probe_d = np.zeros((n, self.PROBES, 2)), np.zeros((n, self.PROBES))
        self.nprobe, self.stall, self.last_z = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n)
        # Gain 0.5: with a control step of action latency (domain randomisation), gain 1 on the commanded pose
        # is marginally stable (poles on the unit circle) and the sub-millimetre alignment never settles.
        super().__init__(env, seed, action_noise, gain=0.5)

    def reset(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        super().reset(mask)
        s = self.env.privileged_state()
        self.goal[mask] = (s["hole"] if self.privileged_hole else s["hole_seen"])[mask, :2]
        self.nprobe[mask], self.stall[mask], self.last_z[mask] = 0, 0, np.inf

    def _offset(self, depth: np.ndarray) -> np.ndarray:
        """Offset of the tip from the hole's axis that makes it rest ``depth`` (m, > 0) below the rim."""
        cfg = self.env.cfg
        r, r_h = cfg.peg_radius, cfg.peg_radius + cfg.clearance / 2
        return r_h - np.sqrt(np.clip(r * r - (r - np.clip(depth, 0.0, r)) ** 2, 0.0, None))

    def _probe(self, i: int, tip: np.ndarray, depth: float) -> None:
        """Record a blocked descent of env ``i`` and choose where to descend next."""
        k = self.nprobe[i] % self.PROBES
        self.probe_xy[i, k], self.probe_d[i, k] = tip[:2], self._offset(np.array(depth))
        self.nprobe[i] += 1
        m = min(self.nprobe[i], self.PROBES)
        first = self.probe_xy[i, 0]
        if self.nprobe[i] < 3:  # two probes beside the first one, at right angles
            angle = np.pi / 2 * (self.nprobe[i] - 1)
            self.goal[i] = first + self.probe_step * np.array([np.cos(angle), np.sin(angle)])
            return
        p, d = self.probe_xy[i, :m], self.probe_d[i, :m]
        a = 2 * (p[1:] - p[0])
        b = (p[1:] ** 2).sum(1) - (p[0] ** 2).sum() - d[1:] ** 2 + d[0] ** 2
        centre = np.linalg.lstsq(a, b, rcond=None)[0]
        if np.linalg.norm(centre - first) > 0.015:  # inconsistent probes: step aside and probe again
            angle = self.rng.uniform(0, 2 * np.pi)
            centre = first + self.probe_step * np.array([np.cos(angle), np.sin(angle)])
        self.goal[i] = centre

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        s, cfg = self.env.privileged_state(), self.env.cfg
        tip, below = s["peg_tip"], s["tip_below_tcp"][:, None]
        rim = s["hole"][:, 2]  # the rim height is known (table + block), only the xy estimate is noisy
        ph, z = self.phase, tip[:, 2]
        xy_err = np.linalg.norm(self.goal - tip[:, :2], axis=1)
        entered = z < rim - cfg.peg_radius - 0.001  # the cylinder is past the rim: only down remains
        ph = np.where((ph == self.ALIGN) & (xy_err < 4e-4) & (np.abs(z - rim - 0.008) < 0.002), self.DESCEND, ph)
        ph = np.where((ph == self.MOVE) & (xy_err < 4e-4) & (z > rim + 5e-4), self.DESCEND, ph)
        ph = np.where((ph == self.DESCEND) & entered, self.INSERT, ph)
        # Blocked: touching (the Panda senses this through its joint torques) and no longer going down.
        touching = self.env.in_contact("peg")
        self.stall = np.where((ph == self.DESCEND) & touching & (z > self.last_z - 2e-4) & (z < rim + 1e-3),
                              self.stall + 1, 0)
        for i in np.flatnonzero(self.stall >= 3):
            self._probe(i, tip[i], rim[i] - z[i])
            ph[i], self.stall[i] = self.MOVE, 0
        self.last_z = z.copy()
        self.phase = ph
        lead = np.where(touching, 0.0015, 0.004)
        target = np.empty_like(tip)
        target[:, :2] = np.where((ph == self.INSERT)[:, None], tip[:, :2], self.goal)
        target[:, 2] = np.select([ph == self.ALIGN, ph == self.MOVE],
                                 [rim + 0.008, rim + 0.002],
                                 np.maximum(z - lead, rim - cfg.success_depth - 0.008))
        return self._finish(self._move(target + np.c_[np.zeros((len(ph), 2)), below]))


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
