"""The live view: projection, scene content, loopback-only server, a client and a browser on it."""

import base64
import importlib.util
import json
import math
import os
from pathlib import Path
import shutil
import socket
import subprocess
import tempfile
import time

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.safety import SafetyConfig, radar_time_to_collision
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.radar import RadarConfig
from mm_fusion_ros.view.geometry import project_to_image, radar_to_image
from mm_fusion_ros.view.options import exposure_warning, is_loopback

needs_rerun = pytest.mark.skipif(importlib.util.find_spec('rerun') is None,
                                 reason='the view extra (rerun-sdk) is not installed')
needs_ros = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ('rclpy', 'mm_fusion_msgs')),
    reason='rclpy and the mm_fusion_msgs interface package are needed')

# -- pure geometry ----------------------------------------------------------------------------


def test_a_ground_point_lands_on_the_pixel_the_simulator_renders_it_at():
    """The simulator's renderer is the oracle: its ground pixel (col, row) at its depth."""
    camera_config = CameraConfig()
    renderer = CameraModel(camera_config)
    camera, radar = camera_config.mount, RadarConfig().mount
    rows = np.array([renderer.horizon + 3, renderer.horizon + 20, camera_config.height - 1])
    cols = np.array([5, camera_config.width // 2 + 7, camera_config.width - 2])
    depth = renderer.row_depth[rows - renderer.horizon]  # ahead of the camera [m]
    lateral = renderer.ground_y[rows - renderer.horizon, cols]  # left of the camera [m]
    ground = np.stack([camera.x + depth, lateral, np.zeros_like(depth)], axis=1)  # base_link
    in_radar = radar.from_parent(ground)
    points = np.concatenate([in_radar, np.zeros((3, 2))], axis=1)  # + radial_velocity, rcs

    uv, index = radar_to_image(points, radar, camera, camera_config.K, camera_config.width,
                               camera_config.height)

    assert index.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(np.floor(uv).astype(int), np.stack([cols, rows], axis=1))


def test_projection_drops_points_behind_outside_and_invalid():
    c = CameraConfig()
    camera = c.mount
    ahead = [camera.x + 10.0, 0.0, camera.z]  # on the optical axis: the principal point
    points = np.array([
        ahead,
        [camera.x - 10.0, 0.0, camera.z],  # behind the camera
        [camera.x + 0.05, 0.0, camera.z],  # closer than min_depth
        [camera.x + 10.0, 30.0, camera.z],  # left of the 60 deg field of view
        [camera.x + 10.0, 0.0, camera.z + 10.0],  # above the image
        [np.nan, 0.0, 0.0],
        [camera.x + 20.0, -2.0, camera.z - 1.0],  # right and below the axis: inside
    ])
    uv, index = project_to_image(points, camera, c.K, c.width, c.height)
    assert index.tolist() == [0, 6]
    np.testing.assert_allclose(uv[0], [c.cx, c.cy])
    assert uv[1, 0] > c.cx and uv[1, 1] > c.cy
    empty_uv, empty_index = radar_to_image(np.zeros((0, 5)), RadarConfig().mount, camera, c.K,
                                           c.width, c.height)
    assert empty_uv.shape == (0, 2) and empty_index.size == 0


def test_mounts_rotate_as_tf2_does():
    # A camera yawed 90 deg to the left sees the point left of the car at its image centre.
    c = CameraConfig()
    left = Extrinsic(x=1.0, z=1.4, yaw=math.pi / 2)
    uv, index = project_to_image(np.array([[1.0, 8.0, 1.4]]), left, c.K, c.width, c.height)
    assert index.tolist() == [0]
    np.testing.assert_allclose(uv[0], [c.cx, c.cy], atol=1e-6)
    mount = Extrinsic(0.3, -0.2, 0.9, 0.1, -0.2, 0.7)
    p = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(mount.to_parent(mount.from_parent(p)), p, atol=1e-12)
    np.testing.assert_allclose(mount.rotation @ mount.rotation.T, np.eye(3), atol=1e-12)
    radar = RadarConfig().mount
    assert (radar.x, radar.z) == (RadarConfig.mount_x, RadarConfig.mount_z)
    with pytest.raises(ValueError, match='x, y, z, roll, pitch, yaw'):
        Extrinsic.from_values([1.0, 2.0])


# -- options and warnings ---------------------------------------------------------------------


def test_loopback_is_the_default_and_another_address_warns():
    from mm_fusion_ros.cli import build_parser
    from mm_fusion_ros.view.options import view_options
    from mm_fusion_ros.view.server import ServerConfig

    for command in (['up', 'sim'], ['demo']):
        args = build_parser(command[0]).parse_args([*command, '--view'])
        assert view_options(args).address == '127.0.0.1'
        assert view_options(build_parser(command[0]).parse_args(command)) is None
    assert ServerConfig().address == '127.0.0.1'
    for address in ('127.0.0.1', '::1', 'localhost'):
        assert is_loopback(address) and exposure_warning(address) is None
    for address in ('0.0.0.0', '::', '192.168.1.20'):
        warning = exposure_warning(address)
        assert warning and address in warning and 'camera frames' in warning
        assert '\n' not in warning


@needs_ros
def test_view_without_rerun_names_the_extra(monkeypatch, capsys):
    import sys

    from mm_fusion_ros.cli import main as cli_main
    from mm_fusion_ros.view import ViewUnavailableError, require_rerun

    monkeypatch.setitem(sys.modules, 'rerun', None)  # import rerun now raises ImportError
    with pytest.raises(ViewUnavailableError, match=r'\[view\]'):
        require_rerun()
    assert cli_main(['demo', '--view']) == 2
    err = capsys.readouterr().err
    assert 'rerun-sdk' in err and '[view]' in err and len(err.strip().splitlines()) == 1


# -- scene content (needs rerun) --------------------------------------------------------------

def _paths(entities):
    return [e.path for e in entities]


@needs_rerun
def test_scene_projects_the_newest_radar_frame_and_shows_the_safety_state():
    from mm_fusion_ros.view.scene import IMAGE, SUMMARY, TTC, LiveScene

    scene = LiveScene()
    static = scene.start()
    assert {'/base_link', '/base_link/ego', '/base_link/radar', '/base_link/camera'} <= set(
        _paths(static))
    rgb = np.zeros((128, 256, 3), np.uint8)
    assert _paths(scene.camera(rgb)) == [IMAGE]  # no K yet: no projection
    c = CameraConfig()
    assert len(scene.camera_info(c.K, c.width, c.height)) == 1
    assert scene.camera_info(c.K, c.width, c.height) == []  # unchanged: not logged again
    radar = np.array([[20.0, 0.0, 0.0, -10.0, 10.0],  # closing in the corridor: TTC 2 s
                      [-5.0, 0.0, 0.0, 0.0, 0.0],  # behind the radar and the camera
                      [30.0, 2.5, 0.5, 0.0, 5.0]], np.float32)
    entities = scene.radar(radar)
    assert scene.ttc == pytest.approx(radar_time_to_collision(
        radar, SafetyConfig.corridor_half_width)) == pytest.approx(2.0)
    ttc = next(e for e in entities if e.path == TTC)
    assert ttc.archetypes[0].scalars.as_arrow_array().to_pylist() == [
        2.0, SafetyConfig.ttc_brake_threshold]
    projected = scene.camera(rgb)[1].archetypes[0]
    assert len(projected.positions.as_arrow_array()) == 2  # the point behind is dropped

    raw = Decision(1, Action.STOP, probabilities=np.array([.05, .05, .8, .05, .03, .02],
                                                          np.float32), confidence=0.8)
    probabilities = scene.decision(raw, final=False)[0].archetypes[0]
    np.testing.assert_allclose(probabilities.scalars.as_arrow_array().to_pylist(),
                               raw.probabilities, rtol=1e-6)
    final = Decision(1, Action.EMERGENCY_BRAKE, target_acceleration=-8.0,
                     source=DecisionSource.SAFETY_OVERRIDE, degraded=True,
                     degraded_reason='radar stale')
    summary = scene.decision(final, final=True)[-1]
    assert summary.path == SUMMARY
    text = summary.archetypes[0].text.as_arrow_array().to_pylist()[0]
    for part in ('emergency_brake', 'safety override', 'radar stale', '-8.00', 'stop 0.80',
                 '2.00 s'):
        assert part in text, (part, text)


# -- the server on loopback, a client and a browser on it -------------------------------------


def _free_port_pair() -> int:
    """A port P with P and P + 1 free on loopback (web viewer, data)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(('127.0.0.1', port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError('no free port pair')


def _listening_addresses(pid: int) -> set[tuple[str, int]]:
    import psutil

    process = psutil.Process(pid)
    out = set()
    for p in [process, *process.children(recursive=True)]:
        for conn in p.net_connections(kind='inet'):
            if conn.status == psutil.CONN_LISTEN:
                out.add((conn.laddr.ip, conn.laddr.port))
    return out


@needs_rerun
def test_server_listens_on_loopback_only_by_default():
    from mm_fusion_ros.view.server import ServerConfig, ViewServer

    port = _free_port_pair()
    with ViewServer(ServerConfig(port=port)) as server:
        listening = _listening_addresses(os.getpid())
        assert {('127.0.0.1', port), ('127.0.0.1', port + 1)} <= listening
        assert all(is_loopback(ip) for ip, _ in listening), listening
        assert server.url.startswith(f'http://127.0.0.1:{port}/?url=rerun%2Bhttp')
        process = server.process
    assert process.poll() is not None  # closed: the server process is gone


@needs_rerun
def test_a_taken_port_is_refused_with_the_option_to_change():
    from mm_fusion_ros.view.server import ServerConfig, ViewServer, ViewServerError

    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ViewServerError, match='--view-port'):
            ViewServer(ServerConfig(port=port))


EXPECTED_ENTITIES = {
    '/base_link/ego', '/base_link/radar', '/base_link/radar/corridor', '/base_link/camera',
    '/base_link/camera/image', '/base_link/camera/image/radar', '/base_link/radar/points',
    '/decision/summary', '/decision/target_acceleration', '/decision/probabilities',
    '/safety/ttc', '/diagnostics',
}


def _received_entities(path: Path) -> set[str]:
    """Entity paths in the client's .rrd so far (the file is still being written)."""
    import warnings

    from rerun.chunk import RrdReader

    if not path.exists() or path.stat().st_size == 0:
        return set()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # a live download has no footer yet
        try:
            return {str(chunk.entity_path) for chunk in RrdReader(path).stream()}
        except Exception:  # noqa: BLE001 - a message half written: read again later
            return set()


@pytest.fixture(scope='module')
def live_graph(tmp_path_factory):
    """The sim graph in lockstep with a view node; a Rerun client subscribed from the start."""
    from mm_fusion_ros.ros.runner import running_graph
    from mm_fusion_ros.ros.view_node import attached_view
    from mm_fusion_ros.view.options import ViewOptions
    from mm_fusion_ros.view.server import analytics_off_env, rerun_executable
    from test.fuzz_nodes import random_checkpoint
    from test.ros_graph_utils import spin_until

    tmp = tmp_path_factory.mktemp('view')
    checkpoint = random_checkpoint(tmp / 'random.pt')
    overrides = {
        'sim_node': {'scenarios': ['lead_brake'], 'conditions': ['clear'], 'episodes': 1,
                     'duration': 3.0, 'seed': 900001, 'lockstep': True, 'publish_clock': True},
        'fusion_node': {'checkpoint': checkpoint, 'device': 'cpu', 'markers_every': 1},
    }
    options = ViewOptions(port=_free_port_pair())
    with running_graph('sim', overrides=overrides, use_sim_time=True) as (executor, nodes), \
            attached_view(options, executor, nodes['sim_node'].context,
                          use_sim_time=True) as view:
        client_dir = tmp / 'client'
        client_dir.mkdir()
        with tempfile.TemporaryDirectory() as home:
            client = subprocess.Popen(
                [rerun_executable(), 'download', view.server.data_url, '-o', str(client_dir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=analytics_off_env(Path(home)))
            try:
                sim = nodes['sim_node']
                assert spin_until(executor, lambda: sim.finished, timeout=120.0)
                assert view.view.flush(timeout=30.0)
                view.server.recording.flush(timeout_sec=10.0)
                received = client_dir / 'output.rrd'
                deadline = time.monotonic() + 30.0
                entities = _received_entities(received)
                while not EXPECTED_ENTITIES <= entities and time.monotonic() < deadline:
                    time.sleep(0.5)
                    entities = _received_entities(received)
                yield {'view': view, 'entities': entities, 'tmp': tmp}
            finally:
                client.terminate()
                client.wait(timeout=10)


@needs_rerun
@needs_ros
def test_a_client_receives_every_channel_of_the_running_graph(live_graph):
    view, entities = live_graph['view'], live_graph['entities']
    missing = EXPECTED_ENTITIES - entities
    assert not missing, f'the client did not receive {sorted(missing)}'
    assert any('/markers/' in e for e in entities)  # fusion/markers are forwarded too
    assert view.view.counts['failed'] == 0 and view.rejected == 0
    assert view.view.scene.final is not None and view.view.scene.model is not None
    listening = _listening_addresses(os.getpid())
    assert all(is_loopback(ip) for ip, _ in listening), listening


@needs_rerun
@needs_ros
def test_max_rate_passes_a_stream_at_the_rate_and_thins_a_faster_one(monkeypatch):
    from types import SimpleNamespace

    from mm_fusion_ros.ros import view_node

    def drawn(rate_hz: float, max_rate: float, jitter_s: float, seconds: float = 10.0) -> int:
        clock = [0.0]
        monkeypatch.setattr(view_node.time, 'monotonic', lambda: clock[0])
        node = SimpleNamespace(_max_rate=max_rate, _tokens={'camera': [2.0, 0.0]})
        jitter = np.random.default_rng(0).uniform(-jitter_s, jitter_s, int(seconds * rate_hz))
        count = 0
        for k, dt in enumerate(jitter):
            clock[0] = k / rate_hz + dt
            count += view_node.ViewNode._due(node, 'camera')
        return count

    assert drawn(20.0, 20.0, jitter_s=0.015) == 200  # a 20 Hz camera with jitter: every frame
    assert 195 <= drawn(100.0, 20.0, jitter_s=0.0) <= 203  # a 100 Hz demo: 20 per second
    assert drawn(100.0, 0.0, jitter_s=0.0) == 1000  # 0: every frame


# -- headless Chromium: a screenshot of the view ------------------------------------------------

CHROMIUM_FLAGS = (
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--window-size=1600,1000',
)


def _chromium() -> str | None:
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(name):
            return shutil.which(name)
    return None


class DevTools:
    """Chrome DevTools Protocol over --remote-debugging-pipe (fds 3 and 4): no extra package."""

    def __init__(self, executable: str, args: list[str]) -> None:
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen(
            [executable, '--remote-debugging-pipe', *args, 'about:blank'], preexec_fn=fds,
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b''
        self._id = 0
        self.events: list[dict] = []

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {'id': self._id, 'method': method, 'params': params}
        if session:
            message['sessionId'] = session
        os.write(self._to_chrome_w, json.dumps(message).encode() + b'\0')
        while True:
            reply = self._read()
            if reply.get('id') == self._id:
                if 'error' in reply:
                    raise RuntimeError(f'{method}: {reply["error"]}')
                return reply['result']
            self.events.append(reply)

    def _read(self) -> dict:
        while b'\0' not in self._buffer:
            chunk = os.read(self._from_chrome_r, 1 << 20)
            if not chunk:
                raise EOFError('chromium closed the DevTools pipe')
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\0', 1)
        return json.loads(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._to_chrome_w)
        os.close(self._from_chrome_r)


def _colours(png: bytes) -> int:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert('RGB')
    return len(image.getcolors(maxcolors=1 << 20) or [])


def screenshot(url: str, out: Path, settle_s: float = 8.0, timeout_s: float = 90.0) -> dict:
    """Open `url` in headless Chromium, wait for the view to draw, save a PNG at `out`."""
    executable = _chromium()
    with tempfile.TemporaryDirectory() as profile:
        chrome = DevTools(executable, [*CHROMIUM_FLAGS, f'--user-data-dir={profile}'])
        try:
            target = next(t for t in chrome.call('Target.getTargets')['targetInfos']
                          if t['type'] == 'page')
            session = chrome.call('Target.attachToTarget', targetId=target['targetId'],
                                  flatten=True)['sessionId']
            chrome.call('Network.enable', session)
            chrome.call('Page.enable', session)
            chrome.call('Page.navigate', session, url=url)
            deadline = time.monotonic() + timeout_s
            best, colours = b'', 0
            while time.monotonic() < deadline:
                time.sleep(2.0)
                png = base64.b64decode(chrome.call('Page.captureScreenshot', session,
                                                   format='png')['data'])
                n = _colours(png)
                if n > colours:
                    best, colours, drawn_at = png, n, time.monotonic()
                elif colours > 2000 and time.monotonic() - drawn_at > settle_s:
                    break  # drawn and stable
            sent = {e['params']['requestId']: e['params']['request']['url']
                    for e in chrome.events if e.get('method') == 'Network.requestWillBeSent'}
            blocked = {e['params']['requestId']: e['params'].get('blockedReason')
                       for e in chrome.events if e.get('method') == 'Network.loadingFailed'}
        finally:
            chrome.close()
    out.write_bytes(best)
    return {'colours': colours, 'requests': [(url, blocked.get(rid)) for rid, url in sent.items()]}


@needs_rerun
@needs_ros
def test_headless_chromium_shows_the_view(live_graph):
    if _chromium() is None:
        pytest.skip('no chromium on PATH (apt-get install -y chromium): no screenshot')
    from urllib.parse import urlparse

    out = Path(os.environ.get('MM_FUSION_VIEW_SCREENSHOT') or live_graph['tmp'] / 'view.png')
    shot = screenshot(live_graph['view'].url, out)
    # The page loads from the view server alone: the viewer app is local, and what the viewer
    # would ask the internet for (fonts, update check, analytics) its policy blocks.
    escaped = [(url, why) for url, why in shot['requests']
               if urlparse(url).scheme in ('http', 'https', 'ws', 'wss')
               and urlparse(url).hostname != '127.0.0.1' and why != 'csp']
    assert not escaped, escaped
    assert any(urlparse(url).path == '/re_viewer_bg.wasm' for url, _ in shot['requests'])
    # Drawn: the camera frame, plots and text give thousands of colours; the loading page and
    # a blank canvas a few dozen.
    assert shot['colours'] > 2000, shot
