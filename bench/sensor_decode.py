"""Decode cost per message (images, clouds) and radar preprocessing steps, numpy vs Open3D.

Run: python bench/sensor_decode.py [--runs N] [--threads N]
Prints median and p99 per message and the ratio against a straightforward decode:
- clouds: the sensor_msgs_py approach (structured dtype built from the fields per message,
  a view of the buffer, field selection; for (N, k): structured_to_unstructured + float32);
- images: a plain frombuffer + reshape + copy (rgb8) or reversed-channel copy (bgr8, what
  `cvtColor`-free decoders do with `[..., ::-1]`).
Uses real sensor_msgs messages (data is array.array) when the ROS wheels are installed.
Figures on a shared machine are noisy; compare ratios, not absolutes.
"""

import argparse
import time

import numpy as np
from numpy.lib import recfunctions as rfn

from mm_fusion_ros.sensors import radar_preprocess as rp
from mm_fusion_ros.sensors.image import image_fields_from_rgb, image_to_rgb
from mm_fusion_ros.sensors.pointcloud import (
    create_cloud,
    read_points,
    read_points_numpy,
)
from mm_fusion_ros.sensors.radar_presets import load_preset


def timeit(fn, runs):
    fn()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return np.median(times) * 1e3, np.percentile(times, 99) * 1e3


def row(label, ours, base=None):
    text = f'  {label:<44} median {ours[0]:8.4f} ms  p99 {ours[1]:8.4f} ms'
    if base is not None:
        text += f'  | baseline {base[0]:8.4f} ms  ratio {ours[0] / base[0]:5.2f}x'
    print(text)


def image_message(rgb, encoding):
    fields = image_fields_from_rgb(rgb, encoding)
    try:
        from sensor_msgs.msg import Image
        return Image(**fields)
    except ImportError:
        from types import SimpleNamespace
        return SimpleNamespace(header=None, **fields)


def naive_image(msg, order):
    arr = np.frombuffer(memoryview(msg.data), np.uint8).reshape(msg.height, msg.step)
    px = arr[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
    return px.copy() if order is None else np.ascontiguousarray(px[..., order])


_NP_TYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}


def baseline_dtype(fields, point_step, is_bigendian):
    # Built from the fields on every call, as sensor_msgs_py's dtype_from_fields is.
    order = '>' if is_bigendian else '<'
    names, formats, offsets = [], [], []
    for f in fields:
        base = np.dtype(order + _NP_TYPES[f.datatype])
        names.append(f.name)
        formats.append(base if f.count <= 1 else (base, (f.count,)))
        offsets.append(f.offset)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': point_step})


def baseline_view(cloud, names):
    dtype = baseline_dtype(cloud.fields, cloud.point_step, bool(cloud.is_bigendian))
    pts = np.ndarray((cloud.width * cloud.height,), dtype, buffer=cloud.data)
    return pts[list(names)]


def baseline_cloud(cloud, names):
    # The sensor_msgs_py way, then an owned float32 array like read_points_numpy returns.
    return rfn.structured_to_unstructured(baseline_view(cloud, names)).astype(np.float32)


def bench_images(runs):
    print('Image 640x480 -> (H, W, 3) uint8 RGB')
    rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for encoding, order in (('rgb8', None), ('bgr8', slice(None, None, -1))):
        msg = image_message(rgb, encoding)
        ours = timeit(lambda m=msg: image_to_rgb(m), runs)
        base = timeit(lambda m=msg, o=order: naive_image(m, o), runs)
        row(f'{encoding} ({type(msg.data).__name__} data)', ours, base)


def bench_clouds(runs):
    print('PointCloud2 -> (N, k) float32 (read_points_numpy) / structured view (read_points)')
    rng = np.random.default_rng(0)
    for preset_name, names in (('sim', None), ('carla', ('x', 'y', 'z', 'Velocity'))):
        preset = load_preset(preset_name)
        fields = preset.layout_fields()
        names = names or tuple(f.name for f in fields)
        for n in (500, 5000, 50000):
            cols = rng.normal(size=(n, len(fields))).astype(np.float32)
            cloud = create_cloud(None, fields, cols)
            r = max(20, runs // (1 + n // 5000))
            ours = timeit(lambda c=cloud, k=names: read_points_numpy(c, k), r)
            base = timeit(lambda c=cloud, k=names: baseline_cloud(c, k), r)
            row(f'{preset_name} {n:>6} pts numpy (N,{len(names)})', ours, base)
            view = timeit(lambda c=cloud, k=names: read_points(c, k), r)
            base_view = timeit(lambda c=cloud, k=names: baseline_view(c, k), r)
            row(f'{preset_name} {n:>6} pts structured view', view, base_view)
    preset = load_preset('sim')
    pts = rng.normal(size=(50000, 5)).astype(np.float32)
    row('create_cloud sim 50000 pts', timeit(
        lambda: create_cloud(None, preset.layout_fields(), pts), 20))


def bench_preprocess(runs):
    print('Radar preprocessing steps (numpy vs Open3D tensor API)')
    rng = np.random.default_rng(0)
    lo, hi = [-10, -40, -3, -20, -10], [110, 40, 6, 20, 30]
    cfg = rp.RadarPreprocessConfig(voxel_size=0.5, outlier_neighbors=8, max_points=512)
    for n in (500, 5000, 50000):
        pts = rng.uniform(lo, hi, (n, 5)).astype(np.float32)
        r = max(10, runs // (1 + n // 2000))
        row(f'{n:>6} pts remove_non_finite', timeit(lambda p=pts: rp.remove_non_finite(p), r))
        row(f'{n:>6} pts crop_roi', timeit(lambda p=pts: rp.crop_roi(p, cfg), r))
        row(f'{n:>6} pts cap_points 512', timeit(lambda p=pts: rp.cap_points(p, 512), r))
        row(f'{n:>6} pts voxel 0.5 m numpy (vs open3d)',
            timeit(lambda p=pts: rp.voxel_downsample_numpy(p, 0.5), r),
            timeit(lambda p=pts: rp.voxel_downsample_open3d(p, 0.5), r))
        if n <= 5000:
            xyz = pts[:, :3]
            r = 5 if n > 1000 else 20
            row(f'{n:>6} pts outliers k=8 open3d (vs numpy)',
                timeit(lambda x=xyz: rp.statistical_outlier_mask_open3d(x, 8, 2.0), r),
                timeit(lambda x=xyz: rp.statistical_outlier_mask_numpy(x, 8, 2.0), r))
        row(f'{n:>6} pts full preprocess_radar', timeit(
            lambda p=pts: rp.preprocess_radar(p, cfg), max(5, r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=300, help='runs per small case')
    parser.add_argument('--threads', type=int, default=2, help='torch/Open3D threads')
    args = parser.parse_args()
    rp.configure_threads(rp.ThreadConfig(args.threads, 1, args.threads))
    t0 = time.perf_counter()
    bench_images(args.runs)
    bench_clouds(args.runs)
    bench_preprocess(args.runs // 3)
    print(f'total {time.perf_counter() - t0:.1f} s')


if __name__ == '__main__':
    main()
