"""Clock jumps backwards (bag loop, sim reset) in the live nodes: history reset, no crash.

The fusion node gets camera + radar stamps 50 ms apart, then the same stream again 5 s
earlier (a bag loop): its radar history is cleared, the reset is counted, and decisions
resume on the new stamps with the radar matched (not degraded). decision_node, whose clock
jumps back, resets its safety history and keeps publishing. The synchroniser's own reset is
covered in test_sensors_sync.py (test_backwards_jump_clears_queues) and the radar buffer's in
test_sensors_sequence.py (test_backwards_jump_clears_buffer).
"""

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)
pytest.importorskip('torch')

from builtin_interfaces.msg import Time  # noqa: E402

from mm_fusion_ros.actions import Action  # noqa: E402
from mm_fusion_ros.decision import Decision  # noqa: E402
from mm_fusion_ros.ros.messages import decision_to_msg  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from mm_fusion_ros.ros.time import stamp_to_ns  # noqa: E402
from test.fuzz_nodes import random_checkpoint, record_publishes  # noqa: E402
from test.ros_graph_utils import odometry, radar_cloud, rgb_image, spin_until  # noqa: E402

NS = 1_000_000_000


def _stamp(ns: int) -> Time:
    return Time(sec=ns // NS, nanosec=ns % NS)


def test_stamps_jumping_back_reset_history_and_decisions_resume(tmp_path):
    ckpt = random_checkpoint(tmp_path / 'random.pt')
    overrides = {'fusion_node': {'checkpoint': ckpt, 'device': 'cpu', 'radar_wait': 0.5,
                                 'markers_every': 0}}
    with running_graph('fusion', overrides=overrides) as (executor, nodes):
        fusion, decision = nodes['fusion_node'], nodes['decision_node']
        out = record_publishes(fusion._decision_pub)
        final = record_publishes(decision._decision_pub)

        def play(start_ns: int, frames: int = 8) -> list[int]:
            stamps = []
            for i in range(frames):
                ns = start_ns + i * 50_000_000
                fusion._on_radar(radar_cloud(_stamp(ns)))
                fusion._on_odometry(odometry(_stamp(ns)))
                fusion._on_image(rgb_image(_stamp(ns), seed=i))
                n = len(out)
                assert spin_until(executor, lambda n=n: len(out) > n, 10.0), 'no decision'
                stamps.append(ns)
            return stamps

        first = play(1_000 * NS)
        assert fusion.stats()['clock_resets'] == 0
        assert fusion.stats()['no_camera_history'] == 3  # nothing 0.25 +- 0.125 s back yet
        assert not out[-1].degraded, out[-1].degraded_reason
        second = play(995 * NS)  # 5 s back: the bag looped
        stats = fusion.stats()
        assert stats['clock_resets'] >= 1
        assert stats['no_camera_history'] == 6  # the camera history restarted too
        assert fusion._pipeline.front.newest_radar_ns() <= second[-1]
        assert all(s <= second[-1] for s in fusion._pipeline.radar.stamps), 'stale future radar'
        tail = out[-4:]
        assert [stamp_to_ns(m.header.stamp) for m in tail] == second[-4:]
        assert not any(m.degraded for m in tail), [m.degraded_reason for m in tail]
        assert set(first).isdisjoint(stamp_to_ns(m.header.stamp) for m in tail)

        # decision_node: its clock runs backwards (sim time reset) -> safety history cleared.
        now = decision.get_clock().now().nanoseconds
        decision._last_now_ns = now + 10 * NS
        n = len(final)
        raw = Decision(stamp_ns=second[-1], action=Action.FOLLOW, target_acceleration=-0.5)
        decision._on_radar(radar_cloud(_stamp(second[-1])))
        decision._on_decision(decision_to_msg(raw))
        assert len(final) > n and final[-1].target_acceleration <= 0.0
        assert decision._last_now_ns < now + 10 * NS
