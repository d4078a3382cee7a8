"""Canonical radar point features: the per-point channels the model consumes.

Every radar, whatever its message layout, is mapped to these channels by a preset
(`config/radar_presets/*.yaml`). Frame: the radar sensor frame, x forward, y left, z up.
"""

# x, y, z [m]; radial_velocity [m/s], positive when the target moves away from the sensor
# (Doppler); rcs [dBsm].
CANONICAL_RADAR_FEATURES: tuple[str, ...] = ('x', 'y', 'z', 'radial_velocity', 'rcs')
# Ego-motion-compensated velocity over ground [m/s], when the sensor reports it.
OPTIONAL_RADAR_FEATURES: tuple[str, ...] = ('vx', 'vy')
NUM_RADAR_FEATURES = len(CANONICAL_RADAR_FEATURES)
