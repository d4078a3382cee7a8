"""Training-step cost on CPU: photometric augmentation against forward + backward + AdamW.

Usage: python bench/train_step.py [--batch 64] [--iters 20] [--threads 2]
Prints p50/p99 [ms] of `PhotometricAugment` (config/training/train_dagger3.yaml's settings) on
a batch of current and earlier frames, of one training step of the default FusionModel on that
batch, and their ratio. Target: augmentation <= 25 % of the step.
"""

import argparse
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.model_latency import timings  # noqa: E402
from mm_fusion_ros.model import FusionModel  # noqa: E402
from mm_fusion_ros.model.export import example_inputs  # noqa: E402
from mm_fusion_ros.paths import config_dir  # noqa: E402
from mm_fusion_ros.train.augment import PhotometricAugment, PhotometricAugmentConfig  # noqa: E402
from mm_fusion_ros.train.config import TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = FusionModel()
    inputs = list(example_inputs(model, args.batch))
    train_config = TrainConfig.from_yaml(config_dir() / 'training' / 'train_dagger3.yaml')
    augment = PhotometricAugment(PhotometricAugmentConfig.from_dict(train_config.augment),
                                 model.config.image_mean, model.config.image_std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    action = torch.randint(0, 6, (args.batch,))
    accel, ttc = torch.randn(args.batch), 5 * torch.rand(args.batch)
    ttc_valid = torch.ones(args.batch, dtype=torch.bool)

    def jitter() -> None:
        augment(inputs[0], inputs[-1])

    def step() -> None:
        model.train()
        out = model(*inputs)
        loss = model.loss(out, action, accel, ttc, ttc_valid).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    aug = timings(jitter, args.iters, warmup=2)
    train = timings(step, args.iters, warmup=2)
    print(f'batch {args.batch}, {args.threads} threads, {args.iters} iterations')
    print(f'{"":<28}{"p50_ms":>8}{"p99_ms":>8}')
    print(f'{"photometric augmentation":<28}{aug[0]:>8.1f}{aug[1]:>8.1f}')
    print(f'{"training step (fwd+bwd+opt)":<28}{train[0]:>8.1f}{train[1]:>8.1f}')
    print(f'augmentation / step (p50): {aug[0] / train[0]:.1%}')


if __name__ == '__main__':
    main()
