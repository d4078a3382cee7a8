r"""Foreign-rig benchmark: the model on a rig unlike its training rig, scored on hidden labels.

The bags come from `mm-fusion record --rig foreign` (`sim.rig.FOREIGN_RIG`: camera 640x360 at
75 deg, 1.25 m high, 1.6 m ahead, pitched 3 deg down; radar 0.35 m right of the centre line,
yawed 4 deg right, CARLA-bridge point layout without rcs, 15 Hz; odometry, CameraInfo and
/tf_static recorded; no decision topic). The expert's labels are in `hidden_labels/*.json`
beside the bags and are read here only, for scoring. Each checkpoint is replayed offline
(`evaluation.replay.evaluate_bag_offline`, what `mm-fusion eval` runs) with

- `--geometry none`: the training rig assumed, frames and points as they come (a);
- `--geometry bag`: mounts from /tf_static, intrinsics from CameraInfo (b, c);

and the final decisions are scored against the hidden labels (macro-F1, per class, emergency
brake recall) and against the labels derived from the recorded driver (`recorded_driver`).
A directory of training-rig bags of the same scenarios (`mm-fusion record --rig training`,
same `--seed`, with the decision topic) is scored the same way for the reference figure.

The whole benchmark, as run for docs/own_rig.md:

    mm-fusion record --rig foreign --compressed --episodes 24 --seed 820000 --out F/test
    mm-fusion record --rig training --compressed --episodes 24 --seed 820000 \
        --out F/test_training_rig
    mm-fusion record --rig foreign --compressed --episodes 32 --seed 800000 --out F/adapt
    mm-fusion record --rig foreign --compressed --episodes 64 --seed 800032 --out F/adapt2
    mm-fusion record --rig foreign --compressed --episodes 8 --seed 810000 --out F/val
    mm-fusion record --rig foreign --compressed --episodes 16 --seed 810008 --out F/val2
    mm-fusion cache F/adapt F/adapt2 --topics F/adapt/topics.yaml --labels derived \
        --frame-stride 2 --out F/cache/adapt96
    mm-fusion cache F/val F/val2 --topics F/val/topics.yaml --labels derived \
        --frame-stride 2 --out F/cache/val24
    mm-fusion train --config config/training/finetune.yaml --train-cache F/cache/adapt96 \
        --val-cache F/cache/val24 --epochs 3 --out-dir F/finetune96
    python bench/foreign_rig.py --bags F/test --geometry none             # (a)
    python bench/foreign_rig.py --bags F/test --geometry bag              # (b)
    python bench/foreign_rig.py --bags F/test --geometry bag \
        --checkpoint F/finetune96/best.pt                                 # (c)
    python bench/foreign_rig.py --bags F/test_training_rig --topics sim_compressed  # reference
    mm-fusion closed-loop --rig foreign --episodes 100 --seed 900000 --drivers fused,expert \
        --checkpoint F/finetune96/best.pt --json F/cl_foreign.json        # closed loop

The derived labels of a rig without rcs (CARLA layout) count returns per detection instead
of rcs to tell vehicles from pedestrians and clutter (`labels.lead`); against the hidden
labels of F/test they score macro-F1 0.995 (0.941 before that rule).
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.bags import find_bags, load_bag_topics
from mm_fusion_ros.evaluation.recorded_driver import add_recorded_driver
from mm_fusion_ros.evaluation.replay import (
    ReplayConfig,
    evaluate_bag_offline,
    load_predictor,
    merge_results,
)
from mm_fusion_ros.evaluation.replay_report import compute_metrics
from mm_fusion_ros.paths import resolve_checkpoint


def hidden_labels(bag: Path) -> dict[int, tuple[int, float]] | None:
    """Stamp -> (action, acceleration) of `hidden_labels/<bag>.json` beside the bag."""
    path = bag.parent / 'hidden_labels' / f'{bag.name}.json'
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())['labels']
    return {int(s): (int(a), float(acc)) for s, a, acc in rows}


def attach_hidden(result, labels: dict[int, tuple[int, float]]) -> int:
    """Fill truth_action / truth_accel from the hidden labels; frames matched."""
    frames = result.frames
    n = 0
    for i, stamp in enumerate(frames['stamp_ns']):
        label = labels.get(int(stamp))
        if label is not None:
            frames['truth_action'][i], frames['truth_accel'][i] = label
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bags', required=True, help='directory of bags')
    parser.add_argument('--topics', default=None,
                        help='layout (default: <bags>/topics.yaml written by record --rig)')
    parser.add_argument('--checkpoint', default=None, help='model .pt (default: shipped)')
    parser.add_argument('--geometry', default='bag', choices=('bag', 'params', 'none'))
    parser.add_argument('--num-threads', type=int, default=2)
    parser.add_argument('--json', default=None, help='write the figures here')
    args = parser.parse_args()

    bags = find_bags([args.bags])
    topics = load_bag_topics(args.topics or Path(args.bags) / 'topics.yaml')
    checkpoint = str(resolve_checkpoint(args.checkpoint))
    predictor = load_predictor(checkpoint, args.num_threads)
    replay = ReplayConfig(geometry=args.geometry)
    t0 = time.perf_counter()
    results, hidden = [], 0
    for i, bag in enumerate(bags):
        result = evaluate_bag_offline(bag, topics, predictor, replay, bag_index=i)
        labels = hidden_labels(bag)
        if labels is not None:
            hidden += attach_hidden(result, labels)
        results.append(result)
    truth_frames = merge_results(results)[0]
    metrics = compute_metrics(*merge_results(results))
    gt = metrics.get('ground_truth') or {}
    # The recorded driver's agreement too (the figure a user without labels would see).
    for r in results:
        r.frames['truth_action'][:] = -1
    add_recorded_driver(results, [topics] * len(results))
    driver = compute_metrics(*merge_results(results)).get('recorded_driver') or {}
    labelled = (truth_frames['truth_action'] >= 0) & (truth_frames['action'] >= 0)
    out = {
        'bags': len(bags), 'topics': topics.name, 'checkpoint': checkpoint,
        'geometry': args.geometry, 'geometry_of_first_bag': results[0].info.get('geometry'),
        'frames': metrics['frames'], 'frames_scored': int(labelled.sum()),
        'hidden_label_frames': hidden, 'seconds': round(time.perf_counter() - t0, 1),
        'macro_f1': gt.get('macro_f1'), 'model_macro_f1': gt.get('model_macro_f1'),
        'accuracy': gt.get('accuracy'),
        'emergency_brake_recall': gt.get('emergency_brake_recall'),
        'per_class_f1': {k: v['f1'] for k, v in (gt.get('per_class') or {}).items()},
        'degraded_frames': metrics['robustness'].get('degraded_frames'),
        'recorded_driver': {k: driver.get(k) for k in ('frames', 'macro_f1', 'accel_mae',
                                                       'brake_onset')},
    }
    eb = int(Action.EMERGENCY_BRAKE)
    out['emergency_brake_frames'] = int((truth_frames['truth_action'] == eb).sum())
    print(json.dumps(out, indent=2, default=lambda v: float(v) if np.isscalar(v) else str(v)))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
