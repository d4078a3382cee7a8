"""Per-frame cost of FusionPredictor.predict: image preprocessing, work done once, pacing.

All comparisons run interleaved in one process (call by call), so machine load hits both sides
alike; `before` is the preprocessing the package had before (each frame normalised in float32,
then transposed; the earlier frame normalised again), `after` the current one (uint8 transpose
first, and the earlier frame's normalised input reused from when it was current). Shipped
checkpoint, onnxruntime on CPU, `--threads` threads.

1. One camera frame (256x128) to the model's normalised input: p50 / p99, ratio, and that the
   two agree bit for bit. Target <= 0.3 ms.
2. The inputs of one node frame (current + earlier frame + radar): prepare_batch before/after,
   and normalisations per frame, counted over a 20 Hz stream through CameraHistory.
3. predict() back to back and paced (each call after `--gap` ms idle, as a 20 Hz camera
   leaves it), before/after, and onnxruntime's intra-op thread pool variants (threads 1 / 2,
   spinning on / off) paced and back to back.

    python bench/predict_latency.py [--iters 400] [--threads 2] [--gap 50]
"""

import argparse
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_fusion_ros.model import preprocess  # noqa: E402
from mm_fusion_ros.model.predictor import FusionPredictor  # noqa: E402
from mm_fusion_ros.model.preprocess import prepare_batch  # noqa: E402
from mm_fusion_ros.paths import default_checkpoint  # noqa: E402
from mm_fusion_ros.sensors.camera_history import CameraHistory  # noqa: E402
from mm_fusion_ros.sensors.radar_sequence import RadarSequence  # noqa: E402

NS = 1_000_000_000


