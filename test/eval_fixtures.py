"""Shared fixtures of the bag-evaluation tests: a random-weight checkpoint and short sim bags."""

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from mm_fusion_ros.bags import write_episode_bag
from mm_fusion_ros.bags.typestore import project_typestore
from mm_fusion_ros.sensors.pointcloud import DATATYPES
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType, run_episode
from mm_fusion_ros.sim.conditions import Condition

NS = 1_000_000_000
CONFIGS = (
    ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.CLEAR, seed=11,
                   duration=3.0),
    ScenarioConfig(scenario=ScenarioType.CUT_IN, condition=Condition.RAIN, seed=12,
                   duration=3.0),
)


def random_checkpoint(path, seed: int = 0) -> str:
    import torch

    from mm_fusion_ros.model.checkpoint import save_checkpoint
    from mm_fusion_ros.model.fusion import FusionModel

    torch.manual_seed(seed)
    return str(save_checkpoint(FusionModel(), path, training_data_hash='random-weights'))


def sim_bag(path, config=CONFIGS[0], storage: str = 'mcap', drop_radar=()):
    """A sim episode bag; frames listed in `drop_radar` lose their radar message."""
    from dataclasses import replace

    frames = [replace(f, radar=None) if i in drop_radar else f
              for i, f in enumerate(run_episode(config).frames)]
    write_episode_bag(path, frames, config, storage=storage)
    return path


def carla_bag(path, frames: int = 30):
    """A CARLA-bridge layout bag: bgra8 images, radar with CARLA's fields, no ground truth."""
    store = project_typestore()
    t = store.types
    preset = load_preset('carla')
    fields = preset.layout_fields()
    dtype = np.dtype({'names': [f.name for f in fields],
                      'formats': [DATATYPES[f.datatype] for f in fields],
                      'offsets': [f.offset for f in fields], 'itemsize': preset.point_step})
    pf = [t['sensor_msgs/msg/PointField'](name=f.name, offset=f.offset, datatype=f.datatype,
                                          count=f.count) for f in fields]
    rng = np.random.default_rng(0)

    def header(stamp, frame_id):
        time_t = t['builtin_interfaces/msg/Time'](sec=stamp // NS, nanosec=stamp % NS)
        return t['std_msgs/msg/Header'](stamp=time_t, frame_id=frame_id)

    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as w:
        cam = w.add_connection('/carla/ego_vehicle/rgb_front/image', 'sensor_msgs/msg/Image',
                               typestore=store)
        rad = w.add_connection('/carla/ego_vehicle/radar_front', 'sensor_msgs/msg/PointCloud2',
                               typestore=store)
        for i in range(frames):
            stamp = 5 * NS + i * NS // 20
            bgra = rng.integers(0, 255, (64, 128, 4), dtype=np.uint8)
            img = t['sensor_msgs/msg/Image'](
                header=header(stamp, 'rgb'), height=64, width=128, encoding='bgra8',
                is_bigendian=0, step=512, data=bgra.reshape(-1))
            w.write(cam, stamp, store.serialize_cdr(img, 'sensor_msgs/msg/Image'))
            n = 6
            arr = np.zeros(n, dtype)
            xs = rng.uniform(5, 60, n).astype(np.float32)
            arr['x'], arr['y'], arr['Range'] = xs, rng.uniform(-3, 3, n), xs
            arr['Velocity'] = rng.uniform(-5, 1, n)
            cloud = t['sensor_msgs/msg/PointCloud2'](
                header=header(stamp + 3_000_000, 'radar'), height=1, width=n, fields=pf,
                is_bigendian=False, point_step=preset.point_step,
                row_step=preset.point_step * n, data=np.frombuffer(arr.tobytes(), np.uint8),
                is_dense=True)
            w.write(rad, stamp + 3_000_000,
                    store.serialize_cdr(cloud, 'sensor_msgs/msg/PointCloud2'))
    return path
