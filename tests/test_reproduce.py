"""scripts/reproduce.py: the experiment framework and the noisy-TV experiment at toy budget."""

from __future__ import annotations

import json

from conftest import run_script


def test_unknown_experiment_is_refused():
    proc = run_script("reproduce.py", "noisy_vt")
    assert proc.returncode == 2 and "did you mean 'noisy_tv'" in proc.stderr


def test_list_names_the_experiments():
    proc = run_script("reproduce.py", "--list")
    assert proc.returncode == 0 and "noisy_tv" in proc.stdout


def test_noisy_tv_quick_end_to_end(tmp_path):
    out = tmp_path / "noisy_tv"
    proc = run_script("reproduce.py", "noisy_tv", "--quick", "--out", str(out), timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "metrics.json").read_text())
    assert data["experiment"] == "noisy_tv" and data["quick"] is True
    assert {"commit", "command", "wall_time_s", "machine", "runs"} <= data.keys()
    labels = {run["label"] for run in data["runs"]}
    assert {"curious-c-m/progress", "curious-c-m/adversarial", "curious-c-m/rnd", "curious-c-m/none"} <= labels
    assert len({(r["label"], r["seed"]) for r in data["runs"]}) == len(data["runs"])
    for run in data["runs"]:
        assert run["error"] is None
        metrics = run["metrics"]
        assert 0.0 <= metrics["tv_fraction"] <= 1.0 and 0.0 < metrics["coverage"] <= 1.0
        assert len(metrics["coverage_curve"]) == 10
        assert metrics["coverage_curve"] == sorted(metrics["coverage_curve"]), "coverage never decreases"
        if run["agent"] == "curious-c-m":
            assert metrics["model_error_learnable"] > 0
            assert run["hyperparams"]["curiosity"] == run["label"].split("/")[1].split(" ")[0]
    readme = (out / "README.md").read_text()
    assert "Quick mode" in readme and "| curious-c-m/progress | 1 |" in readme
    for name in ("curves.png", "heatmaps.png", "episode_curious_c_m_progress.gif",
                 "episode_curious_c_m_adversarial.gif"):
        assert (out / name).stat().st_size > 1000, name


def test_render_envs_writes_a_frame_and_a_random_policy_video(tmp_path):
    import imageio_ffmpeg

    proc = run_script("render_envs.py", "--env", "mirabilis/TMaze-v0", "--env-kwargs", "length=3",
                      "--out", str(tmp_path / "videos"), "--frames", str(tmp_path / "frames"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "frames" / "TMaze.png").stat().st_size > 1000
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "videos" / "TMaze_random.mp4"))
    assert frames == int(proc.stdout.split("(")[-1].split(" frames")[0]) > 1
    bad = run_script("render_envs.py", "--env", "mirabilis/TMaze-v0", "--env-kwargs", "length=0",
                     "--out", str(tmp_path / "v2"), "--frames", str(tmp_path / "f2"))
    assert bad.returncode == 2 and "length" in bad.stderr


def test_noisy_tv_sweep_refuses_a_filter_that_matches_nothing():
    proc = run_script("sweep_noisy_tv.py", "room", "2048", "--only", "r9")
    assert proc.returncode == 2 and "no config of 'room' matches" in proc.stderr


def test_noisy_tv_sweep_runs_one_config(tmp_path):
    """The committed sweep runs a config and prints its summary line (toy budget)."""
    proc = run_script("sweep_noisy_tv.py", "room", "1024", "--only", "r1 none", "--workers", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["name"] for line in lines] == ["r1 none"]
    assert 0.0 < lines[0]["coverage"] <= 1.0 and len(lines[0]["cov_curve"]) == 10
