"""FusionModelConfig: every architecture size and input-normalisation constant of the model.

The config travels inside the checkpoint (`to_dict`), so a checkpoint rebuilds exactly the
model it was trained as; preprocessing reads its constants from here and nowhere else.
Default sized for batch-1 CPU inference at <= 15 ms p50 on 2 cores (`bench/model_latency.py`).
"""

from dataclasses import asdict, dataclass, fields
from typing import Any

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.sensors.ego_motion import check_radar_ego_motion
from mm_fusion_ros.sensors.radar_features import (
    CANONICAL_RADAR_FEATURES,
    OPTIONAL_RADAR_FEATURES,
)

# Per-feature (offset, scale) for radar normalisation: (value - offset) / scale lands roughly in
# [-2, 2] for the sensor's ROI (x 0..100 m forward, y +-30 m, z -3..5 m, Doppler +-30 m/s,
# rcs -10..30 dBsm). Units are those of `radar_features`.
RADAR_FEATURE_NORMALISATION: dict[str, tuple[float, float]] = {
    'x': (40.0, 30.0),               # [m]
    'y': (0.0, 10.0),                # [m]
    'z': (0.5, 2.0),                 # [m]
    'radial_velocity': (0.0, 10.0),  # [m/s]
    'rcs': (5.0, 10.0),              # [dBsm]
    'vx': (0.0, 10.0),               # [m/s]
    'vy': (0.0, 10.0),               # [m/s]
}

TEMPORAL_ENCODERS = ('transformer', 'gru')
FOVEA_BOX = (0.25, 0.4375, 0.75, 0.6875)
# What the model can run on: both sensors, or one branch alone (ablation, a dead sensor).
MODALITIES = ('fused', 'camera', 'radar')


