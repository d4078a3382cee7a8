"""A bag's sensor geometry: mounts from its `/tf_static`, intrinsics from its CameraInfo.

`bag_geometry(path, topics, fallback)` builds the `SensorRig` that replay evaluation and the
training cache feed to `SensorFrontEnd`, the way a live vehicle's parameters or TF would:

- radar mount: the transform of the radar cloud's `header.frame_id` in the layout's
  `vehicle_frame` (`base_link`; the CARLA bridge's `ego_vehicle`), looked up in the bag's
  static transform tree (`sensors.extrinsics.StaticTransforms`, every message of the
  layout's `tf_static_topic`);
- camera mount: the same for the image's `header.frame_id`. An optical frame (z forward, x
  right, y down: REP 103's `*_optical_frame`, told apart by its axes, not by its name) is
  turned into the camera body frame (x forward) the rig describes;
- camera intrinsics: the first CameraInfo of `camera_info_topic` (`use_camera_info`).

A layout that names no `tf_static_topic` takes the mounts from the parameters (`fallback`,
e.g. the params file's `radar_mount` / `camera_mount`) without a word. A layout that names
one, on a bag that lacks it or lacks a sensor's transform, takes that sensor's mount from the
parameters too and says so once (a logged warning, and `BagGeometry.warning`). Pure core:
reads the bag through rosbags, no rclpy.
"""

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any

from mm_fusion_ros.bags.reader import DEFAULT_MAX_MESSAGE_BYTES, BagTopics, open_bag
from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY, CameraInfoError, PinholeCamera
from mm_fusion_ros.sensors.extrinsics import Extrinsic, StaticTransforms, TransformError
from mm_fusion_ros.sensors.front_end import SensorRig

_LOG = logging.getLogger(__name__)

# Where a rig's part came from.
FROM_TF = 'tf_static'
FROM_PARAMS = 'params'
FROM_CAMERA_INFO = 'camera_info'
NO_CAMERA_INFO = 'none'


@dataclass(frozen=True)
class BagGeometry:
    """The rig of one bag and where each part of it came from."""

    rig: SensorRig
    radar_mount: str = FROM_PARAMS  # FROM_TF | FROM_PARAMS
    camera_mount: str = FROM_PARAMS
    intrinsics: str = NO_CAMERA_INFO  # FROM_CAMERA_INFO | NO_CAMERA_INFO | 'rejected: ...'
    radar_frame: str = ''
    camera_frame: str = ''
    warning: str = ''  # the one warning of a parameter fallback ('' when none)

    def describe(self) -> str:
        """One line for reports: where the mounts and intrinsics came from."""
        cam = self.rig.camera
        intrinsics = (f'CameraInfo {cam.width}x{cam.height} fx {cam.fx:.0f}'
                      if cam is not None else self.intrinsics)
        return (f'radar mount: {self.radar_mount} {_fmt(self.rig.radar_mount)}; camera mount:'
                f' {self.camera_mount} {_fmt(self.rig.camera_mount)}; intrinsics: {intrinsics}')


def _fmt(e: Extrinsic) -> str:
    return ('[' + ', '.join(f'{v:.3g}' for v in e.values) + ']')


def optical_to_body(pose: Extrinsic) -> Extrinsic:
    """The camera body frame (x forward) of an optical frame's pose (z forward)."""
    return Extrinsic.from_matrix(pose.rotation @ OPTICAL_IN_BODY.T, pose.translation)


def is_optical(pose: Extrinsic) -> bool:
    """True when the frame's z axis, not its x axis, looks forward (vehicle +x)."""
    r = pose.rotation
    return bool(r[0, 2] > abs(r[0, 0]))


def camera_body_mount(pose: Extrinsic) -> Extrinsic:
    return optical_to_body(pose) if is_optical(pose) else pose


def _first(bag: Any, kind: str) -> Any:
    for m in bag.messages((kind,)):
        return m.msg
    return None


def _frame_id(msg: Any) -> str:
    try:
        return str(msg.header.frame_id).lstrip('/')
    except AttributeError:
        return ''


def bag_geometry(
    path: str | Path, topics: BagTopics, fallback: SensorRig | None = None,
    use_camera_info: bool = True, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> BagGeometry:
    """The bag's rig (see the module docstring); `fallback` defaults to the training rig."""
    fallback = fallback or SensorRig()
    radar_mount, camera_mount = fallback.radar_mount, fallback.camera_mount
    sources = {'radar': FROM_PARAMS, 'camera': FROM_PARAMS}
    camera, intrinsics = None, NO_CAMERA_INFO
    problems: list[str] = []
    with open_bag(path, topics, max_message_bytes=max_message_bytes) as bag:
        radar_frame = _frame_id(_first(bag, 'radar'))
        camera_frame = _frame_id(_first(bag, 'image'))
        if topics.tf_static_topic:
            tree = StaticTransforms()
            for m in bag.messages(('tf_static',)):
                tree.add_message(m.msg)
            if topics.tf_static_topic not in bag.available:
                problems.append(f'no {topics.tf_static_topic} in the bag')
            else:
                for sensor, frame in (('radar', radar_frame), ('camera', camera_frame)):
                    if not frame:
                        problems.append(f'the {sensor} messages name no frame_id')
                        continue
                    try:
                        pose = tree.lookup(topics.vehicle_frame, frame)
                    except TransformError as exc:
                        problems.append(str(exc))
                        continue
                    sources[sensor] = FROM_TF
                    if sensor == 'radar':
                        radar_mount = pose
                    else:
                        camera_mount = camera_body_mount(pose)
        if use_camera_info and topics.camera_info_topic:
            msg = _first(bag, 'camera_info')
            if msg is not None:
                try:
                    camera = PinholeCamera.from_camera_info(msg)
                    intrinsics = FROM_CAMERA_INFO
                except CameraInfoError as exc:
                    intrinsics = f'rejected: {exc}'
    warning = ''
    if problems:
        warning = (f'bag {str(path)!r}: ' + '; '.join(problems) + '; the '
                   + ' and '.join(s for s in ('radar', 'camera') if sources[s] == FROM_PARAMS)
                   + ' mount from the parameters (radar_mount / camera_mount)')
        _LOG.warning('%s', warning)
    rig = SensorRig(radar_mount, camera_mount, camera)
    return BagGeometry(rig, sources['radar'], sources['camera'], intrinsics, radar_frame,
                       camera_frame, warning)


__all__ = ['FROM_CAMERA_INFO', 'FROM_PARAMS', 'FROM_TF', 'BagGeometry', 'bag_geometry',
           'camera_body_mount', 'is_optical', 'optical_to_body']
