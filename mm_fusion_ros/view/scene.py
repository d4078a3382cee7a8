"""The view's content: the pipeline's data -> Rerun entities (no ROS, no I/O).

Entity tree (what the viewer lists):

    /base_link                      vehicle frame (x forward, y left, z up), ego box
    /base_link/radar                radar mount (static transform); points, TTC corridor
    /base_link/camera               camera mount (static transform) + pinhole from CameraInfo
    /base_link/camera/image         the camera frame; /radar: radar points projected into it
    /decision/summary               final action, source, degraded reason, model, TTC
    /decision/probabilities         the model's class probabilities over time (a series each)
    /decision/target_acceleration   the final decision's target acceleration
    /safety/ttc                     radar time-to-collision in the ego corridor, and the
                                    override threshold
    /diagnostics                    the nodes' /diagnostics as a log
    /**/markers/<ns>/<id>           fusion/markers (POINTS and TEXT), hidden in the layout
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.ros.markers import doppler_colors
from mm_fusion_ros.safety import SafetyConfig, radar_time_to_collision
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.dynamics import DynamicsConfig
from mm_fusion_ros.sim.radar import RadarConfig
from mm_fusion_ros.view import require_rerun
from mm_fusion_ros.view.geometry import radar_to_image

rr = require_rerun()
import rerun.blueprint as rrb  # noqa: E402 - after the clear error require_rerun() gives

TIMELINE = 'ros_time'  # message stamps: sim time (a duration from 0) or wall time
EGO_HEIGHT = 1.5  # [m] drawn height of the ego box (the simulator models none)
CORRIDOR_START = 0.5  # [m] radar_time_to_collision's min_range: the corridor starts there
CORRIDOR_LENGTH = 80.0  # [m] drawn length of the TTC corridor ahead of the radar
TTC_PLOT_MAX = 10.0  # [s] a TTC above this (or none) is plotted at this value
POINT_RADIUS = 0.35  # [m] radar points in 3D
PIXEL_RADIUS = 2.5  # [px] radar points on the image
HISTORY = 20.0  # [s] shown in the time-series panels
EYE_POSITION = (-12.0, 0.0, 7.0)  # [m] in base_link: the 3D view's eye, behind and above
EYE_TARGET = (25.0, 0.0, 0.0)  # [m] where it looks: the road ahead

BASE = '/base_link'
RADAR = f'{BASE}/radar'
CAMERA = f'{BASE}/camera'
IMAGE = f'{CAMERA}/image'
SUMMARY = '/decision/summary'
PROBABILITIES = '/decision/probabilities'
TARGET_ACCELERATION = '/decision/target_acceleration'
TTC = '/safety/ttc'
DIAGNOSTICS = '/diagnostics'
_LEVELS = {0: 'INFO', 1: 'WARN', 2: 'ERROR', 3: 'WARN'}  # diagnostic_msgs level -> log level
_LEVEL_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}


@dataclass(frozen=True)
class ViewConfig:
    """What the view draws besides the messages: mounts, ego size, the TTC corridor."""

    camera: Extrinsic = CameraConfig().mount
    radar: Extrinsic = RadarConfig().mount
    ego_size: tuple[float, float, float] = (DynamicsConfig.length, DynamicsConfig.width,
                                            EGO_HEIGHT)  # [m] length, width, height
    corridor_half_width: float = SafetyConfig.corridor_half_width  # [m]
    ttc_brake_threshold: float = SafetyConfig.ttc_brake_threshold  # [s]
    base_frame_id: str = 'base_link'
    camera_frame_id: str = 'camera'
    radar_frame_id: str = 'radar'


@dataclass(frozen=True)
class Entity:
    """One log call: archetypes at a path, static (timeless) or at the current time."""

    path: str
    archetypes: tuple[Any, ...]
    static: bool = False


@dataclass(frozen=True)
class DiagnosticEntry:
    """One diagnostic_msgs/DiagnosticStatus as plain data."""

    name: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkerPoints:
    """A POINTS (or TEXT) marker as plain data: (N, 3) positions, (N, 4) RGBA in 0..1."""

    ns: str
    id: int
    frame_id: str
    positions: np.ndarray
    colors: np.ndarray | None = None
    text: str = ''


def doppler_rgb(radial_velocity: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: the RViz markers' Doppler colours (red closing, blue opening)."""
    rgba = doppler_colors(np.nan_to_num(np.asarray(radial_velocity, np.float64)))
    return np.round(255.0 * rgba[:, :3]).astype(np.uint8)


def _transform(mount: Extrinsic) -> Any:
    return rr.Transform3D(translation=mount.translation, mat3x3=mount.rotation)