@dataclass(frozen=True)
class FusionModelConfig:
    """Architecture, input sizes and normalisation of the fusion model (units in comments)."""

    # -- camera input: (H, W, 3) uint8 RGB, resized to (image_height, image_width) ---------
    image_height: int = 128           # [px] the simulator renders 256x128
    image_width: int = 256            # [px]
    # Per-channel mean/std on the [0, 1] scale (ImageNet statistics).
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # [s] the image branch also sees (frame - frame `camera_history` s earlier): one frame
    # cannot show which way a pedestrian walks; 0 = single frame (3-channel stem).
    camera_history: float = 0.25
    history_dropout: float = 0.1      # training: P(earlier frame marked missing) per sample
    # Fovea: the road ahead at a higher resolution, stacked below the whole view (so one CNN
    # reads both and every token keeps its own position). At 256 px a pedestrian 35 m ahead
    # is 4 px wide and whether it stands on the kerb or the road is a 6 px question; the
    # fovea box of a 512x256 camera is copied pixel for pixel, twice the whole view's scale.
    fovea_height: int = 0             # [px] rows of the fovea below the view; 0 = no fovea
    # (left, top, right, bottom) of the source frame, as fractions of its width / height:
    # the middle half of the width, from just above the horizon to 24 px (of 128) below it.
    fovea_box: tuple[float, float, float, float] = FOVEA_BOX
    # How the radar history shows the ego's own motion (`sensors/ego_motion.RADAR_EGO_MOTION`):
    # 'raw' as measured, 'ground' or 'current_speed' with the ego's acceleration taken out.
    radar_ego_motion: str = 'raw'

    # -- image branch (ResNet-style: stride-2 stem, BasicBlock stages) -----------------------
    stem_width: int = 16                              # channels after the 3x3 stride-2 stem
    stage_widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per stage
    stage_blocks: tuple[int, ...] = (1, 1, 2, 1)      # BasicBlocks per stage
    stage_strides: tuple[int, ...] = (2, 2, 2, 2)     # total stride = 2 * prod -> 32
    token_dim: int = 96                               # D, width of every token

    # -- radar input: RadarSequence (T, N, F) --------------------------------------------------
    num_frames: int = 8               # T, radar frames of history
    max_points: int = 64              # N, points per frame (padded / strongest-rcs cropped)
    radar_features: tuple[str, ...] = CANONICAL_RADAR_FEATURES  # F, + optional 'vx', 'vy'
    # (offset, scale) per radar feature, same order as radar_features; empty -> defaults.
    radar_offset: tuple[float, ...] = ()
    radar_scale: tuple[float, ...] = ()

    # -- radar encoder ---------------------------------------------------------------------
    point_mlp: tuple[int, ...] = (32, 64)  # shared per-point MLP widths (PointNet)
    temporal_encoder: str = 'transformer'  # 'transformer' | 'gru'
    temporal_layers: int = 2
    time_scale: float = 0.5           # [s] time offsets are divided by this before embedding
    max_time_offset: float = 2.0      # [s] |offset| clipped to this (the buffer's max_age)

    # -- ego speed (odometry) ----------------------------------------------------------------
    # Stopping, following and yellow-light decisions depend on how fast the ego goes, which a
    # single camera frame cannot show; the speed joins the fused features before the heads.
    ego_speed_scale: float = 10.0     # [m/s] speed is divided by this before embedding
    ego_speed_dim: int = 32           # width of the speed embedding
    # training: P(speed marked unknown) per sample; also keeps decisions from leaning on speed
    # alone ("fast, so keep going": the inertia problem of behaviour cloning)
    ego_speed_dropout: float = 0.3

    # -- fusion + heads ---------------------------------------------------------------------
    fusion_tokens: int = 4            # learned bottleneck tokens that read both modalities
    fusion_layers: int = 2
    num_heads: int = 4                # attention heads (token_dim divisible by it)
    mlp_ratio: float = 2.0            # feed-forward width / token_dim
    dropout: float = 0.1
    modality_dropout: float = 0.2     # training: P(one modality blanked) per sample
    class_names: tuple[str, ...] = ACTION_LABELS
    ttc_min: float = 0.1              # [s] predicted TTC range; targets are clipped to it
    ttc_max: float = 10.0             # [s] "no threat" saturates here

    def __post_init__(self) -> None:
        if self.image_height < 32 or self.image_width < 32:
            raise ValueError('image_height and image_width must be >= 32')
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError('image_mean/image_std need 3 values, std > 0')
        if not (len(self.stage_widths) == len(self.stage_blocks) == len(self.stage_strides)):
            raise ValueError('stage_widths, stage_blocks and stage_strides must match in length')
        if not self.stage_widths or min(self.stage_blocks) < 1:
            raise ValueError('need at least one stage with >= 1 block')
        left, top, right, bottom = self.fovea_box
        if self.fovea_height < 0 or not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
            raise ValueError('need fovea_height >= 0 and a fovea_box (left, top, right, '
                             'bottom) with 0 <= left < right <= 1, 0 <= top < bottom <= 1')
        h, w = self.image_grid
        if h < 1 or w < 1:
            raise ValueError(f'image {self.image_height}x{self.image_width} too small for stride')
        check_radar_ego_motion(self.radar_ego_motion)
        if self.camera_history < 0 or not 0.0 <= self.history_dropout <= 1.0:
            raise ValueError('need camera_history >= 0 s and history_dropout in [0, 1]')
        if self.num_frames < 1 or self.max_points < 1:
            raise ValueError('num_frames and max_points must be >= 1')
        known = CANONICAL_RADAR_FEATURES + OPTIONAL_RADAR_FEATURES
        unknown = [f for f in self.radar_features if f not in known]
        if unknown or len(set(self.radar_features)) != len(self.radar_features):
            raise ValueError(f'radar_features must be distinct names from {known}')
        if not self.radar_offset:
            object.__setattr__(self, 'radar_offset', tuple(
                RADAR_FEATURE_NORMALISATION[f][0] for f in self.radar_features))
        if not self.radar_scale:
            object.__setattr__(self, 'radar_scale', tuple(
                RADAR_FEATURE_NORMALISATION[f][1] for f in self.radar_features))
        if len(self.radar_offset) != self.num_features or \
                len(self.radar_scale) != self.num_features or min(self.radar_scale) <= 0:
            raise ValueError('radar_offset/radar_scale need one value per feature, scale > 0')
        if self.temporal_encoder not in TEMPORAL_ENCODERS:
            raise ValueError(f'temporal_encoder must be one of {TEMPORAL_ENCODERS}')
        if self.token_dim % self.num_heads:
            raise ValueError('token_dim must be divisible by num_heads')
        if self.fusion_tokens < 1 or self.fusion_layers < 1 or self.temporal_layers < 1:
            raise ValueError('fusion_tokens, fusion_layers, temporal_layers must be >= 1')
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError('dropout must be in [0, 1), modality_dropout in [0, 1]')
        if self.ego_speed_scale <= 0 or self.ego_speed_dim < 1 or \
                not 0.0 <= self.ego_speed_dropout <= 1.0:
            raise ValueError('need ego_speed_scale > 0, ego_speed_dim >= 1, '
                             'ego_speed_dropout in [0, 1]')
        if not 0 < self.ttc_min < self.ttc_max:
            raise ValueError('need 0 < ttc_min < ttc_max')
        if self.time_scale <= 0 or self.max_time_offset <= 0:
            raise ValueError('time_scale and max_time_offset must be > 0')
        if not self.class_names:
            raise ValueError('class_names must not be empty')

    @property
    def image_channels(self) -> int:
        """Stem input channels: RGB, plus the RGB change since the earlier frame."""
        return 6 if self.camera_history > 0 else 3

    @property
    def num_features(self) -> int:
        return len(self.radar_features)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_height(self) -> int:
        """[px] rows of the model frame: the whole view, then the fovea."""
        return self.image_height + self.fovea_height

    @property
    def image_stride(self) -> int:
        stride = 2
        for s in self.stage_strides:
            stride *= s
        return stride

    @property
    def image_grid(self) -> tuple[int, int]:
        """(rows, cols) of image tokens: each stride-2 conv (pad 1, k 3) gives ceil(n / 2)."""
        h, w = self.input_height, self.image_width
        for s in (2, *self.stage_strides):
            h, w = -(-h // s), -(-w // s)
        return h, w

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, no tuples) for checkpoints, YAML and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> 'FusionModelConfig':
        """Inverse of `to_dict`; unknown keys are an error, missing keys take defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f'unknown FusionModelConfig keys: {unknown}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def small_config(**overrides: Any) -> FusionModelConfig:
    """A tiny config for tests and smoke runs (same structure, a fraction of the cost)."""
    values: dict[str, Any] = dict(
        image_height=64, image_width=128, stem_width=8, stage_widths=(8, 16, 24),
        stage_blocks=(1, 1, 1), stage_strides=(2, 2, 2), token_dim=32, num_frames=4,
        max_points=16, point_mlp=(16, 32), temporal_layers=1, fusion_tokens=2,
        fusion_layers=1, num_heads=2, ego_speed_dim=8,
    )
    values.update(overrides)
    return FusionModelConfig(**values)


