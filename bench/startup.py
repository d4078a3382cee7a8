"""Start-up: process start -> model ready (cold and warm ONNX cache), and a 10 s bag end to end.

Every figure is a fresh Python process, timed from just before it is spawned (wall clock, so
the interpreter start and every import count) to the moment it reports. The variants run
interleaved, round after round (`--repeats`), so machine load hits them alike:

- model ready = `FusionPredictor.from_checkpoint(...)` + `warmup()` done (shipped checkpoint,
  device auto, 2 threads): `no cache` (the cache off: load the checkpoint, hence import torch,
  and export the ONNX graph, as every start did before the cache), `cold` (an empty cache
  directory: the same work plus storing the entry), `warm` (entry stored: no torch import, no
  weights, no export), and `baseline` (the package at git revision `--baseline`, if given);
- offline evaluation of a `--bag-seconds` sim bag, start-up included (`run_offline_job`, what
  `mm-fusion eval` runs per bag), cold / warm / baseline, as drive seconds per wall second;
  and the whole `mm-fusion eval` command (reports and plots included), warm / baseline;
- node side: what importing `mm_fusion_ros.ros.fusion_node` costs, and whether it imports torch.

    python bench/startup.py [--repeats 3] [--bag-seconds 10] [--baseline REV] [--checkpoint X]

Targets (issue 26): model ready <= 3 s with a warm cache; 10 s bag >= 2x real time.
"""

import argparse
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from baseline import CHILD, child_cwd, child_env, extract, run_child  # noqa: E402

NODE_IMPORT = r"""
import sys, time
t0 = time.perf_counter()
import mm_fusion_ros.ros.fusion_node  # noqa: F401
print('RESULT {"done_s": %.3f, "torch_imported": %s}' % (time.perf_counter() - t0,
      str('torch' in sys.modules).lower()))
"""


def run_cli(bag: str, checkpoint: str, out: Path, env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, '-m', 'mm_fusion_ros.cli', 'eval', bag, '--topics', 'sim',
         '--checkpoint', checkpoint, '--out', str(out), '--quiet'],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f'mm-fusion eval failed:\n{proc.stderr[-3000:]}')
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    v = np.asarray(values)
    return f'median {np.median(v):5.2f} s (min {v.min():5.2f}, max {v.max():5.2f}, n={v.size})'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--bag-seconds', type=float, default=10.0)
    parser.add_argument('--baseline', default=None, metavar='REV',
                        help='also time the package at this git revision (e.g. HEAD~3)')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--bag', default=None, help='a sim bag instead of a generated one')
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from mm_fusion_ros.model.onnx_cache import ENV_VAR
    from mm_fusion_ros.paths import default_checkpoint

    checkpoint = args.checkpoint or str(default_checkpoint())
    with tempfile.TemporaryDirectory(prefix='startup_bench_') as tmp:
        tmp = Path(tmp)
        if args.bag:
            bag = args.bag
        else:
            from replay_speed import make_bag

            bag = str(make_bag(tmp / 'drive', args.bag_seconds))
        base_tree = extract(args.baseline, tmp / 'baseline') if args.baseline else None
        warm = child_env(None, dict(os.environ, **{ENV_VAR: str(tmp / 'warm')}))
        run_child(CHILD, [checkpoint, 'on'], warm, ROOT)  # fill the warm cache once
        old = child_env(base_tree, dict(os.environ, **{ENV_VAR: str(tmp / 'unused')}))
        ready: dict[str, list[float]] = {'no cache': [], 'cold': [], 'warm': []}
        evals: dict[str, list[float]] = {'cold': [], 'warm': []}
        cli: dict[str, list[float]] = {'warm': []}
        if base_tree is not None:
            for table in (ready, evals, cli):
                table['baseline'] = []
        torch_seen, drive, backend = {}, 0.0, ''
        for i in range(args.repeats):
            cold = child_env(None, dict(os.environ, **{ENV_VAR: str(tmp / f'cold{i}')}))
            cold_eval = child_env(None, dict(os.environ, **{ENV_VAR: str(tmp / f'cold_e{i}')}))
            runs = [('no cache', warm, ROOT, 'off'), ('cold', cold, ROOT, 'on'),
                    ('warm', warm, ROOT, 'on')]
            if base_tree is not None:
                runs.append(('baseline', old, child_cwd(base_tree), 'default'))
            for name, env, cwd, mode in runs:
                out = run_child(CHILD, [checkpoint, mode], env, cwd)
                ready[name].append(out['done_s'])
                torch_seen[name] = out['torch_imported']
                if name == 'warm':
                    backend = f"{out['backend']} on {out['device']}"
            for name, env, cwd in [('cold', cold_eval, ROOT), ('warm', warm, ROOT)] + (
                    [('baseline', old, child_cwd(base_tree))] if base_tree else []):
                out = run_child(CHILD, [checkpoint, 'default', bag], env, cwd)
                evals[name].append(out['done_s'])
                drive = out['drive_s']
            for name, env, cwd in [('warm', warm, ROOT)] + (
                    [('baseline', old, child_cwd(base_tree))] if base_tree else []):
                cli[name].append(run_cli(bag, checkpoint, tmp / 'report', env, cwd))
        node = run_child(NODE_IMPORT, [], child_env(None), ROOT)

    print(f'checkpoint {checkpoint}; {backend}; {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.1f}' + (f'; baseline {args.baseline}' if args.baseline else ''))
    print('process start -> model ready (from_checkpoint + warmup):')
    for name, values in ready.items():
        print(f'  {name:9s} {summary(values)}  torch imported: {torch_seen[name]}')
    for ref in ('no cache', 'baseline'):
        if ref in ready:
            ratio = np.median(ready[ref]) / np.median(ready['warm'])
            print(f'  warm cache vs {ref}: {ratio:.1f}x faster (target: warm <= 3 s)')
    print(f'offline evaluation of a {drive:.1f} s bag, process start included:')
    for name, values in evals.items():
        print(f'  {name:9s} {summary(values)} = {drive / np.median(values):.1f}x real time')
    for name, values in cli.items():
        print(f'  mm-fusion eval, {name} (with report and plots): {summary(values)} = '
              f'{drive / np.median(values):.1f}x real time (target >= 2x)')
    print(f"node side: importing mm_fusion_ros.ros.fusion_node takes {node['done_s']:.2f} s, "
          f"torch imported: {node['torch_imported']}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
