"""``world_models/retina.py``: M's spatial read-out of a glimpse and C's soft-argmax saccade head."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from world_models import RecurrentWorldModel, SequenceBatch
from world_models.retina import RetinaGeometry, RetinaReadout, SaccadeHead


def fovea_env(**kwargs):
    return gym.make("mirabilis/FoveaSearch-v0", **kwargs)


def test_geometry_is_read_from_the_env_and_places_pixels_and_saccades_in_scene_pixels():
    geometry = RetinaGeometry.from_env(fovea_env())
    assert (geometry.n_scales, geometry.glimpse_size, geometry.scale_ratio, geometry.scene_size) == (3, 8, 4, 64)
    offsets = geometry.offsets  # [3, 64, 2]: the sharp patch's pixel centres are +-0.5 .. +-3.5 px, the widest +-8 .. +-56
    assert offsets.shape == (3, 64, 2)
    assert offsets[0, :, 0].unique().tolist() == [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]
    assert offsets[2, :, 1].min().item() == -56.0 and offsets[2, :, 1].max().item() == 56.0
    obs = torch.zeros(2, 581)
    obs[0, geometry.fovea] = torch.tensor([0.0, 0.0])  # scene centre (32, 32)
    obs[1, geometry.fovea] = torch.tensor([1.0, -1.0])  # corner (64, 0)
    action = torch.tensor([[0.5, -1.0], [1.0, 1.0]])
    # centre + (16, -32) = (48, 0); corner + (32, 32) clipped to the scene = (64, 32)
    torch.testing.assert_close(geometry.saccade_offset(obs, action), torch.tensor([[16.0, -32.0], [0.0, 32.0]]))
    with pytest.raises(ValueError, match="retina observation"):
        RetinaGeometry.from_env(gym.make("Pendulum-v1"))


def test_the_readout_gradient_leads_a_saccade_to_the_scoring_pixel_from_far_away():
    """With a score of 1 on one coarse pixel (and 0 elsewhere), ascending the read-out moves the landing point onto it."""
    geometry = RetinaGeometry.from_env(fovea_env())
    readout = RetinaReadout(geometry, n_out=1)
    marked = (2, 1 * 8 + 6)  # the widest scale's pixel at row 1, column 6: centre (40, -40) px from the fovea
    obs = torch.zeros(1, 581)
    rgb = obs[0, geometry.glimpse].view(3, 3, 64)
    rgb[marked[0], 0, marked[1]] = 1.0  # red there, nothing elsewhere

    class RedScore(torch.nn.Module):
        def forward(self, obs):
            return geometry.pixel_features(obs)[..., :1]

    readout.scores = RedScore()
    obs[0, geometry.fovea] = torch.tensor([-0.25, 0.5])  # fovea at (24, 48): the pixel sits at (64, 8) in the scene
    target = geometry.offsets[marked] / geometry.max_jump  # (1.25, -1.25): (40, -40) px
    action = torch.zeros(1, 2, requires_grad=True)  # start on the fovea, 57 px from the pixel's centre
    optimizer = torch.optim.Adam([action], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        (-readout(obs, action).sum()).backward()
        optimizer.step()
    landing = geometry.saccade_offset(obs, action.detach())[0]
    assert torch.allclose(landing, geometry.offsets[marked], atol=1.0), (landing, target)


def test_readout_kernel_weights_are_exactly_zero_far_from_a_pixel_never_subnormal():
    """Far from a narrow pixel the Gaussian underflows; the kernel sets it to 0 rather than to subnormal floats (which
    slow every CPU op that touches them) and keeps every weight above the cutoff as it is."""
    from world_models.retina import KERNEL_CUTOFF

    readout = RetinaReadout(RetinaGeometry.from_env(fovea_env()), n_out=2)
    coordinates = torch.linspace(-64.0, 64.0, 257)
    kernel = readout._kernel(coordinates)  # [K, S, G, n_out]
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float32
    assert not ((kernel > 0) & (kernel < tiny)).any()
    assert (kernel == 0).any() and (kernel > 0.5).any()
    centres = readout.offsets[:, :8, 0]
    inv_var = torch.exp(-2 * readout.log_sigma)[:, None]
    exponent = -0.5 * (coordinates[:, None, None, None] - centres[..., None]).pow(2) * inv_var
    kept = exponent >= KERNEL_CUTOFF
    assert torch.equal(kernel[kept], torch.exp(exponent)[kept]) and (kernel[~kept] == 0).all()


def test_saccade_head_points_at_the_pixel_its_scores_single_out():
    geometry = RetinaGeometry.from_env(fovea_env())
    head = SaccadeHead(geometry)

    class OnePixel(torch.nn.Module):
        def forward(self, obs):
            out = torch.full(geometry.pixel_features(obs).shape[:-1] + (1,), -30.0)
            out[..., 1, 9, 0] = 30.0  # scale 1 (4 px pixels), row 1, column 1: (-10, -10) px
            return out

    head.scores = OnePixel()
    saccade = head(torch.zeros(5, 581))
    torch.testing.assert_close(saccade, torch.full((5, 2), -10.0 / 32.0))


def test_bernoulli_reward_channels_stay_in_bounds_and_learn_an_event_probability():
    """A channel in [0, 1] that is 1 with probability 0.2 is learned as 0.2; the unbounded channel by squared error."""
    obs_space, act_space = gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,))
    model = RecurrentWorldModel(obs_space, act_space, n_reward_channels=2, hidden_size=16, embed_size=16, lr=1e-2,
                                reward_loss="bernoulli", reward_bounds=([0.0, -np.inf], [1.0, np.inf]))
    assert model.reward_bernoulli.tolist() == [True, False]
    rng = np.random.default_rng(0)

    for _ in range(150):
        rewards = np.stack([rng.random((4, 32)) < 0.2, np.full((4, 32), 3.0)], -1).astype(np.float32)
        batch = SequenceBatch.from_numpy(obs=rng.uniform(-1, 1, (4, 32, 2)).astype(np.float32),
                                         actions=rng.uniform(-1, 1, (4, 32, 1)).astype(np.float32),
                                         rewards=rewards, next_obs=rng.uniform(-1, 1, (4, 32, 2)).astype(np.float32),
                                         terminations=np.zeros((4, 32), np.float32),
                                         episode_starts=np.zeros((4, 32), np.float32))
        model.train_on_sequences(batch)
    prediction, _ = model.forward_sequence(batch.obs, batch.actions)
    event, constant = prediction.reward[..., 0], prediction.reward[..., 1]
    assert ((event > 0) & (event < 1)).all()
    assert abs(event.mean().item() - 0.2) < 0.05
    assert abs(constant.mean().item() - 3.0) < 0.2
    with pytest.raises(ValueError, match="reward_bounds"):
        RecurrentWorldModel(obs_space, act_space, reward_loss="bernoulli")


def readout_model_and_scenes():
    """A small M with the spatial read-out (Bernoulli channels as the fovea's) and 3 fovea scenes."""
    env = fovea_env()
    geometry = RetinaGeometry.from_env(env)
    space = env.unwrapped.reward_space
    model = RecurrentWorldModel(env.observation_space, env.action_space, n_reward_channels=3, hidden_size=16,
                                embed_size=16, reward_loss="bernoulli", reward_bounds=(space.low, space.high),
                                readout=RetinaReadout(geometry, n_out=4))
    return env, geometry, model, torch.as_tensor(np.stack([env.reset(seed=i)[0] for i in range(3)]))


def test_readout_predictions_of_many_saccades_at_once_match_the_model_one_by_one():
    env, geometry, model, obs = readout_model_and_scenes()
    actions = torch.rand(3, 5, 2) * 2 - 1
    rewards, termination = model.readout_predictions(obs, actions)
    for k in range(5):
        prediction, _ = model.forward_sequence(obs[None], actions[None, :, k])
        torch.testing.assert_close(rewards[:, k], prediction.reward[0])
        torch.testing.assert_close(termination[:, k], prediction.termination_logit[0])
    with pytest.raises(ValueError, match="readout"):
        RecurrentWorldModel(env.observation_space, env.action_space).readout_predictions(obs, actions)


def test_pixel_scores_without_building_the_features_equal_the_net_on_the_features():
    """The factorised first layer (per-observation affine map of RGB) and per-scale output layers are the same net."""
    env = fovea_env()
    geometry = RetinaGeometry.from_env(env)
    readout = RetinaReadout(geometry, n_out=3)
    torch.manual_seed(0)
    for p in readout.parameters():
        torch.nn.init.normal_(p)
    obs = torch.as_tensor(np.stack([env.reset(seed=i)[0] for i in range(4)]))
    features = geometry.pixel_features(obs)  # [4, S, P, F]
    assert features.shape == (4, 3, 64, geometry.n_features)
    full = readout.scores.net(features).unflatten(-1, (3, 3))  # [4, S, P, S', n_out]: every output layer everywhere
    expected = torch.stack([full[:, s, :, s] for s in range(3)], 1)  # scale s's pixels through layer s
    torch.testing.assert_close(readout.scores(obs), expected, rtol=1e-5, atol=1e-4)


def test_grid_predictions_equal_the_saccades_listed_one_by_one_and_the_head_reads_its_candidates_off_the_grid():
    env, geometry, model, obs = readout_model_and_scenes()
    obs[0, geometry.fovea] = torch.tensor([0.9, -1.0])  # near a corner: many landings are clipped to the scene
    xs, ys = torch.linspace(-1, 1, 5), torch.tensor([-0.7, 0.0, 0.2])
    rewards, termination = model.readout_grid_predictions(obs, xs, ys)  # [B, J, I, C], [B, J, I]
    assert rewards.shape == (3, 3, 5, 3) and termination.shape == (3, 3, 5)
    listed = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(1, 15, 2).expand(3, -1, -1)  # (x_i, y_j)
    expected_rewards, expected_termination = model.readout_predictions(obs, listed)
    torch.testing.assert_close(rewards.reshape(3, 15, 3), expected_rewards)
    torch.testing.assert_close(termination.reshape(3, 15), expected_termination)
    # C's candidates (every glimpse pixel's saccade) are the blocks s == s' of its candidate axis x itself
    head = SaccadeHead(geometry)
    axis = head.candidate_axis.clamp(-1, 1)
    grid = model.readout.on_action_grid(obs, axis, axis)
    torch.testing.assert_close(head.from_grid(grid),
                               model.readout.at_actions(obs, head.candidates.clamp(-1, 1).expand(3, -1, -1)))
