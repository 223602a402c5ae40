"""The off-policy collection loop as one numba kernel per chunk of env steps (:mod:`robot_rl.runners.fused_collect`).

A chunk of ``K`` steps does, per step, what ``OffPolicyRunner._iteration`` does before its updates: the actor's
forward pass plus the exploration noise (:func:`robot_rl.models.mlp_act._act`), the env's step (its
:class:`sim.core.CompiledStep` kernel), the replay rows (``ReplayBuffer``'s ``FIELDS`` layout), the episode
counters and the next observation. The operation order is the plain path's (stored reward
``reward + termination_reward * terminated``; episode sums in float32), so the chunk is that path step for step.

The env's kernel is a different function per task, and numba can neither cache a closure nor take a dispatcher
argument cheaply (~6 us a call, and it misses the cache too): :func:`collector` writes a small module that imports
the env's kernel by name under the global ``env_kernel`` and holds :func:`collect`'s source, so numba caches its
compilation (~15 s under load) across processes. The module's name carries a digest of the sources it compiles
from, so an edit of the env's or the actor's kernels compiles it afresh.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from robot_rl.algorithms._sac_kernels import temperature as sac_temperature
from robot_rl.algorithms._sac_kernels import update_from_replay as sac_update_from_replay
from robot_rl.algorithms._td3_kernels import update_from_replay
from robot_rl.io import atomic_write_text
from robot_rl.models.mlp_act import SQUASHED_GAUSSIAN as _SQUASHED_GAUSSIAN
from robot_rl.models.mlp_act import _act
from sim.numba_cache import cache_root

_KERNELS: dict[Any, Any] = {}
env_kernel: Any = None
"""The env's kernel: a global of the generated module that compiles :func:`collect` (see :func:`collector`)."""


def collect(steps, obs_p, obs_c, noise, scale, weights, biases, act_code, out_code, table, pos, ep_ret, ep_len,
            finished, termination_reward, precision, env_ctx, s):
    """``steps`` env steps from the observations ``obs_p``/``obs_c`` (overwritten with the last ones);
    ``noise[k]`` is step ``k``'s standard-normal exploration noise. Replay rows go to ``table[pos:]`` (the
    caller checks room), every finished episode's return and length to ``finished``; returns how many
    finished. ``precision`` = (reward term index or -1, bonus, -1 / width^2): the stored reward gains
    ``bonus exp(term * that)`` (``OffPolicyRunner._shaped``'s precision bonus)."""
    n, adim = noise.shape[1], noise.shape[2]
    pd, cd = obs_p.shape[1], obs_c.shape[1]
    tr = np.float32(termination_reward)
    p_idx, p_bonus, p_coef = int(precision[0]), np.float32(precision[1]), np.float32(precision[2])
    action = np.empty((n, adim), np.float32)
    done_count = 0
    for k in range(steps):
        _act(obs_p, weights, biases, act_code, out_code, noise[k], scale, True, action, s)
        policy, critic, reward, terms, flags, done_idx, final = env_kernel(action, env_ctx)
        nt = terms.shape[1]
        j = 0  # next entry of done_idx (ascending)
        for e in range(n):
            row = table[pos + k * n + e]
            c = 0
            for i in range(pd):
                row[c + i] = obs_p[e, i]
            c += pd
            for i in range(cd):
                row[c + i] = obs_c[e, i]
            c += cd
            for i in range(adim):
                row[c + i] = action[e, i]
            c += adim
            for i in range(nt):
                row[c + i] = terms[e, i]
            c += nt
            term = np.float32(1.0) if flags[0, e] else np.float32(0.0)
            stored = reward[e] + tr * term if tr != 0.0 else reward[e]
            if p_idx >= 0:
                stored = stored + p_bonus * np.exp(terms[e, p_idx] * p_coef)
            row[c] = stored
            c += 1
            if j < done_idx.size and done_idx[j] == e:
                for i in range(pd + cd):
                    row[c + i] = final[j, i]
                j += 1
            else:
                for i in range(pd):
                    row[c + i] = policy[e, i]
                for i in range(cd):
                    row[c + pd + i] = critic[e, i]
            row[c + pd + cd] = term
            ep_ret[e] += reward[e]
            ep_len[e] += np.float32(1.0)
            if flags[2, e]:
                finished[done_count, 0] = ep_ret[e]
                finished[done_count, 1] = ep_len[e]
                done_count += 1
                ep_ret[e] = 0.0
                ep_len[e] = 0.0
        obs_p[:] = policy
        obs_c[:] = critic
    return done_count


