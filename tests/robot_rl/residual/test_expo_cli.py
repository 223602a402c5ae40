"""EXPO and V-GPS from the CLI on panda-reach (tiny networks), and EXPO's resume equivalence."""

import json

import pytest
import torch

pytest.importorskip("mujoco")

from deploy.candidates_runtime import CandidatesPolicyRunner  # noqa: E402
from deploy.chunked_runtime import load_runner  # noqa: E402
from robot_rl.cli import main  # noqa: E402
from robot_rl.residual.expo import EXPOConfig  # noqa: E402
from robot_rl.runners.expo import EXPORunner, EXPOTrainConfig  # noqa: E402

EXPO = ["--num-envs", "4", "--env-steps", "32", "--pretrain-steps", "3", "--batch-size", "16", "--expo.hidden", "16",
        "16", "--expo.num-candidates", "2", "--eval-every", "16", "--selection-episodes", "4", "--checkpoint-every",
        "16"]


def test_expo_and_vgps_train_evaluate_and_resume_from_the_cli(expo_base_run, tmp_path, capsys):
    torch.set_num_threads(1)
    capsys.readouterr()
    main(["train", "--help"])
    assert "expo --base RUN" in capsys.readouterr().out
    run = tmp_path / "expo"
    main(["train", "expo", "--base", str(expo_base_run), "--out", str(run), "--eval-episodes", "4", *EXPO])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 32 and summary["updates"] == 3 + 8 and 0 <= summary["eval"]["success"] <= 1
    assert summary["last_eval"]["env_steps"] == 32
    main(["eval", str(run), "--episodes", "4"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["success"] == summary["eval"]["success"]
    assert "on the frozen base" in (run / "report.md").read_text()
    with pytest.raises(SystemExit):  # not silently ignored
        main(["eval", str(run), "--sim", "mujoco", "pybullet"])
    assert "--sim is not supported for EXPO and value-guided runs" in capsys.readouterr().err
    cfg = json.loads((run / "config.json").read_text())
    cfg["env_steps"] = 48
    (run / "config.json").write_text(json.dumps(cfg))
    main(["train", "--resume", str(run), "--eval-episodes", "0"])
    out = capsys.readouterr().out
    assert "resuming" in out and json.loads(out.strip().splitlines()[-1])["env_steps"] == 48
    main(["export", str(run)])
    assert "select.onnx" in capsys.readouterr().out
    bc_run = tmp_path / "expo-bc"  # the base kept training: the CLI option, the report says so
    main(["train", "expo", "--base", str(expo_base_run), "--out", str(bc_run), "--eval-episodes", "2", *EXPO,
          "--expo.base-bc-every", "2", "--expo.base-bc-batch", "8"])
    capsys.readouterr()
    assert "on the further-trained (4 imitation steps on a pool of" in (bc_run / "report.md").read_text()
    assert isinstance(load_runner(run / "export", sources={"state": None}), CandidatesPolicyRunner)
    cfg = json.loads((run / "config.json").read_text()) | {"env_steps": 64, "batch_size": 8}
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit):  # more env steps extend a run; another learning setting is refused
        main(["train", "--resume", str(run), "--eval-episodes", "0"])
    assert "saved with batch_size=16, this run has batch_size=8" in capsys.readouterr().err

    vg = tmp_path / "vgps"
    main(["train", "vgps", "--base", str(expo_base_run), "--out", str(vg), "--rollout-episodes", "4", "--steps", "10",
          "--k", "3", "--iql.hidden", "16", "16", "--eval-episodes", "4"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rollout_env_steps"] > 0 and res["eval"]["k"] == 3
    main(["eval", str(vg), "--episodes", "4"])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == res["eval"]
    main(["export", str(vg)])
    assert "value.onnx, k = 3" in capsys.readouterr().out
    assert json.loads((vg / "export" / "policy.json").read_text())["composition"]["score"] == "chunk"


@pytest.mark.parametrize("q_level,base_bc", [("step", 0), ("chunk", 0), ("step", 2)])
def test_expo_resume_reproduces_an_uninterrupted_run(expo_base_run, tmp_path, q_level, base_bc, capsys):
    torch.set_num_threads(1)

    def cfg():
        return EXPOTrainConfig(base=str(expo_base_run), num_envs=4, env_steps=48, pretrain_steps=2, batch_size=16,
                               expo=EXPOConfig(hidden=(16, 16), num_candidates=2, q_level=q_level,
                                               base_bc_every=base_bc, base_bc_steps=2, base_bc_batch=8),
                               eval_every=0, checkpoint_every=0)

    whole = EXPORunner(cfg(), tmp_path / "a")
    whole.train()
    first = EXPORunner(cfg(), tmp_path / "b")
    first.train(stop_at=24)
    resumed = EXPORunner(cfg(), tmp_path / "c")
    resumed.load(tmp_path / "b" / "checkpoint")
    resumed.train()
    assert resumed.env_steps == whole.env_steps == 48 and resumed.updates == whole.updates
    for (name, a), (_, b) in zip(whole.agent.state_dict().items(), resumed.agent.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(whole.replay.online.data["action"], resumed.replay.online.data["action"])
    if base_bc:  # the base trained on its imitation loss: weights, EMA and pool resume exactly
        assert whole.base_bc.steps == resumed.base_bc.steps == 48 // 4 // base_bc * 2
        for (k, a), (_, b) in zip(whole.base.policy.state_tensors().items(),
                                  resumed.base.policy.state_tensors().items(), strict=True):
            assert torch.equal(a, b), k
        for k, v in whole.base_bc.pool.state_dict().items():
            assert torch.equal(v, resumed.base_bc.pool.state_dict()[k]), k
    if q_level == "chunk":  # chunk transitions: 4 actions of 4 dims each, about one per env per chunk
        assert whole.replay.online.data["action"].shape[1] == 4 * whole.base.action_dim
        assert 4 * 48 // 16 <= whole.replay.online.size + 4 <= 48
        assert torch.equal(whole.chunks.reward, resumed.chunks.reward)
        with pytest.raises(SystemExit):  # no runtime for it: refused with one line, not exported half-way
            main(["export", str(tmp_path / "a")])
        assert "a chunk-level EXPO run (expo.q_level 'chunk') has no export" in capsys.readouterr().err
        assert not (tmp_path / "a" / "export").exists()


def test_base_imitation_off_changes_nothing_and_its_export_samples_from_the_updated_base(expo_base_run, tmp_path,
                                                                                         capsys):
    """Off: the base is the BC run's bit for bit, and a run whose base never takes a step (its pool recording
    only) is the off run exactly. On: the exported sampler is the updated base, not the BC run's."""
    import onnxruntime as ort

    from robot_rl.runners.bc import load_policy

    torch.set_num_threads(1)

    def run(name, every):
        cfg = EXPOTrainConfig(base=str(expo_base_run), num_envs=4, env_steps=32, pretrain_steps=2, batch_size=16,
                              expo=EXPOConfig(hidden=(16, 16), num_candidates=2, base_bc_every=every,
                                              base_bc_batch=8, base_bc_lr=1e-3),
                              eval_every=16, selection_episodes=2, checkpoint_every=0)  # evaluations in between
        runner = EXPORunner(cfg, tmp_path / name)
        runner.train()
        return runner

    bc_policy, _ = load_policy(expo_base_run)
    off, idle, on = run("off", 0), run("idle", 1000), run("on", 1)
    assert off.base_bc is None and idle.base_bc.steps == 0 and on.base_bc.steps == 8
    for k, v in bc_policy.state_tensors().items():
        assert torch.equal(v, off.base.policy.state_tensors()[k]), k
        assert torch.equal(v, idle.base.policy.state_tensors()[k]), k
    for (k, a), (_, b) in zip(off.agent.state_dict().items(), idle.agent.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert torch.equal(off.replay.online.data["obs"], idle.replay.online.data["obs"])

    main(["export", str(tmp_path / "on")])
    capsys.readouterr()
    sess = ort.InferenceSession(str(tmp_path / "on" / "export" / "policy.onnx"))
    p = on.base.policy
    obs = torch.as_tensor(on.base_bc.pool.demo_obs[:3])
    noise = torch.randn(3, p.horizon, p.act_dim, generator=torch.Generator().manual_seed(5))
    exported = torch.as_tensor(sess.run(None, {"obs": obs.numpy(), "noise": noise.numpy()})[0])
    assert torch.allclose(exported, p.sample(obs, noise), atol=1e-5)
    assert (exported - bc_policy.sample(obs, noise)).abs().max() > 1e-3  # not the BC run's sampler
