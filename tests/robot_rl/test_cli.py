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
