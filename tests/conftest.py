import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` in a subprocess the way a user would."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env,
    )


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_folder(tmp_path_factory):
    """SB3's ``learn()`` without a logger of its own makes an empty ``SB3-<time>`` folder in the temp dir (its
    ``configure(None)``), hundreds per test run; ``$SB3_LOGDIR`` puts them all in pytest's own temp folder."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield
