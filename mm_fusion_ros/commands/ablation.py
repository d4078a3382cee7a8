"""`mm-fusion ablation`: camera-only / radar-only / fused macro-F1 on held-out data."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', default=None, help='model .pt (default: shipped)')
    parser.add_argument('--val-cache', default='data/cache/val', help='held-out cache dir')
    parser.add_argument('--json', default=None, help='also write the result as JSON here')
    parser.add_argument('--num-threads', type=int, default=2)
    parser.add_argument(
        '--timing-bound', type=int, default=0, metavar='SAMPLES',
        help='also print fused macro-F1 with only its errors within SAMPLES samples of a change '
             'of the expert label left (1: the two samples around each change)')


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    import json

    from mm_fusion_ros.evaluation.ablation import (
        ablation_markdown,
        predict_cache,
        summarize_ablation,
        timing_bound,
        timing_bound_markdown,
    )
    from mm_fusion_ros.model.predictor import FusionPredictor
    from mm_fusion_ros.paths import default_checkpoint
    from mm_fusion_ros.train.data import CacheSamples, check_frames

    predictor = FusionPredictor.from_checkpoint(
        args.checkpoint or default_checkpoint(),
        device='cpu',
        num_threads=args.num_threads,
        backend='torch',
    )
    data = CacheSamples(args.val_cache)
    try:
        check_frames(predictor.config, 'held-out', data)  # a cache the model cannot read
    except ValueError as exc:
        raise SystemExit(f'mm-fusion ablation: {exc}') from exc
    predictions = predict_cache(predictor, data)
    result = summarize_ablation(predictions.y_true, predictions.preds, predictions.conditions)
    print(ablation_markdown(result))
    out = asdict(result)
    if args.timing_bound > 0:
        bound = timing_bound(predictions, args.timing_bound)
        print()
        print(timing_bound_markdown(result, bound))
        out['timing_bound'] = asdict(bound)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
    return 0