def legacy_normalise(frame, config, out=None):
    """The earlier preprocess_image: float32 normalise of (H, W, 3), then transpose."""
    mean = np.asarray(config.image_mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(config.image_std, np.float32) * 255.0)
    return np.ascontiguousarray(((frame.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1))


def stats(values) -> str:
    v = np.asarray(values) * 1e3
    return f'p50 {np.percentile(v, 50):7.3f} ms  p99 {np.percentile(v, 99):7.3f} ms'


def interleaved(fns: dict, iters: int, gap_s: float = 0.0,
                block: int = 1) -> dict[str, list[float]]:
    """Call each fn in turn, `block` calls at a time, `iters` calls each.

    With blocks > 1 the first call of a block is not counted, so no variant pays for the
    state another left; with gap_s, each call follows gap_s of idle.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, iters // block)):
        for name, fn in fns.items():
            for j in range(block + (block > 1)):
                if gap_s:
                    time.sleep(gap_s)
                start = time.perf_counter()
                fn()
                if block == 1 or j > 0:
                    times[name].append(time.perf_counter() - start)
    return times


def report(times: dict[str, list[float]], ref: str | None = None) -> None:
    for name, values in times.items():
        line = f'  {name:40s} {stats(values)}'
        if ref and name != ref:
            line += f'   {np.median(times[ref]) / np.median(values):5.2f}x faster than {ref}'
        print(line)


class Stream:
    """A 20 Hz camera stream through CameraHistory: (frame, earlier frame or None)."""

    def __init__(self, frames: list[np.ndarray], gap: float) -> None:
        self.frames, self.history, self.i = frames, CameraHistory(gap), 0

    def next(self) -> tuple[np.ndarray, np.ndarray | None]:
        self.i += 1
        rgb = self.frames[self.i % len(self.frames)].copy()  # a new array per frame, as decoded
        return rgb, self.history.push(self.i * NS // 20, rgb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=400)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--gap', type=float, default=50.0, help='[ms] idle before a paced call')
    parser.add_argument('--block', type=int, default=10,
                        help='predict() comparisons: calls in a row per variant')
    args = parser.parse_args()

    predictor = FusionPredictor.from_checkpoint(default_checkpoint(), device='cpu',
                                                num_threads=args.threads)
    predictor.warmup()
    cfg = predictor.config
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (cfg.image_height, cfg.image_width, 3), np.uint8)
              for _ in range(16)]
    seq = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
    seq.points[:] = rng.normal(size=seq.points.shape)
    seq.point_mask[:, :40] = True
    seq.frame_mask[:] = True
    seq.time_offsets[:] = -0.05 * np.arange(cfg.num_frames)[::-1]
    print(f'{predictor.backend} on {predictor.device}, {args.threads} threads; model frame '
          f'{cfg.input_height}x{cfg.image_width}')

    # 1. one frame ------------------------------------------------------------------------------
    frame = frames[0]
    same = np.array_equal(legacy_normalise(frame, cfg), preprocess.normalise_frame(frame, cfg))
    print(f'1. image preprocessing per frame (bit-identical: {same}), target <= 0.3 ms:')
    report(interleaved({'before (float, then transpose)': lambda: legacy_normalise(frame, cfg),
                        'after (uint8 transpose first)':
                            lambda: preprocess.normalise_frame(frame, cfg)},
                       args.iters * 3), 'before (float, then transpose)')

    # 2. one node frame's inputs ----------------------------------------------------------------
    real_normalise = preprocess.normalise_frame
    counts = {'before': 0, 'after': 0}
    streams = {k: Stream(frames, cfg.camera_history) for k in counts}
    cache = preprocess.FrameInputCache()

    def make(kind: str):
        def run():
            rgb, previous = streams[kind].next()
            normalise = legacy_normalise if kind == 'before' else real_normalise

            def counted(*a, **k):
                counts[kind] += 1
                return normalise(*a, **k)
            preprocess.normalise_frame = counted
            try:
                prepare_batch([rgb], [seq], cfg, [10.0], [previous],
                              frame_cache=cache if kind == 'after' else None)
            finally:
                preprocess.normalise_frame = real_normalise
        return run

    times = interleaved({'before': make('before'), 'after': make('after')}, args.iters)
    print('2. inputs of one node frame (current + earlier frame + radar):')
    report({f'prepare_batch {k} ({counts[k] / len(v):.2f} normalisations per frame)': v
            for k, v in times.items()},
           f'prepare_batch before ({counts["before"] / len(times["before"]):.2f} '
           'normalisations per frame)')

    # 3. predict() --------------------------------------------------------------------------------
    session_stream = Stream(frames, cfg.camera_history)
    old = FusionPredictor.from_checkpoint(default_checkpoint(), device='cpu',
                                          num_threads=args.threads)  # a session of its own

    def before_predict():
        rgb, previous = session_stream.next()
        preprocess.normalise_frame = legacy_normalise
        try:
            inputs = prepare_batch([rgb], [seq], cfg, [10.0], [previous])
        finally:
            preprocess.normalise_frame = real_normalise
        old.forward_arrays(inputs)

    after_stream = Stream(frames, cfg.camera_history)

    def after_predict():
        rgb, previous = after_stream.next()
        predictor.predict(rgb, seq, ego_speed=10.0, previous_rgb=previous)

    fns = {'predict before': before_predict, 'predict after': after_predict}
    for fn in fns.values():
        for _ in range(20):
            fn()
    print(f'3. predict(), back to back ({args.iters} calls each, interleaved in blocks of '
          f'{args.block}, each with a session of its own):')
    b2b = interleaved(fns, args.iters, block=args.block)
    report(b2b, 'predict before')
    print(f'   paced: each call after {args.gap:.0f} ms idle ({args.iters // 2} calls each):')
    paced = interleaved(fns, args.iters // 2, args.gap / 1e3, block=args.block)
    report(paced, 'predict before')
    ratio = np.median(paced['predict after']) / np.median(b2b['predict after'])
    print(f'   after: paced / back to back p50 {ratio:.2f}x')

    import onnxruntime as ort

    variants = {}
    graph = predictor.onnx_cache.load_graph('fused') if predictor.onnx_cache else None
    if graph is None:
        print('   (onnxruntime variants skipped: no cached graph)')
        return 0
    for threads in (1, 2):
        for spinning in ('1', '0'):
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = threads
            options.add_session_config_entry('session.intra_op.allow_spinning', spinning)
            session = ort.InferenceSession(graph, options, providers=['CPUExecutionProvider'])
            variants[f'ort threads {threads} spinning {"on" if spinning == "1" else "off"}'] = \
                session
    rgb, previous = Stream(frames, cfg.camera_history).next()
    feeds = prepare_batch([rgb], [seq], cfg, [10.0], [rgb]).as_dict()
    names = [i.name for i in next(iter(variants.values())).get_inputs()]
    feeds = {n: feeds[n] for n in names}
    fns = {k: (lambda s=s: s.run(None, feeds)) for k, s in variants.items()}
    for fn in fns.values():
        for _ in range(20):
            fn()
    print('   onnxruntime session run alone (batch 1), back to back:')
    report(interleaved(fns, args.iters // 2, block=args.block))
    print(f'   paced, each call after {args.gap:.0f} ms idle:')
    report(interleaved(fns, args.iters // 4, args.gap / 1e3, block=args.block))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
