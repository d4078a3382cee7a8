"""Pure sensor core: message decoding, radar presets and preprocessing, time sync (no rclpy)."""
