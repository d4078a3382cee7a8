"""Inference backends side by side: eager fp32, bf16 autocast, TorchScript, onnxruntime (EPs).

For the default model with the shipped weights, at batch 1 and batch 64: forward time of
eager torch fp32, eager under bf16 autocast (CUDA), TorchScript (traced `ExportWrapper`; fp32
and, on CUDA, under bf16 autocast), onnxruntime with the CUDA execution provider and, when the
installed onnxruntime has it, the TensorRT one (on CPU: the CPU provider). Median and p99 over
`--iters` timed calls after `--warmup` calls, each call synchronised (torch.cuda.synchronize;
onnxruntime returns host arrays); each backend's largest difference from eager fp32 outputs
is recorded too. Then `FusionPredictor.predict` with `backend='auto'` (preprocessing and
readback included), which is what a node runs. Without CUDA the CUDA rows are skipped with a
line saying so and the CPU rows are measured instead, so the script runs anywhere.

Needs only torch, numpy and (for its rows) onnxruntime + onnx, and this repository on the path
(run it from the repository root; nothing to install). About 1-2 minutes on an H200,
`--budget-s` (150) stops measuring new rows past that.

    python3 bench/gpu_backends.py --out results.json [--iters 200] [--threads 2]
    python3 bench/gpu_backends.py --merge-table results.json   # into model/backend_table.py

`--merge-table` rewrites the measured rows of `mm_fusion_ros/model/backend_table.py` (the table
FusionPredictor's backend='auto' chooses from) with the JSON's rows, replacing earlier rows of
the same device.
"""

import argparse
from datetime import date
import json
import os
from pathlib import Path
import platform
import pprint
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mm_fusion_ros.model.export import (  # noqa: E402
    INPUT_NAMES,
    ExportWrapper,
    example_inputs,
    export_onnx,
)
from mm_fusion_ros.model.fusion import FusionModel  # noqa: E402
from mm_fusion_ros.paths import default_checkpoint  # noqa: E402

TABLE = ROOT / 'mm_fusion_ros' / 'model' / 'backend_table.py'
BEGIN, END = '# BEGIN MEASUREMENTS', '# END MEASUREMENTS'


