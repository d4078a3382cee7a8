"""Run an earlier revision of the package beside the working tree, for before/after figures.

`extract(rev, dest)` writes the package and its config at git revision `rev` into `dest`;
`child_env(dest)` and `child_cwd(dest)` make a child Python process import that copy instead
of the working tree (the editable install's finder comes after PYTHONPATH, and the current
directory, which Python puts first, is the copy). The benches that take `--baseline REV`
(startup.py, replay_speed.py) interleave such children with the working tree's in one run.
`CHILD` is the child they time: model ready, or a bag evaluated, from process start.

    python bench/baseline.py REV DEST   # extract only (prints the directory)
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]


def extract(rev: str, dest: Path) -> Path:
    """Package, config and message definitions of `rev` (git archive) in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(['git', '-C', str(ROOT), 'archive', rev, 'mm_fusion_ros', 'config',
                              'mm_fusion_msgs'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(dest)], input=archive, check=True)
    return dest


def child_env(tree: Path | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment whose Python imports mm_fusion_ros from `tree` (None: the working tree)."""
    env = dict(os.environ if base is None else base)
    if tree is not None:
        env['PYTHONPATH'] = os.pathsep.join([str(tree)] + ([env['PYTHONPATH']]
                                                           if env.get('PYTHONPATH') else []))
    return env


def child_cwd(tree: Path | None) -> Path:
    return ROOT if tree is None else tree


# argv: start_ns checkpoint cache(on|off|default) [bag]
CHILD = r"""
import json, sys, time
t0 = int(sys.argv[1])
from mm_fusion_ros.model.predictor import FusionPredictor
kwargs = {}
if sys.argv[3] != 'default':
    kwargs['onnx_cache'] = sys.argv[3] == 'on'
if len(sys.argv) > 4:
    from mm_fusion_ros.bags import load_bag_topics
    from mm_fusion_ros.evaluation.replay import OfflineJob, run_offline_job
    started = time.perf_counter()
    result = run_offline_job(OfflineJob(sys.argv[4], load_bag_topics('sim'), sys.argv[2]))
    out = {'done_s': (time.time_ns() - t0) / 1e9, 'drive_s': result.duration_s,
           'job_s': time.perf_counter() - started, 'frames': result.num_frames}
else:
    predictor = FusionPredictor.from_checkpoint(sys.argv[2], device='auto', num_threads=2,
                                                **kwargs)
    predictor.warmup()
    out = {'done_s': (time.time_ns() - t0) / 1e9, 'backend': predictor.backend,
           'device': str(predictor.device)}
out['torch_imported'] = 'torch' in sys.modules
print('RESULT ' + json.dumps(out))
"""


def run_child(code: str, args: list[str], env: dict[str, str], cwd: Path) -> dict:
    start = time.time_ns()
    proc = subprocess.run([sys.executable, '-c', code, str(start), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if proc.returncode or not lines:
        raise RuntimeError(f'child failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('RESULT '):])


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip())
        return 0
    print(extract(sys.argv[1], Path(sys.argv[2])))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
