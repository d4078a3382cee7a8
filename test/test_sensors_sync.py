"""ApproximateTimeSynchronizer with mock filters and messages (no rclpy.init)."""

import threading
from types import SimpleNamespace

import pytest

from mm_fusion_ros.sensors.sync import (
    ApproximateTimeSynchronizer,
    Input,
    SimpleFilter,
    msg_stamp_ns,
    stamp_to_ns,
)


def msg(t, tag=''):
    sec = int(t)
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=round((t - sec) * 1e9))),
        tag=tag)


def make(n=2, queue_size=5, slop=0.05, **kw):
    inputs = [Input() for _ in range(n)]
    sync = ApproximateTimeSynchronizer(inputs, queue_size, slop, **kw)
    out = []
    sync.registerCallback(lambda *m: out.append(tuple(x.tag for x in m[:n])))
    return inputs, sync, out


def test_stamp_conversion():
    assert stamp_to_ns(SimpleNamespace(sec=2, nanosec=5)) == 2_000_000_005
    assert msg_stamp_ns(msg(1.5)) == 1_500_000_000


def test_pairs_within_slop_in_input_order():
    (cam, radar), _, out = make()
    cam.add(msg(1.00, 'c1'))
    radar.add(msg(1.03, 'r1'))
    assert out == [('c1', 'r1')]
    radar.add(msg(2.00, 'r2'))
    cam.add(msg(2.06, 'c2'))  # 60 ms apart > slop
    assert out == [('c1', 'r1')]


def test_nearest_candidate_wins_and_is_removed():
    (cam, radar), sync, out = make(slop=0.1)
    radar.add(msg(0.95, 'r_far'))
    radar.add(msg(1.01, 'r_near'))
    cam.add(msg(1.00, 'c'))
    assert out == [('c', 'r_near')]
    assert list(sync.queues[1]) == [950_000_000] and not sync.queues[0]


def test_strict_slop_boundary():
    (cam, radar), _, out = make(slop=0.05)
    cam.add(msg(1.0, 'c'))
    radar.add(msg(1.05, 'r'))  # max - min == slop: not < slop
    assert out == []


def test_three_inputs():
    (a, b, c), _, out = make(n=3, slop=0.05)
    a.add(msg(1.00, 'a'))
    b.add(msg(1.04, 'b'))
    c.add(msg(0.97, 'c_bad'))  # 70 ms from b
    assert out == []
    c.add(msg(1.02, 'c'))
    assert out == [('a', 'b', 'c')]


def test_out_of_order_arrivals():
    (cam, radar), _, out = make(slop=0.02)
    for t in (1.0, 1.1, 1.2):
        radar.add(msg(t, f'r{t}'))
    cam.add(msg(1.2, 'c1.2'))
    cam.add(msg(1.0, 'c1.0'))  # older camera frame arriving late
    cam.add(msg(1.1, 'c1.1'))
    assert out == [('c1.2', 'r1.2'), ('c1.0', 'r1.0'), ('c1.1', 'r1.1')]


def test_duplicate_stamp_replaces():
    (cam, radar), sync, out = make()
    cam.add(msg(1.0, 'first'))
    cam.add(msg(1.0, 'second'))
    assert len(sync.queues[0]) == 1
    radar.add(msg(1.0, 'r'))
    assert out == [('second', 'r')]


def test_queue_size_drops_oldest():
    (cam, radar), sync, out = make(queue_size=2)
    for t in (1.0, 2.0, 3.0):
        cam.add(msg(t, f'c{t}'))
    assert sorted(sync.queues[0]) == [2_000_000_000, 3_000_000_000]
    radar.add(msg(1.0, 'r1'))
    assert out == []
    radar.add(msg(2.0, 'r2'))
    assert out == [('c2.0', 'r2')]


def test_backwards_jump_clears_queues():
    # Bag loop: without the reset the new (older) stamps would be evicted first, forever.
    (cam, radar), sync, out = make(queue_size=3, reset_jump=1.0)
    for t in (100.0, 100.1, 100.2):
        cam.add(msg(t, f'c{t}'))
        radar.add(msg(t + 0.5, f'r{t}'))  # never within slop: queues fill
    cam.add(msg(1.0, 'c1'))
    assert list(sync.queues[0]) == [1_000_000_000] and not sync.queues[1]
    radar.add(msg(1.01, 'r1'))
    assert out == [('c1', 'r1')]


def test_without_reset_old_stamps_linger():
    (cam, radar), sync, out = make(queue_size=3, reset_jump=None)
    for t in (100.0, 100.1, 100.2):
        cam.add(msg(t, f'c{t}'))
    cam.add(msg(1.0, 'c1'))  # evicted at once: the oldest stamp of a full queue
    assert 1_000_000_000 not in sync.queues[0]


def test_small_backwards_step_is_not_a_reset():
    (cam, radar), sync, out = make(reset_jump=1.0)
    cam.add(msg(10.0, 'c10'))
    cam.add(msg(9.5, 'c9.5'))
    assert len(sync.queues[0]) == 2


def test_callback_args_and_direct_add():
    sync = ApproximateTimeSynchronizer([SimpleFilter(), SimpleFilter()], 3, 0.1)
    got = []
    sync.registerCallback(lambda a, b, extra: got.append((a.tag, b.tag, extra)), 'x')
    sync.add(msg(1.0, 'a'), 0)
    sync.add(msg(1.0, 'b'), 1)
    assert got == [('a', 'b', 'x')]


def test_callback_may_reenter():
    inputs = [Input(), Input()]
    sync = ApproximateTimeSynchronizer(inputs, 3, 0.1)
    sync.registerCallback(lambda a, b: sync.clear())  # would deadlock if called under the lock
    inputs[0].add(msg(1.0))
    inputs[1].add(msg(1.0))


def test_zero_slop_needs_exact_match():
    (cam, radar), _, out = make(slop=0.0)
    cam.add(msg(1.0, 'c'))
    radar.add(msg(1.0, 'r'))
    assert out == [('c', 'r')]


def test_bad_arguments():
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer([Input()], 0, 0.1)
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer([Input()], 1, -0.1)


def test_threaded_inputs_emit_each_pair_once():
    (cam, radar), _, out = make(queue_size=200, slop=0.001)
    n = 100

    def feed(inp, tag):
        for i in range(n):
            inp.add(msg(1.0 + i * 0.1, f'{tag}{i}'))

    threads = [threading.Thread(target=feed, args=(cam, 'c')),
               threading.Thread(target=feed, args=(radar, 'r'))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(out) == sorted((f'c{i}', f'r{i}') for i in range(n))
