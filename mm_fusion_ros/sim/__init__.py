"""Procedural driving-scenario simulator: world, camera and radar models, expert, metrics."""
