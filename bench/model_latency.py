"""Fusion model cost: params, FLOPs, batch-1 latency (eager torch, onnxruntime, CUDA).

Usage: python bench/model_latency.py [--iters 200] [--threads 2] [--skip-ort]
Prints, for the default FusionModelConfig with `--fovea-height` rows (0: the shipped model,
the view alone; 64: view + fovea from a 512x256 camera), parameters per branch, MACs/FLOPs
(counted with torch.utils.flop_counter.FlopCounterMode: conv, linear, matmul; elementwise ops
are not counted), and batch-1 forward p50/p99 on CPU with `--threads` threads for eager torch
(NCHW and channels_last), onnxruntime, and the full FusionPredictor.predict (preprocessing
included); on CUDA when present, eager under bf16 autocast and fp32. Fused, camera-only and
radar-only are measured separately. Target: CPU eager fused p50 <= 15 ms on 2 cores.
"""

import argparse
import logging
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_fusion_ros.model import FusionModel, FusionModelConfig, FusionPredictor  # noqa: E402
from mm_fusion_ros.model.export import INPUT_NAMES, example_inputs, export_onnx  # noqa: E402
from mm_fusion_ros.sensors.radar_sequence import RadarSequence  # noqa: E402

MODALITIES = ('fused', 'camera', 'radar')


def timings(fn, iters: int, warmup: int, sync=None) -> tuple[float, float]:
    """(p50, p99) in ms of `fn()` over `iters` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(model: FusionModel, args, modality: str) -> int:
    counter = FlopCounterMode(display=False)
    with counter:  # grad mode on: FlopCounterMode's module tracker hooks autograd
        model(*args, modality=modality)
    return counter.get_total_flops()


def line(label: str, p50: float, p99: float) -> None:
    print(f'  {label:<44s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-ort', action='store_true')
    parser.add_argument('--fovea-height', type=int, default=0, help='64: view + fovea rows')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = FusionModelConfig(fovea_height=args.fovea_height)
    model = FusionModel(cfg).eval()
    inputs = example_inputs(model, batch_size=1)

    print(f'config: image {cfg.image_height}x{cfg.image_width} + {cfg.fovea_height} fovea rows, '
          f'widths {cfg.stage_widths} blocks {cfg.stage_blocks}, D={cfg.token_dim}, '
          f'T={cfg.num_frames} '
          f'N={cfg.max_points} F={cfg.num_features}, temporal={cfg.temporal_encoder}, '
          f'fusion {cfg.fusion_tokens} tokens x {cfg.fusion_layers} layers')
    n_image, n_radar = count_params(model.image_branch), count_params(model.radar_encoder)
    n_total = count_params(model)
    print(f'params: total {n_total:,}  image {n_image:,}  radar {n_radar:,}  '
          f'fusion+heads {n_total - n_image - n_radar:,}')
    for modality in MODALITIES:
        flops = count_flops(model, inputs, modality)
        print(f'  {modality:<7s} {flops / 2e6:8.1f} MMACs  {flops / 1e9:6.3f} GFLOPs (batch 1)')

    print(f'CPU, {torch.get_num_threads()} threads, batch 1 ({args.iters} iters):')
    with torch.inference_mode():
        for modality in MODALITIES:
            line(f'eager {modality}', *timings(
                lambda m=modality: model(*inputs, modality=m), args.iters, args.warmup))
        model_cl = FusionModel(cfg).eval().to(memory_format=torch.channels_last)
        model_cl.load_state_dict(model.state_dict())
        image_cl = inputs[0].contiguous(memory_format=torch.channels_last)
        line('eager fused, channels_last', *timings(
            lambda: model_cl(image_cl, *inputs[1:]), args.iters, args.warmup))

    if not args.skip_ort:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        feeds_all = {n: a.numpy() for n, a in zip(INPUT_NAMES, inputs, strict=True)}
        with tempfile.TemporaryDirectory() as tmp:
            for modality in MODALITIES:
                path = export_onnx(model, Path(tmp) / f'{modality}.onnx', modality)
                session = ort.InferenceSession(
                    str(path), options, providers=['CPUExecutionProvider'])
                feeds = {i.name: feeds_all[i.name] for i in session.get_inputs()}
                line(f'onnxruntime {modality}', *timings(
                    lambda s=session, f=feeds: s.run(None, f), args.iters, args.warmup))

    rng = np.random.default_rng(0)
    scale = 2 if cfg.fovea_height else 1  # a fovea reads a camera at twice the view's size
    rgb = rng.integers(0, 256, (scale * cfg.image_height, scale * cfg.image_width, 3),
                       dtype=np.uint8)
    previous = np.roll(rgb, 2, axis=1)  # the frame camera_history s earlier
    seq = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
    seq.points[:] = rng.normal(size=seq.points.shape)
    seq.point_mask[:, :40] = True
    seq.frame_mask[:] = True
    seq.time_offsets[:] = -0.05 * np.arange(cfg.num_frames)[::-1]
    backends = ['torch'] + ([] if args.skip_ort else ['onnxruntime'])
    for backend in backends:
        predictor = FusionPredictor(model, device='cpu', num_threads=args.threads,
                                    backend=backend)
        line(f'FusionPredictor.predict ({backend}, + preprocess)', *timings(
            lambda p=predictor: p.predict(rgb, seq, previous_rgb=previous), args.iters,
            args.warmup))

    if torch.cuda.is_available():
        device = torch.device('cuda')
        gpu_model = FusionModel(cfg).eval().to(device)
        gpu_model.load_state_dict(model.state_dict())
        gpu_inputs = example_inputs(gpu_model, batch_size=1, device=device)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        print(f'CUDA {torch.cuda.get_device_name(device)}, batch 1:')
        with torch.inference_mode():
            for modality in MODALITIES:
                with torch.autocast('cuda', dtype=dtype):
                    line(f'eager {modality} {dtype}', *timings(
                        lambda m=modality: gpu_model(*gpu_inputs, modality=m), args.iters,
                        args.warmup, torch.cuda.synchronize))
            line('eager fused fp32', *timings(
                lambda: gpu_model(*gpu_inputs), args.iters, args.warmup, torch.cuda.synchronize))
        predictor = FusionPredictor(model, device='cuda')
        line(f'FusionPredictor.predict (cuda {dtype}, + preprocess)', *timings(
            lambda: predictor.predict(rgb, seq, previous_rgb=previous), args.iters,
            args.warmup))
    else:
        print('CUDA: not available on this machine (skipped)')


if __name__ == '__main__':
    main()
