"""FusionModel: shapes, masking, modality flags, determinism, loss (small configs, CPU)."""

import math

import pytest
import torch

from mm_fusion_ros.actions import ACTION_LABELS, NUM_ACTIONS
from mm_fusion_ros.model import FusionModel, FusionModelConfig, FusionOutput, small_config
from mm_fusion_ros.model.export import example_inputs


def make_model(seed: int = 0, **overrides) -> FusionModel:
    torch.manual_seed(seed)
    return FusionModel(small_config(dropout=0.0, **overrides)).eval()


def run(model, args, modality='fused'):
    with torch.no_grad():
        return model(*args, modality=modality)


def run_training(model, args):
    """Training-mode forward (the dropouts under test), BatchNorm on its running stats."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        out = model(*args)
    model.eval()
    return out


@pytest.fixture(params=['transformer', 'gru'])
def model(request):
    return make_model(temporal_encoder=request.param)


def test_default_config_shapes_and_classes():
    cfg = FusionModelConfig()
    assert (cfg.image_height, cfg.image_width) == (128, 256)
    assert (cfg.num_frames, cfg.max_points, cfg.num_features) == (8, 64, 5)
    assert cfg.class_names == ACTION_LABELS and cfg.num_classes == NUM_ACTIONS
    assert cfg.image_grid == (4, 8)
    torch.manual_seed(0)
    model = FusionModel(cfg).eval()
    out = run(model, example_inputs(model, batch_size=2))
    assert isinstance(out, FusionOutput)
    assert out.logits.shape == (2, NUM_ACTIONS)
    assert out.accel.shape == (2,) and out.ttc.shape == (2,)


def test_config_dict_round_trip_and_validation():
    cfg = small_config(radar_features=('x', 'y', 'z', 'radial_velocity', 'rcs', 'vx', 'vy'))
    assert cfg.num_features == 7 and len(cfg.radar_scale) == 7
    assert FusionModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match='unknown'):
        FusionModelConfig.from_dict({'bogus': 1})
    with pytest.raises(ValueError):
        FusionModelConfig(temporal_encoder='lstm')
    with pytest.raises(ValueError):
        FusionModelConfig(radar_features=('x', 'doppler'))
    with pytest.raises(ValueError):
        FusionModelConfig(token_dim=30, num_heads=4)


def test_shapes_any_batch(model):
    for b in (1, 3):
        out = run(model, example_inputs(model, batch_size=b))
        assert out.logits.shape == (b, model.config.num_classes)
        assert out.accel.shape == (b,) and out.ttc.shape == (b,)
        cfg = model.config
        assert torch.all(out.ttc >= cfg.ttc_min * (1 - 1e-5))
        assert torch.all(out.ttc <= cfg.ttc_max * (1 + 1e-5))


def _all_finite(out):
    return all(torch.isfinite(x).all() for x in out)


@pytest.mark.parametrize('train', [False, True])
def test_all_empty_radar_is_finite(model, train):
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, batch_size=2)
    point_mask = torch.zeros_like(point_mask)
    frame_mask = torch.zeros_like(frame_mask)
    offsets = torch.zeros_like(offsets)
    model.train(train)
    args = (image, points, point_mask, frame_mask, offsets)
    for modality in ('fused', 'radar'):
        out = model(*args, modality=modality)
        assert _all_finite(out)
    if train:  # gradients through an all-empty radar stay finite as well
        out = model(*args)
        (out.logits.sum() + out.accel.sum() + out.ttc.sum()).backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()
                   if p.grad is not None)


def test_missing_frames_and_empty_frames_finite(model):
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, batch_size=2)
    frame_mask[0, :-1] = False        # only the newest frame
    point_mask[1, 2] = False          # a present but empty frame
    out = run(model, (image, points, point_mask, frame_mask, offsets))
    assert _all_finite(out)


def test_masked_points_do_not_change_outputs(model):
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, batch_size=2)
    frame_mask[1, 1] = False
    ref = run(model, (image, points, point_mask, frame_mask, offsets))
    junk = points.clone()
    hidden = ~(point_mask & frame_mask[..., None])
    junk[hidden] = torch.randn_like(junk[hidden]) * 1e4
    junk[0, 0, 0] = float('nan') if hidden[0, 0, 0] else junk[0, 0, 0]
    junk[hidden.nonzero()[0].unbind()] = float('inf')
    other = run(model, (image, junk, point_mask, frame_mask, offsets))
    for a, b in zip(ref, other, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # Time offsets of missing frames are ignored too.
    offsets2 = offsets.clone()
    offsets2[1, 1] = -123.0
    other = run(model, (image, points, point_mask, frame_mask, offsets2))
    torch.testing.assert_close(ref.logits, other.logits, rtol=0, atol=1e-6)


def test_real_points_and_time_offsets_matter(model):
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, batch_size=1)
    ref = run(model, (image, points, point_mask, frame_mask, offsets))
    moved = points.clone()
    moved[..., 3] += 2.0  # Doppler
    out = run(model, (image, moved, point_mask, frame_mask, offsets))
    assert not torch.allclose(ref.logits, out.logits)
    out = run(model, (image, points, point_mask, frame_mask, offsets * 3))
    assert not torch.allclose(ref.logits, out.logits)


def test_modality_flags_ignore_the_other_input(model):
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, batch_size=2)
    other_image = torch.randn_like(image)
    other_points = torch.randn_like(points)
    cam = run(model, (image, points, point_mask, frame_mask, offsets), 'camera')
    cam2 = run(model, (image, other_points, ~point_mask, frame_mask, offsets), 'camera')
    torch.testing.assert_close(cam.logits, cam2.logits)
    rad = run(model, (image, points, point_mask, frame_mask, offsets), 'radar')
    rad2 = run(model, (other_image, points, point_mask, frame_mask, offsets), 'radar')
    torch.testing.assert_close(rad.logits, rad2.logits)
    fused = run(model, (image, points, point_mask, frame_mask, offsets))
    assert not torch.allclose(fused.logits, cam.logits)
    assert not torch.allclose(fused.logits, rad.logits)
    with pytest.raises(ValueError, match='modality'):
        run(model, (image, points, point_mask, frame_mask, offsets), 'lidar')


def test_modality_dropout_matches_eval_single_modality():
    """A blanked modality in training equals the eval camera-only / radar-only run."""
    model = make_model(modality_dropout=1.0, ego_speed_dropout=0.0, history_dropout=0.0)
    args = example_inputs(model, batch_size=8)
    cam = run(model, args, 'camera')
    rad = run(model, args, 'radar')
    torch.manual_seed(3)
    out = run_training(model, args)  # dropout is 0
    for i in range(8):
        as_cam = torch.allclose(out.logits[i], cam.logits[i], atol=1e-5)
        as_rad = torch.allclose(out.logits[i], rad.logits[i], atol=1e-5)
        assert as_cam != as_rad
    torch.testing.assert_close(run(model, args).logits, run(model, args).logits)


def test_ego_speed_matters_and_unknown_speed_is_one_input():
    model = make_model()
    image, points, point_mask, frame_mask, offsets, *_ = example_inputs(model, 3)
    base = (image, points, point_mask, frame_mask, offsets)
    known = torch.ones(3, dtype=torch.bool)
    slow = run(model, base + (torch.full((3,), 2.0), known)).accel
    fast = run(model, base + (torch.full((3,), 25.0), known)).accel
    assert not torch.allclose(slow, fast)
    # Unknown speed: flags False (any value), NaN speeds, or no speed input at all agree.
    unknown = run(model, base + (torch.full((3,), 99.0), ~known)).logits
    torch.testing.assert_close(run(model, base).logits, unknown)
    nan = run(model, base + (torch.full((3,), math.nan), None)).logits
    torch.testing.assert_close(nan, unknown)


def test_ego_speed_dropout_trains_the_unknown_input():
    model = make_model(ego_speed_dropout=1.0, modality_dropout=0.0, history_dropout=0.0)
    args = example_inputs(model, batch_size=4)
    ref = run(model, args[:5] + (None, None, args[7])).logits  # eval, speed unknown
    torch.testing.assert_close(run_training(model, args).logits, ref)


def test_earlier_frame_matters_and_a_missing_one_is_zero_change():
    model = make_model()
    args = example_inputs(model, 3)
    image, rest, previous = args[0], args[1:7], args[7]
    moved = run(model, (image, *rest, previous)).logits
    still = run(model, (image, *rest, image)).logits
    assert not torch.allclose(moved, still)
    torch.testing.assert_close(run(model, (image, *rest, None)).logits, still)
    # camera_history 0: a single-frame model (3-channel stem) ignores the earlier frame.
    single = make_model(camera_history=0.0)
    assert single.image_branch.stem[0].in_channels == 3
    torch.testing.assert_close(run(single, (image, *rest, previous)).logits,
                               run(single, (image, *rest, image)).logits)


def test_history_dropout_trains_the_missing_frame_input():
    model = make_model(history_dropout=1.0, modality_dropout=0.0, ego_speed_dropout=0.0)
    args = example_inputs(model, batch_size=4)
    ref = run(model, args[:7] + (args[0],)).logits  # eval, no change
    torch.testing.assert_close(run_training(model, args).logits, ref)


def test_same_seed_same_outputs():
    a = make_model(seed=7)
    b = make_model(seed=7)
    c = make_model(seed=8)
    args = example_inputs(a, batch_size=2)
    torch.testing.assert_close(run(a, args).logits, run(b, args).logits, rtol=0, atol=0)
    assert not torch.allclose(run(a, args).logits, run(c, args).logits)
    torch.manual_seed(1)
    a.train()
    out1 = a(*args)
    torch.manual_seed(1)
    out2 = a(*args)
    torch.testing.assert_close(out1.logits, out2.logits, rtol=0, atol=0)


def test_loss_trains_every_parameter():
    torch.manual_seed(0)
    model = FusionModel(small_config(modality_dropout=0.0)).train()
    args = example_inputs(model, batch_size=4)
    out = model(*args)
    terms = model.loss(
        out, torch.tensor([0, 1, 2, 3]), torch.tensor([0.5, -1.0, -4.0, 0.0]),
        torch.tensor([2.0, math.inf, math.nan, 0.05]),
        torch.tensor([True, True, False, True]),
        class_weights=torch.ones(NUM_ACTIONS))
    assert all(torch.isfinite(t) for t in terms)
    assert terms.ttc > 0 and terms.action > 0
    terms.total.backward()
    unused = {'missing_image', 'missing_radar'}  # only reached by modality dropout / flags
    for name, p in model.named_parameters():
        if name in unused:
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    none_valid = model.loss(out, torch.zeros(4, dtype=torch.long), torch.zeros(4),
                            torch.full((4,), math.nan), torch.zeros(4, dtype=torch.bool))
    assert none_valid.ttc == 0


def test_loss_can_overfit_a_tiny_batch():
    torch.manual_seed(0)
    model = FusionModel(small_config(dropout=0.0, modality_dropout=0.0)).train()
    args = example_inputs(model, batch_size=4)
    target = torch.tensor([0, 2, 3, 5])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        out = model(*args)
        loss = model.loss(out, target, torch.tensor([0.0, -2.0, -6.0, 0.5]),
                          torch.tensor([9.0, 3.0, 0.8, 9.0]), torch.ones(4, dtype=torch.bool))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        first = first if first is not None else loss.total.item()
    assert loss.total.item() < 0.5 * first


def test_class_weights_weight_the_acceleration_term():
    model = make_model()
    out = run(model, example_inputs(model, batch_size=2))
    target = out.accel.detach().clone()
    target[1] -= 5.0  # a large miss on sample 1 only
    actions = torch.tensor([0, 3])
    light = model.loss(out, actions, target, torch.ones(2), torch.zeros(2, dtype=torch.bool),
                       class_weights=torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    heavy = model.loss(out, actions, target, torch.ones(2), torch.zeros(2, dtype=torch.bool),
                       class_weights=torch.tensor([1.0, 1.0, 1.0, 4.0, 1.0, 1.0]))
    assert heavy.accel > light.accel  # the emergency-brake miss counts 4x
    torch.testing.assert_close(heavy.accel, torch.tensor(4.5 * 4 / 5))