def cycles(plan, updates, noise, idx, eps, obs_p, obs_c, scale, weights, biases, act_code, out_code, table, pos, ep_ret,
           ep_len, finished, termination_reward, env_ctx, s, cols, rows_c, rows_a, nets, grads, adams, hypers, polyak,
           consts, code, independent, loss, losses, mean_q):
    """Several collect + update cycles of the off-policy loop in one call (``FusedCollector.cycles``): cycle ``c``
    collects ``plan[c, 0]`` env steps (:func:`collect`, noise rows from ``plan[c, 1]`` on), then runs updates
    ``plan[c, 2]:plan[c, 3]`` (:func:`~robot_rl.algorithms._td3_kernels.update_from_replay`; ``updates[u]`` = actor
    step, critic-target step, offset and length of the critic rows in ``idx``, of the actor rows, offset of the
    target noise in ``eps``), each critic's loss into ``losses[u]`` and the actor's mean Q into ``mean_q[u]``.
    Returns how many episodes finished (their return and length in ``finished``)."""
    done = 0
    no_precision = np.zeros(3)
    no_precision[0] = -1.0
    flags = np.zeros(4, np.int64)
    flags[2] = code
    flags[3] = independent
    for c in range(plan.shape[0]):
        steps, k0 = plan[c, 0], plan[c, 1]
        done += collect(steps, obs_p, obs_c, noise[k0:k0 + steps], scale, weights, biases, act_code, out_code, table,
                        pos, ep_ret, ep_len, finished[done:], termination_reward, no_precision, env_ctx, s)
        pos += steps * noise.shape[1]
        for u in range(plan[c, 2], plan[c, 3]):
            flags[0], flags[1] = updates[u, 0], updates[u, 1]
            ic, nc, ia, na, e0 = updates[u, 2], updates[u, 3], updates[u, 4], updates[u, 5], updates[u, 6]
            mean_q[u] = update_from_replay(table, idx[ic:ic + nc], idx[ia:ia + na], eps[e0:e0 + nc], cols, rows_c,
                                           rows_a, nets, grads, adams, hypers, polyak, flags, consts, loss, s)
            losses[u] = loss
    return done


def sac_cycles(plan, updates, noise, idx, eps, obs_p, obs_c, weights, biases, act_code, table, pos, ep_ret, ep_len,
               finished, termination_reward, precision, env_ctx, s, cols, rows_c, rows_a, nets, grads, adams, hypers,
               lr_factors, consts, flags, log_alpha, alpha_grad, bs, loss, losses, stats):
    """SAC's collect + update cycles in one call (``runners/fused_cycles_sac.py``): cycle ``c`` collects
    ``plan[c, 0]`` env steps (:func:`collect`, the squashed Gaussian sample, noise rows from ``plan[c, 1]`` on), then
    runs updates ``plan[c, 2]:plan[c, 3]`` (:func:`robot_rl.algorithms._sac_kernels.update_from_replay`;
    ``updates[u]`` = actor step, offset of its rows in ``idx`` and of its critic and actor noise in ``eps``) with
    every optimizer's learning rate ``hypers[k][g, 0] * lr_factors[c, k]`` (the runner's decay) and the
    temperature ``exp(log_alpha)`` of that moment, ``bs`` rows each; each update's critic losses into
    ``losses[u]``, its actor loss, entropy and temperature into ``stats[u]``. ``flags[1:]`` and ``consts[1:]`` are
    the update kernel's. Returns how many episodes finished."""
    done = 0
    h = (hypers[0].copy(), hypers[1].copy(), hypers[2].copy())
    for c in range(plan.shape[0]):
        steps, k0 = plan[c, 0], plan[c, 1]
        done += collect(steps, obs_p, obs_c, noise[k0:k0 + steps], np.float32(0.0), weights, biases, act_code,
                        _SQUASHED_GAUSSIAN, table, pos, ep_ret, ep_len, finished[done:], termination_reward,
                        precision, env_ctx, s)
        pos += steps * noise.shape[1]
        for k in range(3):
            for g in range(h[k].shape[0]):
                h[k][g, 0] = hypers[k][g, 0] * lr_factors[c, k]
        for u in range(plan[c, 2], plan[c, 3]):
            flags[0] = updates[u, 0]
            i0, e0 = updates[u, 1], updates[u, 2]
            alpha = sac_temperature(log_alpha)
            consts[0] = alpha
            eps_a = eps[e0 + bs:e0 + 2 * bs] if flags[0] else eps[e0:e0]
            a_loss, ent = sac_update_from_replay(table, idx[i0:i0 + bs], eps[e0:e0 + bs], eps_a, cols, rows_c, rows_a,
                                                 nets, grads, adams, h, flags, consts, loss, alpha_grad, s)
            losses[u] = loss
            stats[u, 0], stats[u, 1], stats[u, 2] = a_loss, ent, alpha
    return done