def timed(fn, iters: int, warmup: int, sync) -> tuple[float, float]:
    """(p50, p99) [ms] of fn() over `iters` calls after `warmup` calls, synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    times = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def load_model() -> FusionModel:
    path = default_checkpoint()
    if path.is_file():
        from mm_fusion_ros.model.checkpoint import load_checkpoint

        return load_checkpoint(path)[0].eval()
    torch.manual_seed(0)
    return FusionModel().eval()


def cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'cpu'


class Bench:
    def __init__(self, args, device: torch.device) -> None:
        self.args, self.device = args, device
        self.cuda = device.type == 'cuda'
        self.sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        self.name = torch.cuda.get_device_name(device) if self.cuda else cpu_name()
        self.rows: list[dict] = []
        self.skipped: list[str] = []
        self.deadline = time.monotonic() + args.budget_s
        self.model = load_model().to(device)
        self.inputs = {b: example_inputs(self.model, b, device) for b in (1, 64)}
        with torch.inference_mode():
            self.reference = {b: [x.float().cpu().numpy() for x in self.model(*self.inputs[b])]
                              for b in self.inputs}

    def skip(self, what: str, why: str) -> None:
        line = f'{what}: skipped ({why})'
        self.skipped.append(line)
        print(f'  {line}', flush=True)

    def measure(self, backend: str, amp: str, provider: str | None, make) -> None:
        """make(batch) -> a callable returning (logits, accel, ttc) as tensors or arrays."""
        for batch in (1, 64):
            label = f'{backend} {amp}' + (f' [{provider}]' if provider else '')
            if time.monotonic() > self.deadline:
                self.skip(f'{label} batch {batch}', f'past --budget-s {self.args.budget_s}')
                continue
            fn = make(batch)
            out = fn()
            diff = max(float(np.max(np.abs(np.asarray(
                o.float().cpu() if torch.is_tensor(o) else o, np.float32) - r)))
                for o, r in zip(out, self.reference[batch], strict=True))
            iters = self.args.iters if batch == 1 else max(10, self.args.iters // 4)
            p50, p99 = timed(fn, iters, self.args.warmup, self.sync)
            row = {'device_type': self.device.type, 'device_name': self.name, 'batch': batch,
                   'backend': backend, 'amp': amp, 'provider': provider,
                   'p50_ms': round(p50, 4), 'p99_ms': round(p99, 4),
                   'per_frame_p50_ms': round(p50 / batch, 4), 'iters': iters,
                   'max_abs_diff': round(diff, 6),
                   'threads': None if self.cuda else torch.get_num_threads(),
                   'torch': torch.__version__, 'measured': date.today().isoformat(),
                   'source': 'bench/gpu_backends.py'}
            try:
                import onnxruntime

                row['onnxruntime'] = onnxruntime.__version__
            except ImportError:
                row['onnxruntime'] = None
            self.rows.append(row)
            print(f'  {label:48s} batch {batch:3d}  p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  '
                  f'({p50 / batch:7.4f} ms/frame)  max |diff| {diff:.2e}', flush=True)

    # -- backends ------------------------------------------------------------------------------
    def eager(self, amp: str) -> None:
        dtype = {'fp32': None, 'bf16': torch.bfloat16}[amp]

        def make(batch):
            inputs = self.inputs[batch]

            def run():
                with torch.inference_mode(), autocast(self.device, dtype):
                    return tuple(self.model(*inputs))
            return run
        self.measure('torch', amp, None, make)

    def torchscript(self, amp: str) -> None:
        dtype = {'fp32': None, 'bf16': torch.bfloat16}[amp]
        with torch.inference_mode():
            traced = torch.jit.trace(ExportWrapper(self.model).eval(), self.inputs[64],
                                     check_trace=False)

        def make(batch):
            inputs = self.inputs[batch]

            def run():
                with torch.inference_mode(), autocast(self.device, dtype):
                    return traced(*inputs)
            return run
        self.measure('torchscript', amp, None, make)

    def onnxruntime(self, graph: Path, provider: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not self.cuda:
            options.intra_op_num_threads = self.args.threads
            options.inter_op_num_threads = 1
        providers = [provider] + (['CPUExecutionProvider']
                                  if provider != 'CPUExecutionProvider' else [])
        session = ort.InferenceSession(str(graph), options, providers=providers)
        if session.get_providers()[0] != provider:
            self.skip(f'onnxruntime [{provider}]',
                      f'session fell back to {session.get_providers()}')
            return

        def make(batch):
            feeds = {n: x.cpu().numpy() for n, x in zip(INPUT_NAMES, self.inputs[batch],
                                                        strict=True)}
            return lambda: session.run(None, feeds)
        self.measure('onnxruntime', 'fp32', provider, make)

    def predictor(self) -> dict | None:
        from mm_fusion_ros.model.predictor import FusionPredictor
        from mm_fusion_ros.sensors.radar_sequence import RadarSequence

        if time.monotonic() > self.deadline:
            self.skip('FusionPredictor.predict', 'past --budget-s')
            return None
        predictor = FusionPredictor(load_model(), device=str(self.device),
                                    num_threads=None if self.cuda else self.args.threads)
        predictor.warmup()
        cfg = predictor.config
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (cfg.image_height, cfg.image_width, 3), np.uint8)
                  for _ in range(8)]
        seq = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
        seq.points[:] = rng.normal(size=seq.points.shape)
        seq.point_mask[:, :40] = True
        seq.frame_mask[:] = True
        k = [0]

        def run():
            k[0] += 1
            predictor.predict(frames[k[0] % 8], seq, ego_speed=10.0,
                              previous_rgb=frames[(k[0] - 5) % 8])
        p50, p99 = timed(run, self.args.iters, self.args.warmup, self.sync)
        amp = str(predictor.amp_dtype).replace('torch.', '') if predictor.amp_dtype else 'fp32'
        print(f'  FusionPredictor.predict, backend auto -> {predictor.backend} {amp}'
              f'{" [" + predictor.ort_provider + "]" if predictor.ort_provider else ""}: '
              f'p50 {p50:.3f} ms  p99 {p99:.3f} ms (batch 1, preprocessing included; chosen '
              f'by {predictor.backend_reason})', flush=True)
        return {'backend': predictor.backend, 'amp': amp, 'provider': predictor.ort_provider,
                'reason': predictor.backend_reason, 'p50_ms': round(p50, 4),
                'p99_ms': round(p99, 4)}


def run(args) -> dict:
    torch.manual_seed(0)
    if not args.cpu and torch.cuda.is_available():
        device = torch.device('cuda')
        print(f'CUDA: {torch.cuda.get_device_name(device)}, torch {torch.__version__}')
    else:
        device = torch.device('cpu')
        torch.set_num_threads(args.threads)
        why = '--cpu given' if args.cpu else 'torch.cuda.is_available() is False'
        print(f'CUDA: not used ({why}): the CUDA rows (bf16 autocast, onnxruntime CUDA and '
              f'TensorRT providers) are skipped; measuring the CPU rows, {args.threads} threads')
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        print(f'onnxruntime {onnxruntime.__version__}, providers {providers}')
    except ImportError:
        providers = []
        print('onnxruntime: not installed (its rows are skipped)')
    bench = Bench(args, device)
    started = time.monotonic()
    bench.eager('fp32')
    if bench.cuda:
        bench.eager('bf16')
    else:
        bench.skip('torch bf16 autocast', 'CUDA only here')
    bench.torchscript('fp32')
    if bench.cuda:
        bench.torchscript('bf16')
    if providers:
        with tempfile.TemporaryDirectory() as tmp:
            graph = export_onnx(bench.model.cpu(), Path(tmp) / 'fused.onnx')
            bench.model.to(device)
            wanted = (['CUDAExecutionProvider', 'TensorrtExecutionProvider'] if bench.cuda
                      else ['CPUExecutionProvider'])
            for provider in wanted:
                if args.skip_tensorrt and provider == 'TensorrtExecutionProvider':
                    bench.skip(f'onnxruntime [{provider}]', '--skip-tensorrt')
                elif provider in providers:
                    bench.onnxruntime(graph, provider)
                else:
                    bench.skip(f'onnxruntime [{provider}]',
                               'not in this onnxruntime build (onnxruntime-gpu has it)')
    predictor = bench.predictor()
    print(f'measured in {time.monotonic() - started:.0f} s')
    return {
        'meta': {'device': bench.name, 'device_type': device.type, 'torch': torch.__version__,
                 'python': platform.python_version(), 'providers': providers,
                 'threads': None if bench.cuda else args.threads,
                 'cpu_count': os.cpu_count(), 'date': date.today().isoformat()},
        'rows': bench.rows, 'skipped': bench.skipped, 'predictor': predictor,
    }


def print_table(result: dict) -> None:
    print(f"\n{'backend':44s} {'batch':>5s} {'p50 ms':>9s} {'p99 ms':>9s} {'ms/frame':>9s}")
    for r in sorted(result['rows'], key=lambda r: (r['batch'], r['p50_ms'])):
        label = f"{r['backend']} {r['amp']}" + (f" [{r['provider']}]" if r['provider'] else '')
        print(f"{label:44s} {r['batch']:5d} {r['p50_ms']:9.3f} {r['p99_ms']:9.3f} "
              f"{r['per_frame_p50_ms']:9.4f}")


def merge_table(path: Path) -> None:
    """Replace the table's rows of the JSON's device with the JSON's rows."""
    new = json.loads(path.read_text())['rows']
    sys.path.insert(0, str(ROOT))
    from mm_fusion_ros.model.backend_table import MEASUREMENTS

    devices = {(r['device_type'], r['device_name']) for r in new}
    rows = [r for r in MEASUREMENTS if (r['device_type'], r['device_name']) not in devices]
    rows += new
    rows.sort(key=lambda r: (r['device_type'], r['device_name'], r['batch'], r['p50_ms']))
    text = TABLE.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = pprint.pformat(rows, width=95, sort_dicts=True)
    block = (f'{BEGIN} (generated by bench/gpu_backends.py --merge-table; do not edit by hand)\n'
             f'MEASUREMENTS: list[dict[str, Any]] = {body}\n')
    TABLE.write_text(head + block + END + tail)
    print(f'{TABLE}: {len(rows)} rows ({len(new)} from {path})')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=None, help='write the results as JSON here')
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (CPU rows)')
    parser.add_argument('--cpu', action='store_true', help='measure the CPU rows even with CUDA')
    parser.add_argument('--skip-tensorrt', action='store_true',
                        help='no TensorRT provider (its engine build can take minutes)')
    parser.add_argument('--budget-s', type=float, default=150.0,
                        help='stop measuring new rows after this many seconds')
    parser.add_argument('--merge-table', default=None, metavar='JSON',
                        help='merge a results JSON into model/backend_table.py and exit')
    args = parser.parse_args()
    if args.merge_table:
        merge_table(Path(args.merge_table))
        return 0
    result = run(args)
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
