"""Files never execute code, and a huge bag message is skipped without being decoded.

- Checkpoints load weights-only: a pickled object payload is refused with CheckpointError
  (test_model_checkpoint.py::test_pickled_objects_refused); here a static scan checks that no
  `torch.load` in the code omits `weights_only=True` and that every YAML load is a safe one.
- A radar preset carrying a `!!python/object` tag is refused, not executed.
- A bag message over `max_message_bytes` is counted and skipped without deserialising it:
  reading costs the one raw copy rosbags makes (sqlite3; mcap adds its chunk buffers), not
  the decoded message on top.
- A local Ray (`--ray` without an address, `evaluation.ray_local.init_ray`) listens on
  loopback only: every TCP listener and bound UDP socket of its whole process tree.
"""

import ast
import ipaddress
import os
from pathlib import Path
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from mm_fusion_ros.sensors.radar_presets import RadarPresetError, load_preset

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ('mm_fusion_ros', 'bench', 'launch', 'tools')
UNSAFE_YAML = {'load', 'load_all', 'unsafe_load', 'unsafe_load_all', 'full_load',
               'full_load_all'}
UNSAFE_CALLS = {('pickle', 'load'), ('pickle', 'loads'), ('marshal', 'loads'),
                ('dill', 'load'), ('numpy', 'load'), ('np', 'load')}


def _python_files():
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob('*.py'))


