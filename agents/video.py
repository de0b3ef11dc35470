"""Watching agents: run episodes with any registered agent and turn the frames into videos.

``run_episodes`` drives ``model.predict(obs, state, episode_start)`` exactly as SB3's
``evaluate_policy`` does (so recurrent agents get their hidden state reset at episode starts)
on a single ``rgb_array`` env. ``record_training_video`` wraps that env in Gymnasium's
``RecordVideo`` (mp4 files in the run's ``videos/``) and logs the same frames to TensorBoard.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _batched(obs):
    if isinstance(obs, dict):
        return {k: np.expand_dims(v, 0) for k, v in obs.items()}
    return np.expand_dims(np.asarray(obs), 0)


def run_episodes(
    model,
    env: gym.Env,
    n_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> list[dict]:
    """Play ``n_episodes``; call ``on_frame`` on every rendered frame (reset and each step)."""
    episodes = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + episode)
        if on_frame:
            on_frame(env.render())
        state, episode_start = None, np.ones((1,), dtype=bool)
        total, length, done, info = 0.0, 0, False, {}
        while not done:
            action, state = model.predict(_batched(obs), state=state, episode_start=episode_start,
                                          deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action[0])
            episode_start = np.zeros((1,), dtype=bool)
            total += float(reward)
            length += 1
            done = terminated or truncated
            if on_frame:
                on_frame(env.render())
        episodes.append({"return": total, "length": length, "is_success": info.get("is_success")})
    return episodes


def headless() -> None:
    """Render off-screen: no window, no SDL complaints about a missing display."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def write_video(frames: list[np.ndarray], path: str | Path, fps: int) -> Path:
    """Write every frame to ``.mp4`` (H.264 via imageio-ffmpeg) or ``.gif``, atomically.

    Frames are padded to even sizes (H.264 needs them); no frame is dropped or duplicated.
    """
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"video file must end in .mp4 or .gif, got {path.name!r}")
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    try:
        if suffix == ".gif":
            imageio.mimsave(tmp, [np.asarray(f, dtype=np.uint8) for f in frames], duration=1000 / fps, loop=0)
        else:
            h, w = frames[0].shape[:2]
            pad = ((0, h % 2), (0, w % 2), (0, 0))
            with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                                    quality=7, ffmpeg_log_level="error") as writer:
                for frame in frames:
                    writer.append_data(np.pad(np.asarray(frame, dtype=np.uint8), pad))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def env_fps(env: gym.Env) -> int:
    return int(env.metadata.get("render_fps") or 30)


class _FrameKeepingRecordVideo(gym.wrappers.RecordVideo):
    """Gymnasium's RecordVideo that also keeps the frames of the episodes it writes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept_frames: list[np.ndarray] = []

    def stop_recording(self):
        self.kept_frames.extend(self.recorded_frames)
        super().stop_recording()


def record_training_video(model, config, run_dir: Path, n_episodes: int = 1) -> list[Path]:
    """Record ``n_episodes`` evaluation episodes into ``run_dir/videos`` and TensorBoard."""
    from agents.runner import make_env

    from agents.registry import get_agent

    headless()
    wrapper = get_agent(config.agent).env_wrapper(config.hyperparams)
    env = make_env(config.env, config.env_kwargs, render_mode="rgb_array", wrapper=wrapper)
    folder = Path(run_dir) / "videos"
    prefix = f"step{model.num_timesteps}"
    recorder = _FrameKeepingRecordVideo(env, str(folder), episode_trigger=lambda _: True, name_prefix=prefix,
                                        disable_logger=True)
    run_episodes(model, recorder, n_episodes, deterministic=True, seed=config.seed + 10_000)
    recorder.close()
    if recorder.kept_frames:
        log_video(model.logger, "eval/video", recorder.kept_frames, env_fps(env), model.num_timesteps)
    return sorted(folder.glob(f"{prefix}*.mp4"))


def log_video(logger, tag: str, frames: list[np.ndarray], fps: int, step: int) -> bool:
    """Add an animated-GIF video summary to the TensorBoard writer of an SB3 ``logger``.

    (torch's ``add_video`` needs moviepy 1.x's ``moviepy.editor``; this writes the same
    summary — an encoded GIF image, which TensorBoard's Images tab plays — without it.)
    """
    import io

    import imageio.v2 as imageio
    from stable_baselines3.common.logger import TensorBoardOutputFormat
    from tensorboard.compat.proto.summary_pb2 import Summary

    writers = [f.writer for f in logger.output_formats if isinstance(f, TensorBoardOutputFormat)]
    if not writers:
        return False
    buffer = io.BytesIO()
    imageio.mimsave(buffer, [np.asarray(f, dtype=np.uint8) for f in frames], format="GIF", duration=1000 / fps,
                    loop=0)
    h, w = frames[0].shape[:2]
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buffer.getvalue())
    for writer in writers:
        writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        writer.flush()
    return True