def static_entities(config: ViewConfig, labels: Sequence[str] = ACTION_LABELS) -> list[Entity]:
    """The vehicle frame, ego box, sensor mounts and series styles: logged once."""
    length, width, height = config.ego_size
    r = config.radar
    hw = config.corridor_half_width
    out = [
        Entity(BASE, (rr.ViewCoordinates.RIGHT_HAND_Z_UP, rr.TransformAxes3D(1.0)), True),
        Entity(f'{BASE}/ego', (rr.Boxes3D(
            centers=[[0.0, 0.0, 0.5 * height]], half_sizes=[[0.5 * length, 0.5 * width,
                                                             0.5 * height]],
            colors=[[230, 230, 230]], labels=['ego'], show_labels=False),), True),
        Entity(RADAR, (_transform(r), rr.TransformAxes3D(0.5)), True),
        # The corridor the safety layer's TTC check looks at, on the ground ahead of the radar.
        Entity(f'{RADAR}/corridor', (rr.Boxes3D(
            mins=[[CORRIDOR_START, -hw, -r.z]], sizes=[[CORRIDOR_LENGTH, 2.0 * hw, 0.0]],
            colors=[[255, 200, 0, 90]], labels=['TTC corridor'], show_labels=False),), True),
        Entity(CAMERA, (_transform(config.camera), rr.TransformAxes3D(0.5)), True),
        Entity(TTC, (rr.SeriesLines(names=['radar TTC [s]', 'override below [s]'],
                                    colors=[[255, 120, 0], [200, 0, 0]]),), True),
        Entity(TARGET_ACCELERATION, (rr.SeriesLines(names=['target accel [m/s^2]'],
                                                    colors=[[80, 160, 255]]),), True),
        Entity(PROBABILITIES, (rr.SeriesLines(names=list(labels)),), True),
    ]
    return out


def pinhole_entity(k: np.ndarray, width: int, height: int) -> Entity:
    """CameraInfo's K on the camera frame; its body axes are x forward, y left, z up."""
    return Entity(CAMERA, (rr.Pinhole(
        image_from_camera=np.asarray(k, np.float64).reshape(3, 3), resolution=[width, height],
        camera_xyz=rr.ViewCoordinates.FLU, image_plane_distance=2.0),), True)


def camera_entities(
    rgb: np.ndarray, radar_points: np.ndarray | None, k: np.ndarray | None, config: ViewConfig
) -> list[Entity]:
    """The frame and the newest radar frame projected into it (when K is known)."""
    out = [Entity(IMAGE, (rr.Image(np.ascontiguousarray(rgb)),))]
    if k is not None:
        pts = np.zeros((0, 5), np.float32) if radar_points is None else radar_points
        uv, idx = radar_to_image(pts, config.radar, config.camera, k, rgb.shape[1],
                                 rgb.shape[0])
        colors = doppler_rgb(pts[idx, 3]) if len(idx) else np.zeros((0, 3), np.uint8)
        out.append(Entity(f'{IMAGE}/radar', (rr.Points2D(uv, colors=colors,
                                                         radii=PIXEL_RADIUS),)))
    return out


def radar_entities(points: np.ndarray, config: ViewConfig) -> tuple[list[Entity], float]:
    """Radar points in the radar frame and the TTC; returns (entities, ttc [s], inf if none)."""
    pts = np.asarray(points, np.float32)
    ttc = radar_time_to_collision(pts, config.corridor_half_width)
    finite = np.isfinite(pts[:, :3]).all(axis=1)
    shown = pts[finite]
    entities = [
        Entity(f'{RADAR}/points', (rr.Points3D(shown[:, :3], colors=doppler_rgb(shown[:, 3]),
                                               radii=POINT_RADIUS),)),
        Entity(TTC, (rr.Scalars([min(ttc, TTC_PLOT_MAX), config.ttc_brake_threshold]),)),
    ]
    return entities, ttc


def probability_entities(decision: Decision) -> list[Entity]:
    """The model's class probabilities: one entity, a series per class (the static names)."""
    probs = np.asarray(decision.probabilities, np.float64)
    if probs.size == 0:
        return []
    return [Entity(PROBABILITIES, (rr.Scalars(probs),))]


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else '-'


def summary_markdown(final: Decision | None, model: Decision | None, ttc: float,
                     config: ViewConfig) -> str:
    """The decision panel: action, safety state, model output, TTC."""
    lines = []
    if final is None:
        lines.append('### waiting for the first decision')
    else:
        source = DecisionSource(final.source).name.lower().replace('_', ' ')
        lines.append(f'### {final.action.label}  ({source})')
        lines.append(f'**DEGRADED:** {final.degraded_reason or "(no reason given)"}'
                     if final.degraded else 'not degraded')
    lines += ['', '| | |', '|---|---|']
    if final is not None:
        lines += [f'| target acceleration | {_number(final.target_acceleration, "+.2f")} m/s² |',
                  f'| target speed | {_number(final.target_speed, ".1f")} m/s |']
    if model is not None:
        lines.append(f'| model | {model.action.label} {model.confidence:.2f} '
                     f'({1e3 * model.inference_latency:.1f} ms) |')
        probs = np.asarray(model.probabilities, np.float64)
        for label, p in zip(model.class_labels, probs, strict=False):
            lines.append(f'| p({label}) | {p:.3f} |')
    shown = f'{ttc:.2f} s' if math.isfinite(ttc) else 'none closing'
    lines.append(f'| radar TTC | {shown} (override below {config.ttc_brake_threshold:g} s) |')
    return '\n'.join(lines)


