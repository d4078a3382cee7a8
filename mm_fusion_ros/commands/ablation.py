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

    from mm_fusion_ros.errors import UserInputError, check_output_file
    from mm_fusion_ros.evaluation.ablation import (
        ablation_markdown,
        predict_cache,
        summarize_ablation,
        timing_bound,
        timing_bound_markdown,
    )
    from mm_fusion_ros.model.predictor import FusionPredictor
    from mm_fusion_ros.paths import resolve_checkpoint
    from mm_fusion_ros.train.data import CacheSamples, check_frames

    if args.json:
        check_output_file(args.json, '--json')
    predictor = FusionPredictor.from_checkpoint(
        resolve_checkpoint(args.checkpoint),
        device='cpu',
        num_threads=args.num_threads,
        backend='torch',
    )
    data = CacheSamples(args.val_cache)  # CacheError: not a readable cache (exit 2)
    if len(data) == 0:
        raise UserInputError(f'held-out cache {args.val_cache} holds no samples: nothing to '
                             f'score')
    check_frames(predictor.config, 'held-out', data)  # TrainingDataError: frames it cannot read
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
