"""`mm-fusion label BAG_OR_DIR...`: per-frame decisions derived from what the recorded ego did.

Prints the derived labels per class and the unlabelled frames per reason; when a bag has the
expert's decision topic (simulator bags), scores the derived labels against it (macro-F1,
per-class F1, confusion matrix, acceleration error). `--out labels.json|labels.npz` writes every
frame's label. The rules and thresholds: `mm_fusion_ros.labels`.
"""

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', metavar='BAG_OR_DIR',
                        help='bag directories / .mcap / .db3 files, or directories of bags')
    parser.add_argument('--topics', default='auto',
                        help='bag layout: a preset (sim, sim_compressed, carla, nuscenes), a'
                        ' YAML path, or auto (first preset the bag matches)')
    parser.add_argument('--out', default=None,
                        help='write the labels: .json (per bag) or .npz (arrays)')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a threshold of LabelConfig (repeatable)')
    parser.add_argument('--quiet', action='store_true', help='no per-bag lines')


def _overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    from mm_fusion_ros.errors import UserInputError

    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise UserInputError(f'--set {item!r}: expected KEY=VALUE')
        out[key.strip()] = yaml.safe_load(value)
    return out


def _table(title: str, counts: dict[str, int]) -> str:
    total = sum(counts.values())
    rows = [f'{title} ({total}):']
    for name, n in counts.items():
        rows.append(f'  {name:<18} {n:>7}  {100.0 * n / max(total, 1):5.1f} %')
    return '\n'.join(rows)


_SHORT = {'emergency_brake': 'e_brake', 'change_lane_left': 'lane_L',
          'change_lane_right': 'lane_R'}


def _report_text(score: dict[str, Any]) -> str:
    labels = score['labels']
    lines = [f'against the expert ({score["frames"]} frames labelled by both):'
             f' macro-F1 {score["macro_f1"]:.4f}, accuracy {score["accuracy"]:.4f},'
             f' target acceleration MAE {score.get("accel_mae", float("nan")):.3f} m/s^2']
    lines.append('  ' + '  '.join(f'{name} {f:.3f}' for name, f in zip(
        labels, score['f1'], strict=True)))
    width = max(len(n) for n in labels)
    lines.append('  confusion (rows: expert, columns: derived):')
    lines.append('  ' + ' ' * width + ''.join(f'{_SHORT.get(n, n[:8]):>9}' for n in labels))
    for name, row in zip(labels, score['confusion'], strict=True):
        lines.append(f'  {name:<{width}}' + ''.join(f'{v:>9}' for v in row))
    return '\n'.join(lines)


def _write(path: str, results: list[Any], config: Any, summary: dict[str, Any]) -> None:
    from dataclasses import asdict
    import json

    import numpy as np

    from mm_fusion_ros.actions import ACTION_LABELS
    from mm_fusion_ros.labels import UNLABELLED_REASONS

    if path.endswith('.npz'):
        np.savez_compressed(
            path,
            bag=np.concatenate([np.full(len(r.labels.actions), i, np.int32)
                                for i, r in enumerate(results)]),
            bags=np.asarray([r.inputs.path for r in results]),
            stamp_ns=np.concatenate([r.labels.stamps_ns for r in results]),
            action=np.concatenate([r.labels.actions for r in results]),
            accel=np.concatenate([r.labels.accels for r in results]),
            reason=np.concatenate([r.labels.reasons for r in results]),
            labels=np.asarray(ACTION_LABELS), reasons=np.asarray(UNLABELLED_REASONS),
            config=json.dumps(asdict(config)))
        return
    bags = []
    for r in results:
        lab = r.labels
        bags.append({
            'path': r.inputs.path, 'stamp_ns': lab.stamps_ns.tolist(),
            'action': lab.actions.tolist(),
            'accel': [None if not np.isfinite(a) else round(float(a), 4) for a in lab.accels],
            'reason': lab.reasons.tolist(),
            'lane_changes': [asdict(c) for c in lab.lane_changes],
            'class_counts': lab.class_counts(), 'unlabelled': lab.reason_counts(),
            'seconds': round(r.seconds, 3)})
    doc = {'labels': list(ACTION_LABELS), 'reasons': list(UNLABELLED_REASONS),
           'config': asdict(config), 'summary': summary, 'bags': bags}
    with open(path, 'w') as f:
        json.dump(doc, f)


def run(args: argparse.Namespace) -> int:
    """Unreadable bags, a bag without odometry, a bad --set: UserInputError (cli exits 2)."""
    import sys

    import numpy as np

    from mm_fusion_ros.bags.reader import detect_topics, find_bags, load_bag_topics
    from mm_fusion_ros.errors import UserInputError, check_output_file
    from mm_fusion_ros.labels import label_config
    from mm_fusion_ros.labels.bag import label_bag, score_labels
    from mm_fusion_ros.params.spec import ParamError

    try:
        config = label_config(_overrides(args.set))
    except ParamError as e:
        raise UserInputError(str(e)) from None
    if args.out is not None:
        if not args.out.endswith(('.json', '.npz')):
            raise UserInputError(f'--out {args.out}: name a .json or .npz file')
        check_output_file(args.out, '--out')
    fixed = None if args.topics == 'auto' else load_bag_topics(args.topics)
    bags = find_bags(args.bags)
    if not bags:
        raise UserInputError(f'no bags found in {args.bags}')
    results = []
    for bag in bags:
        r = label_bag(bag, fixed or detect_topics(bag), config)
        results.append(r)
        if not args.quiet:
            lab = r.labels
            line = (f'{bag}: {len(lab.actions)} frames, {int(lab.labelled.sum())} labelled,'
                    f' {len(lab.lane_changes)} lane changes, {r.seconds:.2f} s')
            if r.expert_actions is not None:
                s = score_labels(lab.actions, r.expert_actions)
                line += f', macro-F1 {s["macro_f1"]:.3f} vs expert'
            print(line, flush=True)

    actions = np.concatenate([r.labels.actions for r in results])
    classes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for r in results:
        for k, v in r.labels.class_counts().items():
            classes[k] = classes.get(k, 0) + v
        for k, v in r.labels.reason_counts().items():
            reasons[k] = reasons.get(k, 0) + v
    seconds = [r.seconds for r in results]
    summary: dict[str, Any] = {
        'bags': len(results), 'frames': int(len(actions)),
        'labelled': int((actions >= 0).sum()), 'class_counts': classes,
        'unlabelled': reasons, 'radar_rejected': sum(r.inputs.radar_rejected for r in results),
        'odometry_dropped': sum(r.inputs.odometry.dropped for r in results),
        'seconds_per_bag': {'mean': float(np.mean(seconds)), 'max': float(np.max(seconds))}}
    print(f'{len(results)} bags, {len(actions)} camera frames,'
          f' {summary["labelled"]} labelled'
          f' ({100.0 * summary["labelled"] / max(len(actions), 1):.1f} %),'
          f' {np.mean(seconds):.2f} s per bag (read + derive)')
    print(_table('derived labels', classes))
    print(_table('unlabelled', reasons))
    scored = [r for r in results if r.expert_actions is not None]
    if scored:
        score = score_labels(
            np.concatenate([r.labels.actions for r in scored]),
            np.concatenate([r.expert_actions for r in scored]),
            np.concatenate([r.labels.accels for r in scored]),
            np.concatenate([r.expert_accels for r in scored]))
        summary['expert'] = score
        print(_report_text(score))
    if args.out is not None:
        _write(args.out, results, config, summary)
        print(f'wrote {args.out}', file=sys.stderr)
    return 0