def _unsafe_calls(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        name = node.func.attr
        where = f'{path.relative_to(root)}:{node.lineno}'
        if owner == 'yaml' and name in UNSAFE_YAML:
            found.append(f'{where}: yaml.{name}() (use yaml.safe_load)')
        elif owner == 'torch' and name == 'load':
            kw = {k.arg: k.value for k in node.keywords}
            safe = isinstance(kw.get('weights_only'), ast.Constant) and (
                kw['weights_only'].value is True)
            if not safe:
                found.append(f'{where}: torch.load() without weights_only=True')
        elif (owner, name) in UNSAFE_CALLS:
            kw = {k.arg: k.value for k in node.keywords}
            if name == 'load' and owner in ('numpy', 'np') and not (
                    isinstance(kw.get('allow_pickle'), ast.Constant)
                    and kw['allow_pickle'].value is True):
                continue  # numpy refuses pickles unless allow_pickle=True
            found.append(f'{where}: {owner}.{name}() can execute code from the file')
    return found


def test_no_code_executing_loaders():
    files = list(_python_files())
    assert len(files) > 20
    problems = [p for f in files for p in _unsafe_calls(f)]
    assert not problems, '\n'.join(problems)


def test_scanner_catches_unsafe_calls(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(
        'import torch, yaml\n'
        'yaml.load(open("x"))\n'
        'yaml.unsafe_load("a")\n'
        'torch.load("m.pt")\n'
        'torch.load("m.pt", weights_only=False)\n'
        'torch.load("m.pt", weights_only=True)\n'
        'yaml.safe_load("a")\n')
    found = _unsafe_calls(bad, tmp_path)
    assert len(found) == 4, found


def test_preset_with_python_tag_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    preset = tmp_path / 'evil.yaml'
    preset.write_text(
        'name: evil\n'
        f'features: !!python/object/apply:pathlib.Path.touch ["{marker}"]\n')
    with pytest.raises(RadarPresetError, match='cannot read radar preset'):
        load_preset(preset)
    assert not marker.exists()


def _bag_with_huge_image(path: Path, storage: str, size: int) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    from mm_fusion_ros.bags.typestore import project_typestore

    store = project_typestore()
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='camera')
    width = 1024
    height = size // (3 * width)
    image = types['sensor_msgs/msg/Image'](
        header=header, height=height, width=width, encoding='rgb8', is_bigendian=0,
        step=3 * width, data=np.zeros(3 * width * height, np.uint8))
    cloud = types['sensor_msgs/msg/PointCloud2'](
        header=header, height=1, width=0, fields=[], is_bigendian=False, point_step=20,
        row_step=0, data=np.zeros(0, np.uint8), is_dense=True)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    writer.open()
    image_conn = writer.add_connection(
        '/sensors/camera/image_raw', 'sensor_msgs/msg/Image', typestore=store)
    radar_conn = writer.add_connection(
        '/sensors/radar/points', 'sensor_msgs/msg/PointCloud2', typestore=store)
    writer.write(image_conn, 1_000_000_000, store.serialize_cdr(image, 'sensor_msgs/msg/Image'))
    writer.write(radar_conn, 1_000_000_001,
                 store.serialize_cdr(cloud, 'sensor_msgs/msg/PointCloud2'))
    writer.close()


@pytest.mark.parametrize('storage, raw_copies', [('sqlite3', 1), ('mcap', 3)])
def test_oversize_bag_message_is_skipped_without_decoding(tmp_path, storage, raw_copies):
    from mm_fusion_ros.bags import open_bag

    size = 16 * 2**20
    _bag_with_huge_image(tmp_path / storage, storage, size)

    def peak_reading(limit: int) -> tuple[list[str], int, float]:
        tracemalloc.start()
        try:
            with open_bag(tmp_path / storage, 'sim', max_message_bytes=limit) as bag:
                kinds = [m.kind for m in bag.messages()]
            return kinds, bag.stats.rejected_count, tracemalloc.get_traced_memory()[1] / size
        finally:
            tracemalloc.stop()

    kinds, rejected, peak = peak_reading(2**20)
    assert kinds == ['radar'] and rejected == 1
    decoded_kinds, _, decoded_peak = peak_reading(2**30)
    assert decoded_kinds == ['image', 'radar']
    # Skipped: only rosbags' raw read (never the decoded copy); decoding costs one copy more.
    assert peak < raw_copies + 0.3, f'{peak:.2f} x the message size'
    assert decoded_peak > peak + 0.7, (peak, decoded_peak)


def _process_tree(root: int) -> dict[int, str]:
    """Command name by pid of `root` and all its descendants (from /proc)."""
    parents = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        parents[int(stat.parent.name)] = int(text[text.rindex(')') + 2:].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        children = [p for p, pp in parents.items() if pp in frontier and p not in tree]
        tree.update(children)
        frontier = children
    names = {}
    for pid in tree:
        try:
            names[pid] = (Path('/proc') / str(pid) / 'comm').read_text().strip()
        except OSError:
            pass
    return names


def _hex_address(text: str) -> str:
    """/proc/net/{tcp,udp}[6] local address (little-endian 32-bit words) -> IP text."""
    raw = bytes.fromhex(text)
    words = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _bound_sockets(pids: dict[int, str]) -> list[tuple[str, int, str, str]]:
    """(ip, port, protocol, process) of every listening TCP / bound UDP socket of `pids`."""
    owner = {}
    for pid, name in pids.items():
        try:
            for fd in (Path('/proc') / str(pid) / 'fd').iterdir():
                link = os.readlink(fd)
                if link.startswith('socket:['):
                    owner[link[8:-1]] = name
        except OSError:
            continue
    found = []
    for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
        table = Path('/proc/net') / proto
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if inode in owner and (state == '0A' or proto.startswith('udp')):  # 0A: LISTEN
                ip, port = local.split(':')
                found.append((_hex_address(ip), int(port, 16), proto, owner[inode]))
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, 'ipv4_mapped', None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.mark.slow
@pytest.mark.skipif(not Path('/proc/net/tcp').exists(), reason='lists sockets from /proc')
def test_local_ray_listens_on_loopback_only():
    pytest.importorskip('ray', reason="Ray is optional (pip install 'mm_fusion_ros[ray]')")
    script = (
        'import sys, ray\n'
        'from mm_fusion_ros.evaluation.ray_local import init_ray\n'
        'init_ray(None, num_cpus=1, log_to_driver=False)\n'
        'assert ray.get(ray.remote(lambda: 1).remote()) == 1\n'  # a worker is up too
        'print("ready", flush=True)\n'
        'sys.stdin.readline()\n'
        'ray.shutdown()\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('RAY_')}
    proc = subprocess.Popen([sys.executable, '-c', script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == 'ready', 'local Ray did not start'
        sockets = _bound_sockets(_process_tree(proc.pid))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
    owners = {name for *_, name in sockets}
    assert {'gcs_server', 'raylet'} <= owners, sockets  # the listing saw Ray's servers
    wide = [s for s in sockets if not _is_loopback(s[0])]
    assert not wide, f'listening beyond loopback: {wide}'
