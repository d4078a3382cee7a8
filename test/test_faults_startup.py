"""Faults at start-up and in the model: bad checkpoints, absent CUDA, slow inference.

- A missing, corrupt or wrong-version checkpoint makes the `fusion_node --autostart` executable
  exit non-zero with the reason on stderr (run as a subprocess, as `ros2 run` would).
- `device: cuda` on a machine without CUDA runs on CPU with a warning (skipped with CUDA).
- A model slower than the camera (200 ms per frame at 20 Hz) never grows the camera queue past
  `queue_size`: the oldest frames are dropped and counted, memory stays flat.
- Start-up cost (issue 26 item 8): importing fusion_node does not import torch, and
  `mm-fusion eval` with a warm ONNX cache checks its checkpoint and evaluates a bag without
  importing torch (the import is 1.3-3.5 s of a 10 s bag's budget on 2 cores).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)
torch = pytest.importorskip('torch')

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from mm_fusion_ros.graph import CAMERA_IMAGE, RADAR_POINTS  # noqa: E402
from mm_fusion_ros.model.checkpoint import FORMAT_VERSION  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from test.fuzz_nodes import random_checkpoint  # noqa: E402
from test.ros_graph_utils import radar_cloud, rgb_image, spin_until  # noqa: E402


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp('ckpt') / 'random.pt')


def _wrong_version(src: str, dst) -> str:
    payload = torch.load(src, weights_only=True)
    payload['format_version'] = FORMAT_VERSION + 1
    torch.save(payload, dst)
    return str(dst)


def test_bad_checkpoint_exits_non_zero_with_the_reason(checkpoint, tmp_path):
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'PK\x03\x04 definitely not a zip')
    cases = {
        'missing': (str(tmp_path / 'missing.pt'), 'checkpoint not found'),
        'corrupt': (str(corrupt), 'cannot read checkpoint'),
        'wrong version': (_wrong_version(checkpoint, tmp_path / 'v2.pt'),
                          f'format_version {FORMAT_VERSION + 1}'),
    }
    procs = {}
    for name, (path, _) in cases.items():  # started together: each pays the import cost
        procs[name] = subprocess.Popen(
            [sys.executable, '-m', 'mm_fusion_ros.ros.fusion_node', '--autostart', '--ros-args',
             '-p', f'checkpoint:={path}', '-p', 'device:=cpu'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            start_new_session=True)  # the wheels' bootstrapper may re-exec: kill the group
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f'{name}: fusion_node did not exit on a bad checkpoint')
        path, reason = cases[name]
        assert proc.returncode != 0, f'{name}: exit code 0\n{err}'
        assert 'cannot start' in err and reason in err, f'{name}:\n{err}'
        assert path in err, f'{name}: the error should name the file\n{err}'
        assert 'Traceback' not in err, f'{name}: a clear error, not a traceback\n{err}'


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is present: nothing falls back')
def test_cuda_requested_without_cuda_runs_on_cpu_with_a_warning(checkpoint, capfd, caplog):
    overrides = {'fusion_node': {'checkpoint': checkpoint, 'device': 'cuda'}}
    with running_graph('fusion', overrides=overrides, nodes=['fusion_node']) as (_, nodes):
        node = nodes['fusion_node']
        assert node._predictor.device.type == 'cpu' and node._predictor.device_fallback
        assert node.stats()['device'] == 'cpu'
    err = capfd.readouterr().err
    assert "device 'cuda' unavailable, running on cpu" in err, err
    assert any('CUDA is not available' in r.getMessage() for r in caplog.records)


def test_slow_inference_keeps_the_queue_bounded(checkpoint):
    psutil = pytest.importorskip('psutil')
    queue_size = 3
    overrides = {'fusion_node': {'checkpoint': checkpoint, 'device': 'cpu',
                                 'queue_size': queue_size, 'markers_every': 0}}
    with running_graph('fusion', overrides=overrides, nodes=['fusion_node']) as (ex, nodes):
        node = nodes['fusion_node']
        predict = node._predictor.predict

        def slow_predict(*args, **kwargs):
            time.sleep(0.2)
            return predict(*args, **kwargs)

        node._predictor.predict = slow_predict
        probe = rclpy.create_node('slow_probe', context=node.context)
        ex.add_node(probe)
        image_pub = probe.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        radar_pub = probe.create_publisher(PointCloud2, RADAR_POINTS, qos_profile_sensor_data)
        assert spin_until(ex, lambda: image_pub.get_subscription_count() > 0, 10.0)
        sent = []

        def tick():
            if len(sent) >= 40:  # 20 Hz for 2 s
                return
            stamp = probe.get_clock().now().to_msg()
            radar_pub.publish(radar_cloud(stamp))
            image_pub.publish(rgb_image(stamp, seed=len(sent) % 4))
            sent.append(stamp)

        rss_before = psutil.Process().memory_info().rss
        probe.create_timer(0.05, tick)
        depth = []

        def done():
            depth.append(len(node._jobs))
            return len(sent) >= 40 and not node._jobs

        assert spin_until(ex, done, 15.0)
        spin_until(ex, lambda: False, 0.3)  # the last frame's inference
        stats = node.stats()
        growth = psutil.Process().memory_info().rss - rss_before
        ex.remove_node(probe)
        probe.destroy_node()
    assert max(depth) <= queue_size, f'queue reached {max(depth)}'
    assert stats['camera_frames'] >= 30, stats
    assert stats['dropped'] > 0, stats
    # 40 frames in 2 s at 200 ms each: at most ~12 inferences, the rest dropped.
    assert stats['decisions'] + stats['dropped'] <= stats['camera_frames'] + queue_size, stats
    assert stats['decisions'] <= 16, stats
    assert growth < 100 * 2**20, f'RSS grew {growth / 2**20:.0f} MiB'


def _python(code: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, **(env or {})))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_node_import_does_not_import_torch():
    code = ('import sys\n'
            'import mm_fusion_ros.ros.fusion_node, mm_fusion_ros.ros.decision_node\n'
            'import mm_fusion_ros.model.checkpoint\n'
            'print("torch" in sys.modules)\n')
    assert _python(code).split() == ['False']


def test_warm_eval_does_not_import_torch(checkpoint, tmp_path):
    pytest.importorskip('onnxruntime')
    from mm_fusion_ros.model.onnx_cache import ENV_VAR
    from test.eval_fixtures import sim_bag

    bag = sim_bag(tmp_path / 'drive')
    code = ('import sys\n'
            'from mm_fusion_ros.cli import main\n'
            f'rc = main(["eval", {str(bag)!r}, "--checkpoint", {checkpoint!r}, "--quiet",'
            f' "--out", {str(tmp_path / "report")!r}])\n'
            'print("RESULT", rc, "torch" in sys.modules)\n')
    env = {ENV_VAR: str(tmp_path / 'onnx_cache')}
    cold = _python(code, env).splitlines()[-1]
    assert cold == 'RESULT 0 True', cold  # the first run loads, exports and fills the cache
    warm = _python(code, env).splitlines()[-1]
    assert warm == 'RESULT 0 False', warm
