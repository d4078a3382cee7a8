"""Photometric augmentation: what it changes, what it must keep."""

import pytest
import torch

from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.train.augment import PhotometricAugment, PhotometricAugmentConfig

CFG = FusionModelConfig()


def _augment(**options) -> PhotometricAugment:
    return PhotometricAugment(PhotometricAugmentConfig.from_dict(options), CFG.image_mean,
                              CFG.image_std)


def _pixels(frame: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CFG.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(CFG.image_std).view(1, 3, 1, 1)
    return frame * std + mean


def _frames(b: int = 8, h: int = 32, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pixels = 0.2 + 0.6 * torch.rand(b, 3, h, w, generator=g)
    mean = torch.tensor(CFG.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(CFG.image_std).view(1, 3, 1, 1)
    return (pixels - mean) / std


def test_off_by_default_returns_the_inputs() -> None:
    image, previous = _frames(), _frames(seed=1)
    augment = _augment()
    assert not augment.enabled
    out, out_prev = augment(image, previous)
    assert out is image and out_prev is previous


def test_jittered_frames_stay_valid_pixels_and_change() -> None:
    torch.manual_seed(0)
    image, previous = _frames(), _frames(seed=1)
    out, out_prev = _augment(probability=1.0, blur_probability=0.5)(image, previous)
    for before, after in ((image, out), (previous, out_prev)):
        assert after.shape == before.shape
        p = _pixels(after)
        assert p.min() >= -1e-5 and p.max() <= 1 + 1e-5
        assert (after - before).flatten(1).abs().amax(1).min() > 1e-3  # every sample changed


def test_gain_only_scales_pixels_within_the_range() -> None:
    torch.manual_seed(1)
    image = _frames()
    out, _ = _augment(probability=1.0, brightness=0.3, contrast=0.0, color=0.0,
                      blur_probability=0.0, noise_std=0.0)(image, _frames(seed=2))
    ratio = _pixels(out) / _pixels(image)
    per_sample = ratio.flatten(1)
    # one gain per sample (clamping only ever lowers it at 1.0), inside [0.7, 1.3]
    gain = per_sample.amin(1)
    assert torch.all(gain >= 0.7 - 1e-4) and torch.all(per_sample.amax(1) <= 1.3 + 1e-4)
    unclamped = _pixels(out).flatten(1) < 1 - 1e-4
    assert torch.allclose(per_sample[unclamped],
                          gain[:, None].expand_as(per_sample)[unclamped], atol=1e-4)


def test_current_and_earlier_frame_share_the_draw_but_not_the_noise() -> None:
    torch.manual_seed(2)
    image = _frames()
    shared, shared_prev = _augment(probability=1.0, noise_std=0.0, blur_probability=0.5)(
        image, image.clone() + 0.0)
    # the earlier frame equals the current one: "no history", it must keep showing no change
    assert torch.equal(shared, shared_prev)
    earlier = _frames(seed=3)
    torch.manual_seed(3)
    noiseless, noiseless_prev = _augment(probability=1.0, noise_std=0.0,
                                         blur_probability=0.0)(image, earlier)
    # same gain and contrast: the pixel ratio to the input is the same affine map for both
    a = _pixels(noiseless) - _pixels(noiseless).mean(dim=(1, 2, 3), keepdim=True)
    b = _pixels(image) - _pixels(image).mean(dim=(1, 2, 3), keepdim=True)
    a_prev = _pixels(noiseless_prev) - _pixels(noiseless_prev).mean(dim=(1, 2, 3), keepdim=True)
    b_prev = _pixels(earlier) - _pixels(earlier).mean(dim=(1, 2, 3), keepdim=True)
    scale = (a * b).flatten(1).sum(1) / (b * b).flatten(1).sum(1)
    scale_prev = (a_prev * b_prev).flatten(1).sum(1) / (b_prev * b_prev).flatten(1).sum(1)
    assert torch.allclose(scale, scale_prev, rtol=0.05)
    torch.manual_seed(4)
    noisy, noisy_prev = _augment(probability=1.0, noise_std=0.05, brightness=0.0, contrast=0.0,
                                 color=0.0, blur_probability=0.0)(image, image + 1e-3)
    assert not torch.allclose(noisy - image, noisy_prev - image - 1e-3, atol=1e-3)


def test_probability_picks_that_share_of_samples() -> None:
    torch.manual_seed(5)
    image = _frames(b=2000, h=4, w=4)
    out, _ = _augment(probability=0.3)(image, _frames(b=2000, h=4, w=4, seed=1))
    changed = (out != image).flatten(1).any(1).float().mean().item()
    assert 0.25 < changed < 0.35


def test_blur_keeps_a_flat_frame_and_smooths_noise() -> None:
    from mm_fusion_ros.train.augment import _gaussian_blur

    flat = torch.full((2, 3, 16, 16), 0.5)
    assert torch.allclose(_gaussian_blur(flat, torch.tensor([0.5, 2.0])), flat)
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blurred = _gaussian_blur(noise, torch.tensor([0.5, 2.0]))
    assert blurred[0].std() < noise[0].std() and blurred[1].std() < blurred[0].std()


@pytest.mark.parametrize('options', [{'probability': 1.5}, {'brightness': 1.0},
                                     {'noise_std': -0.1}, {'gamma': 0.2}])
def test_bad_options_are_refused(options) -> None:
    with pytest.raises(ValueError):
        PhotometricAugmentConfig.from_dict(options)
