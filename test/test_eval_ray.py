"""`--ray`: bags evaluated as Ray tasks merge into the same metrics as the serial loop."""

import numpy as np
import pytest

ray = pytest.importorskip('ray', reason="Ray is optional (pip install 'mm_fusion_ros[ray]')")

from mm_fusion_ros.bags import load_bag_topics  # noqa: E402
from mm_fusion_ros.commands.eval import evaluate_ray, evaluate_serial  # noqa: E402
from mm_fusion_ros.evaluation.replay import OfflineJob, merge_results  # noqa: E402
from mm_fusion_ros.evaluation.replay_report import compute_metrics  # noqa: E402
from test.eval_fixtures import CONFIGS, random_checkpoint, sim_bag  # noqa: E402


def _without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != 'latency'}


def test_ray_and_serial_merge_identically(tmp_path):
    ckpt = random_checkpoint(tmp_path / 'random.pt')
    topics = load_bag_topics('sim')
    jobs = [OfflineJob(str(sim_bag(tmp_path / f'bag{i}', c, storage)), topics, ckpt,
                       compare_checkpoint=ckpt, num_threads=1, bag_index=i)
            for i, (c, storage) in enumerate(zip(CONFIGS, ('mcap', 'sqlite3'), strict=True))]
    serial = evaluate_serial(jobs, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        parallel = evaluate_ray(jobs, None, progress=False, init=False)
    finally:
        ray.shutdown()
    assert [r.path for r in parallel] == [j.path for j in jobs]
    fs, ds = merge_results(serial)
    fp, dp = merge_results(parallel)
    for key in fs:
        if key != 'latency_s':
            np.testing.assert_array_equal(fs[key], fp[key], err_msg=key)
    assert _without_timing(compute_metrics(fs, ds)) == _without_timing(compute_metrics(fp, dp))
