"""Does the fused SAC/TD3 update path compute the plain path's maths? Parameter divergence over many updates.

Both paths start from the same state (fresh networks after ``--fill`` random env steps of the preset, or a run's
``checkpoint`` with its replay) and take ``--updates`` updates on the same sampled batches with the same
exploration noise. Besides plain vs fused it runs the reference a real bug is judged against: the plain path
against itself with every network weight moved by one float32 ulp (pure rounding noise, amplified by training
alone). Two partial variants say which half of the fused path the divergence comes from: the fused autograd
nodes with the plain (foreach) Adam, and the plain autograd with the fused Adam. Rounding divergence starts at
~1e-7 and grows smoothly, at the rate of the 1-ulp reference; a bug shows as a large error from the first
updates. ``one_step`` isolates one update: from the plain run's state at that point, one plain and one fused
update on the same batch (the per-update error, on the data and weights of that stage of training).
The last line is JSON: max parameter difference to the plain path per variant at the last update.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/fused_divergence.py --preset panda-reach-sac \
        [--checkpoint runs/reach0/checkpoint] --updates 2000
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from robot_rl.algorithms.common import make_optimizer, make_rltools_adam
from robot_rl.algorithms.sac import SAC
from robot_rl.config import get_preset
from robot_rl.runs import make_runner

VARIANTS = ("fused", "plain+1ulp", "fused_nodes+foreach_adam", "plain_nodes+fused_adam")


def with_paths(algo, nodes: bool, fused_adam: bool):
    """A deep copy of ``algo`` (weights, optimiser state) whose update runs the fused autograd nodes or not
    (``nodes``) and torch's fused Adam or the multi-tensor one (``fused_adam``)."""
    gen, algo.gen = algo.gen, None
    new = copy.deepcopy(algo)
    algo.gen = gen
    new.cfg = replace(algo.cfg, fused=nodes)
    if isinstance(new, SAC):
        new.actor.fused = nodes
        pairs = [("actor_opt", new.actor.parameters(), new.cfg.actor_lr),
                 ("critic_opt", new.critic.parameters(), new.cfg.critic_lr)]
        opts = {name: make_optimizer(params, lr, new.cfg.weight_decay, fused_adam) for name, params, lr in pairs}
        opts["alpha_opt"] = torch.optim.Adam([new.log_alpha], lr=new.cfg.alpha_lr, fused=fused_adam or None)
    else:
        c = new.cfg
        opts = {"actor_opt": make_rltools_adam(new.actor.named_parameters(), c.actor_lr, c.weight_decay, fused_adam),
                "critic_opt": make_rltools_adam(new.critic.named_parameters(), c.critic_lr, c.weight_decay,
                                                fused_adam)}
    for name, opt in opts.items():
        opt.load_state_dict(getattr(new, name).state_dict())
        for group in opt.param_groups:  # load_state_dict brings the saved groups' implementation flags along
            group["fused"], group["foreach"] = (True, None) if fused_adam else (None, True)
        setattr(new, name, opt)
    return new


def ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of ``a`` and ``b`` in units of float32 spacing at ``a``."""
    spacing = torch.nextafter(a.abs(), torch.full_like(a, float("inf"))) - a.abs()
    return ((a - b).abs() / spacing).max().item()


def flat(algo) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for m in algo.modules().values() for t in m.state_dict().values()])


def perturb_one_ulp(algo, seed: int) -> None:
    """Move every weight of every network one float32 ulp up or down (random signs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in algo.modules().values():
            for p in m.parameters():
                up = torch.rand(p.shape, generator=g) < 0.5
                p.copy_(torch.nextafter(p, torch.where(up, torch.full_like(p, float("inf")),
                                                       torch.full_like(p, -float("inf")))))


def gen_at(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_update(algo, batch, noise: torch.Generator):
    """One update on ``batch`` (TD3: ``(critic rows, actor rows)``) with ``noise`` as the algorithm's generator."""
    algo.gen = noise
    if isinstance(algo, SAC):
        return algo.update(batch)
    return algo.update(batch[0], actor_batch=batch[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="panda-reach-sac")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fill", type=int, default=2000, help="random env steps in the replay (without --checkpoint)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="start from this run's checkpoint and replay")
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--one-step-every", type=int, default=250)
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg = get_preset(args.preset)
    cfg.seed = args.seed
    kind = cfg.algorithm
    if kind not in ("sac", "td3"):
        raise SystemExit(f"{args.preset} trains {kind}, not sac/td3")
    getattr(cfg, kind).fused = False
    cfg.off_policy.critic_starts = cfg.off_policy.actor_starts = 10**12  # collection only while filling
    cfg.checkpoint_every = cfg.eval_every = 0
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_runner(cfg, Path(tmp))
        if args.checkpoint is not None:
            runner.load(args.checkpoint)
            # a fused run's checkpoint holds fused-Adam state: rebuild the plain optimisers from it
            runner.algo = with_paths(runner.algo, nodes=False, fused_adam=False)
        else:
            runner.train(stop_at=args.fill)
    buf, bs = runner.buffer, cfg.off_policy.batch_size
    plain = runner.algo
    print(f"{args.preset} ({kind}): replay {buf.size} transitions, batch {bs}, "
          f"start {'checkpoint ' + str(args.checkpoint) if args.checkpoint else f'{args.fill} random steps'}; "
          f"num_updates {plain.num_updates}")
    variants = {"fused": with_paths(plain, True, True), "plain+1ulp": with_paths(plain, False, False),
                "fused_nodes+foreach_adam": with_paths(plain, True, False),
                "plain_nodes+fused_adam": with_paths(plain, False, True)}
    perturb_one_ulp(variants["plain+1ulp"], args.seed)
    scale = flat(plain).abs().max().item()
    n_params = flat(plain).numel()
    print(f"max |parameter| at the start: {scale:.3g}")
    batch_gen = gen_at(10_000 + args.seed)
    noise = {name: gen_at(20_000 + args.seed) for name in ("plain", *VARIANTS)}
    report = {1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, args.updates}
    fixed = buf.sample(1024, gen_at(30_000))
    print(f"{'update':>7} " + " ".join(f"{v:>26}" for v in VARIANTS) + f" {'fused: max|da| (1024 obs)':>26}")
    one_step: list[dict] = []
    last: dict[str, float] = {}
    for u in range(1, args.updates + 1):
        batch = (buf.sample(bs, batch_gen) if kind == "sac"
                 else (buf.sample(plain.batch_rows(bs), batch_gen), buf.sample(bs, batch_gen)))
        if args.one_step_every and (u == 1 or u % args.one_step_every == 0):  # one update from plain's state
            a, b = with_paths(plain, False, False), with_paths(plain, True, True)
            state = noise["plain"].get_state()
            run_update(a, batch, gen_at(0).set_state(state))
            run_update(b, batch, gen_at(0).set_state(state))
            d = (flat(a) - flat(b)).abs().max().item()
            moved = (flat(a) - flat(plain)).abs().max().item()
            one_step.append({"update": u, "max_diff": d, "ulps": ulps(flat(a), flat(b)),
                             "differing": int((flat(a) != flat(b)).sum()), "max_step": moved})
        run_update(plain, batch, noise["plain"])
        for name, algo in variants.items():
            run_update(algo, batch, noise[name])
        if u in report:
            ref = flat(plain)
            last = {name: (flat(algo) - ref).abs().max().item() for name, algo in variants.items()}
            with torch.no_grad():
                da = (variants["fused"].act(fixed["policy_obs"], False) - plain.act(fixed["policy_obs"], False))
            print(f"{u:>7} " + " ".join(f"{last[v]:>26.3e}" for v in VARIANTS) + f" {da.abs().max().item():>26.3e}")
    print("one update from the plain run's state (max |fused - plain| over all parameters; the update's own "
          "largest step beside it):")
    for r in one_step:
        print(f"  update {r['update']:>6}: {r['max_diff']:.3e} = {r['ulps']:.1f} ulp, {r['differing']} of "
              f"{n_params} numbers differ   (the update's largest step {r['max_step']:.3e})")
    print(json.dumps({"preset": args.preset, "updates": args.updates, "max_param_diff": last,
                      "one_step_max_diff": max(r["max_diff"] for r in one_step) if one_step else None}))


if __name__ == "__main__":
    main()