def _sources_digest(module_name: str) -> str:
    """A digest of every source the kernel compiles from: this file, ``robot_rl/models`` (the actor, the GEMM) and
    ``robot_rl/algorithms`` (the update) and the folder of the env kernel's module (numba's cache sees only the
    generated file's own date)."""
    folders = {Path(__file__).parent, Path(_act.py_func.__code__.co_filename).parent,
               Path(update_from_replay.py_func.__code__.co_filename).parent,
               Path(importlib.import_module(module_name).__file__).parent}
    h = hashlib.sha256()
    for folder in sorted(folders):
        for f in sorted(folder.glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    return cache_root() / "collect_kernels"


def _generated(env_kernel: Any) -> Any | None:
    """:func:`collect`, :func:`cycles` and :func:`sac_cycles` compiled in a generated module that imports
    ``env_kernel`` by name (so numba caches them across processes), or None where the kernel has no importable name
    or the cache folder is not writable."""
    fn = getattr(env_kernel, "py_func", None)
    if fn is None or "." in fn.__qualname__ or fn.__module__ == "__main__":
        return None
    module_name, name = fn.__module__, fn.__qualname__
    if getattr(importlib.import_module(module_name), name, None) is not env_kernel:
        return None
    digest = _sources_digest(module_name)
    stem = f"collect_{module_name.replace('.', '_')}_{name}_{digest}"
    source = (f'"""Generated by robot_rl.runners._collect_kernels for {module_name}.{name}; do not edit."""\n\n'
              "import numpy as np\nfrom numba import njit\n\n"
              "from robot_rl.algorithms._sac_kernels import temperature as sac_temperature\n"
              "from robot_rl.algorithms._sac_kernels import update_from_replay as sac_update_from_replay\n"
              "from robot_rl.algorithms._td3_kernels import update_from_replay\n"
              "from robot_rl.models.mlp_act import SQUASHED_GAUSSIAN as _SQUASHED_GAUSSIAN\n"
              "from robot_rl.models.mlp_act import _act\n"
              f"from {module_name} import {name} as env_kernel\n\n\n"
              '@njit(cache=True, error_model="numpy")\n' + inspect.getsource(collect) + "\n\n"
              '@njit(cache=True, error_model="numpy")\n' + inspect.getsource(cycles) + "\n\n"
              '@njit(cache=True, error_model="numpy")\n' + inspect.getsource(sac_cycles))
    try:
        folder = _cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.py"
        if not path.exists() or path.read_text() != source:
            atomic_write_text(path, source)
    except OSError:
        return None
    module_key = f"_robot_rl_{stem}"
    module = sys.modules.get(module_key)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_key] = module
        spec.loader.exec_module(module)
    return module


def collector(env_kernel: Any) -> Any:
    """The compiled :func:`collect` that steps envs with ``env_kernel`` (a :class:`sim.core.CompiledStep` kernel):
    from a generated module numba caches (below), or else compiled in this process (~10 s, once)."""
    return _module(env_kernel).collect


def cycler(env_kernel: Any) -> Any:
    """The compiled :func:`cycles` for ``env_kernel`` (as :func:`collector`)."""
    return _module(env_kernel).cycles


def sac_cycler(env_kernel: Any) -> Any:
    """The compiled :func:`sac_cycles` for ``env_kernel`` (as :func:`collector`)."""
    return _module(env_kernel).sac_cycles


def _module(env_kernel: Any) -> Any:
    if env_kernel not in _KERNELS:
        module = _generated(env_kernel)
        if module is None:
            module = types.SimpleNamespace()
            glob = dict(collect.__globals__, env_kernel=env_kernel)
            module.collect = njit(error_model="numpy")(types.FunctionType(collect.__code__, glob, "collect"))
            glob["collect"] = module.collect
            module.cycles = njit(error_model="numpy")(types.FunctionType(cycles.__code__, glob, "cycles"))
            module.sac_cycles = njit(error_model="numpy")(types.FunctionType(sac_cycles.__code__, glob, "sac_cycles"))
        _KERNELS[env_kernel] = module
    return _KERNELS[env_kernel]