def diagnostic_entities(entries: Sequence[DiagnosticEntry]) -> list[Entity]:
    out = []
    for e in entries:
        values = ', '.join(f'{k}={v}' for k, v in e.values.items())
        text = f'{e.name}: {_LEVEL_NAMES.get(e.level, e.level)} {e.message}'
        out.append(Entity(DIAGNOSTICS, (rr.TextLog(f'{text} [{values}]' if values else text,
                                                   level=_LEVELS.get(e.level, 'WARN')),)))
    return out


def marker_entities(markers: Sequence[MarkerPoints], config: ViewConfig) -> list[Entity]:
    """Markers under the entity of their frame (unknown frames at /markers)."""
    frames = {config.base_frame_id: BASE, config.radar_frame_id: RADAR,
              config.camera_frame_id: CAMERA}
    out = []
    for m in markers:
        parent = frames.get(m.frame_id.lstrip('/'), '')
        path = f'{parent}/markers/{m.ns or "default"}/{m.id}'
        positions = np.asarray(m.positions, np.float32).reshape(-1, 3)
        colors = None
        if m.colors is not None and len(m.colors) == len(positions):
            colors = np.round(255.0 * np.clip(np.asarray(m.colors, np.float64), 0, 1))
            colors = colors.astype(np.uint8)
        labels = [m.text] if m.text and len(positions) == 1 else None
        out.append(Entity(path, (rr.Points3D(positions, colors=colors, labels=labels,
                                             radii=0.2),)))
    return out


def blueprint() -> Any:
    """The layout: camera and 3D scene on the left, decision and plots on the right."""
    recent = rrb.VisibleTimeRange(
        TIMELINE, start=rrb.TimeRangeBoundary.cursor_relative(seconds=-HISTORY),
        end=rrb.TimeRangeBoundary.cursor_relative())
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(
                rrb.Spatial2DView(origin=CAMERA, name='camera + radar', contents=[
                    f'+ {IMAGE}/**', f'- {CAMERA}/markers/**']),
                rrb.Spatial3DView(
                    origin=BASE, name='base_link', contents=[
                        f'+ {BASE}/**', f'- {BASE}/markers/**', f'- {RADAR}/markers/**',
                        f'- {CAMERA}/markers/**'],
                    eye_controls=rrb.EyeControls3D(position=EYE_POSITION, look_target=EYE_TARGET,
                                                   eye_up=(0.0, 0.0, 1.0))),
            ),
            rrb.Vertical(
                rrb.TextDocumentView(origin=SUMMARY, name='decision'),
                rrb.TimeSeriesView(origin=PROBABILITIES, name='model probabilities',
                                   time_ranges=recent),
                rrb.TimeSeriesView(name='safety', contents=[TTC, TARGET_ACCELERATION],
                                   time_ranges=recent),
                rrb.TextLogView(origin=DIAGNOSTICS, name='diagnostics'),
                row_shares=[3, 2, 2, 2],
            ),
            column_shares=[3, 2],
        ),
        collapse_panels=True,
    )


class LiveScene:
    """Keeps what the next entities depend on: K, the newest radar frame and decisions."""

    def __init__(self, config: ViewConfig | None = None) -> None:
        self.config = config or ViewConfig()
        self.k: np.ndarray | None = None
        self.size: tuple[int, int] | None = None  # (width, height) of CameraInfo
        self.radar_points: np.ndarray | None = None
        self.ttc = math.inf
        self.model: Decision | None = None
        self.final: Decision | None = None

    def start(self) -> list[Entity]:
        return static_entities(self.config) + [self._summary()]

    def camera_info(self, k: np.ndarray, width: int, height: int) -> list[Entity]:
        k = np.asarray(k, np.float64).reshape(3, 3)
        if self.k is not None and self.size == (width, height) and np.array_equal(k, self.k):
            return []
        self.k, self.size = k, (width, height)
        return [pinhole_entity(k, width, height)]

    def camera(self, rgb: np.ndarray) -> list[Entity]:
        k = self.k if self.size == (rgb.shape[1], rgb.shape[0]) else None
        return camera_entities(rgb, self.radar_points, k, self.config)

    def radar(self, points: np.ndarray, draw: bool = True) -> list[Entity]:
        """The newest radar frame: projected with the next camera frame; drawn if `draw`."""
        self.radar_points = np.asarray(points, np.float32)
        if not draw:
            self.ttc = radar_time_to_collision(self.radar_points, self.config.corridor_half_width)
            return []
        entities, self.ttc = radar_entities(self.radar_points, self.config)
        return entities

    def decision(self, decision: Decision, final: bool) -> list[Entity]:
        """The model's probabilities; the final decision's acceleration and the summary."""
        if not final:
            self.model = decision
            return probability_entities(decision)
        self.final = decision
        return [Entity(TARGET_ACCELERATION, (rr.Scalars([decision.target_acceleration]),)),
                self._summary()]

    def _summary(self) -> Entity:
        text = summary_markdown(self.final, self.model, self.ttc, self.config)
        return Entity(SUMMARY, (rr.TextDocument(text, media_type=rr.MediaType.MARKDOWN),))
