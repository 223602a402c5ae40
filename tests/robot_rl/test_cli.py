import pytest

from robot_rl.cli import main


def test_help_lists_commands(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in ("sim", "train", "eval", "export"))


def test_sim_demo_writes_plot(tmp_path, capsys):
    out = tmp_path / "demo.png"
    main(["sim", "crazyflie", "--steps", "120", "--episodes", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drift = float(text.split("hover at ")[1].split(" m")[0])
    assert drift < 1e-3
    assert "plot written to" in text


def test_sim_demo_rejects_bad_steps(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sim", "crazyflie", "--steps", "0"])
    assert exc.value.code == 2
    assert "robot-rl: error: --steps must be >= 1" in capsys.readouterr().err


def test_train_cli_errors_are_one_line(tmp_path, capsys):
    for argv, msg in ((["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
                      (["train", "--resume", str(tmp_path)], "is not a run directory"),
                      (["eval", str(tmp_path)], "is not a run directory")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("robot-rl: error: ") and msg in err


def test_train_cli_runs_a_tiny_preset_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "crazyflie-hover-td3", "--seed", "1", "--out", str(out), "--task.num-envs", "4",
            "--off-policy.total-env-steps", "200", "--off-policy.critic-starts", "100", "--off-policy.actor-starts",
            "100", "--off-policy.batch-size", "16", "--td3.actor-hidden", "8", "--td3.critic-hidden", "8",
            "--task.episode-length", "20", "--eval-every", "0", "--checkpoint-every", "100", "--log-every", "50"]
    main(args)
    text = capsys.readouterr().out
    assert "export" in text and (out / "export" / "policy.onnx").is_file() and (out / "report.md").is_file()
    assert (out / "checkpoint.safetensors").is_file() and (out / "metrics.csv").is_file()
    main(["train", "--resume", str(out)])
    assert "resuming" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a second run into the same directory would overwrite the first
        main(args)
    assert "already holds a run" in capsys.readouterr().err
    main(["export", str(out), "--format", "c", "--quantize", "int8"])
    assert "C sources written to" in capsys.readouterr().out
    assert (out / "export" / "c_int8" / "policy.c").is_file()
    main(["eval", str(out), "--source", "int8", "--episodes", "16", "--no-sweep"])
    assert '"survival"' in capsys.readouterr().out
    assert "int8 C variant" in (out / "report_int8.md").read_text()
