"""The foundation, end to end through the real command line (subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, run_script

TINY = {
    "ppo": ("CartPole-v1", ["--set", "n_steps=64", "--set", "batch_size=64", "--set", "n_epochs=1"], 300),
    "recurrent-ppo": ("CartPole-v1", ["--set", "n_steps=64", "--set", "batch_size=64", "--set", "n_epochs=1"], 300),
    "dqn": ("CartPole-v1", ["--set", "learning_starts=50", "--set", "train_freq=4"], 300),
    "td3": ("Pendulum-v1", ["--set", "learning_starts=50", "--set", "policy_kwargs={net_arch: [32, 32]}"], 260),
    "sac": ("Pendulum-v1", ["--set", "learning_starts=50", "--set", "policy_kwargs={net_arch: [32, 32]}"], 260),
    "ddpg": ("Pendulum-v1", ["--set", "learning_starts=50", "--set", "policy_kwargs={net_arch: [32, 32]}"], 260),
}


def scalar_tags(run_dir: Path) -> set[str]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [event.step for event in acc.Scalars(tag)]


@pytest.mark.parametrize("agent", sorted(TINY))
def test_each_baseline_trains_and_logs(agent, tmp_path):
    env_id, extra, steps = TINY[agent]
    run_dir = tmp_path / agent
    args = ["--agent", agent, "--env", env_id, "--total-steps", str(steps), "--n-envs", "1",
            "--run-dir", str(run_dir), "--no-progress", *extra]
    if env_id == "Pendulum-v1":  # short episodes so that SB3 logs episode statistics
        args += ["--env-kwargs", "max_episode_steps=50"]
    proc = run_script("train.py", *args)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "checkpoints" / "final.safetensors").is_file()
    assert "--agent" in (run_dir / "command.txt").read_text()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["agent"] == agent and config["total_steps"] == steps
    assert "learning_rate" in config["hyperparams"]
    tags = scalar_tags(run_dir)
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps"} <= tags, tags
    assert any(t.startswith("train/") for t in tags), tags


def test_config_yaml_round_trips_into_an_identical_run(tmp_path):
    from safetensors.torch import load_file

    first, second = tmp_path / "a", tmp_path / "b"
    common = ["--no-progress", "--total-steps", "256", "--n-envs", "1"]
    proc = run_script("train.py", "--agent", "ppo", "--env", "CartPole-v1", "--set", "n_steps=128",
                      "--set", "batch_size=64", "--set", "n_epochs=2", "--seed", "3", "--run-dir", str(first), *common)
    assert proc.returncode == 0, proc.stderr
    proc = run_script("train.py", "--config", str(first / "config.yaml"), "--run-dir", str(second), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (first / "config.yaml").read_text() == (second / "config.yaml").read_text()
    a = load_file(str(first / "checkpoints" / "final.safetensors"))
    b = load_file(str(second / "checkpoints" / "final.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), "same config and seed must give the same weights"


def test_help_lists_agents_and_environments():
    proc = run_script("train.py", "--help")
    assert proc.returncode == 0
    for name in ("ppo", "recurrent-ppo", "td3", "sac", "ddpg", "dqn", "mirabilis/NoisyTVRoom-v0",
                 "mirabilis/TMaze-v0", "CartPole-v1"):
        assert name in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--agent", "ppx"], "did you mean 'ppo'"),
        (["--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["--env", "nosuchmodule:Foo-v0"], "cannot import module 'nosuchmodule'"),
        (["--set", "n_step=3"], "did you mean 'n_steps'"),
        (["--set", "n_steps=abc"], "'n_steps' expects int"),
        (["--set", "gamma=[1, 2]"], "'gamma' expects float"),
        (["--set", "noequals"], "expects key=value"),
        (["--agent", "dqn", "--env", "Pendulum-v1"], "needs a Discrete action space"),
        (["--agent", "ppo", "--env", "mirabilis/TMaze-v0", "--env-kwargs", "length=0"], "length"),
        (["--agent", "ppo", "--env", "CartPole-v1", "--env-kwargs", "bogus=1"], "bad env kwargs"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_script("train.py", *args, "--run-dir", str(run_dir), "--total-steps", "64", "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists(), "bad input must not leave a run directory behind"


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: ppo\nhyperparams:\n  gamma: [0.9\n")
    proc = run_script("train.py", "--config", str(bad), "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert f"{bad}:4" in proc.stderr and "malformed YAML" in proc.stderr


def test_unknown_config_key_is_refused(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("agent: ppo\nlearning_rate: 0.1\n")
    proc = run_script("train.py", "--config", str(bad), "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 2 and "unknown key(s) 'learning_rate'" in proc.stderr


def test_existing_run_directory_is_never_overwritten_silently(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--agent", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--set", "n_steps=64",
            "--n-envs", "1", "--run-dir", str(run_dir), "--no-progress"]
    assert run_script("train.py", *args).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    proc = run_script("train.py", *args)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert before == {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    assert run_script("train.py", *args, "--overwrite").returncode == 0


def test_module_colon_env_id_form(tmp_path):
    (tmp_path / "my_world.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register("MyCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                     max_episode_steps=50)
    """))
    run_dir = tmp_path / "run"
    proc = run_script("train.py", "--agent", "ppo", "--env", "my_world:MyCartPole-v0", "--total-steps", "64",
                      "--set", "n_steps=64", "--n-envs", "1", "--run-dir", str(run_dir), "--no-progress",
                      env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env"] == "my_world:MyCartPole-v0"


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_saves_then_resume_continues_the_same_curve(sig, status, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--agent", "ppo", "--env", "CartPole-v1",
           "--total-steps", "1000000", "--n-envs", "1", "--set", "n_steps=64", "--set", "batch_size=64",
           "--set", "n_epochs=1", "--run-dir", str(run_dir), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not list(run_dir.glob("events.out.*")):
        time.sleep(0.2)
    time.sleep(2.0)  # let it train a little
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert "--resume" in out
    latest = run_dir / "checkpoints" / "latest.safetensors"
    assert latest.is_file() and not (run_dir / "checkpoints" / "final.safetensors").exists()

    from agents.persistence import read_meta

    stopped_at = read_meta(latest)["num_timesteps"]
    assert stopped_at > 0
    resumed = run_script("train.py", "--resume", str(run_dir), "--total-steps", str(stopped_at + 256), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    final = read_meta(run_dir / "checkpoints" / "final.safetensors")["num_timesteps"]
    assert final >= stopped_at + 256
    steps = scalar_steps(run_dir, "time/fps")
    assert max(steps) > stopped_at, "the resumed run logs onto the same curve, after where it stopped"
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2


def test_resume_of_something_that_is_not_a_run(tmp_path):
    proc = run_script("train.py", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr


def test_enjoy_writes_a_video_with_one_frame_per_step(tmp_path):
    import imageio_ffmpeg

    run_dir = tmp_path / "run"
    assert run_script("train.py", "--agent", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--set",
                      "n_steps=64", "--n-envs", "1", "--run-dir", str(run_dir), "--no-progress").returncode == 0
    out = tmp_path / "movie.mp4"
    proc = run_script("enjoy.py", "--run", str(run_dir), "--episodes", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lengths = [int(line.split("length ")[1].split(",")[0]) for line in proc.stdout.splitlines()
               if line.startswith("episode")]
    assert len(lengths) == 2
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == sum(length + 1 for length in lengths)  # the reset frame plus one per step


def test_enjoy_refuses_a_corrupt_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    assert run_script("train.py", "--agent", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--set",
                      "n_steps=64", "--n-envs", "1", "--run-dir", str(run_dir), "--no-progress").returncode == 0
    final = run_dir / "checkpoints" / "final.safetensors"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    proc = run_script("enjoy.py", "--run", str(run_dir))
    assert proc.returncode == 2
    assert "truncated or corrupt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
