"""Radar object tracking between the radar front end and the safety layer (pure numpy)."""

from mm_fusion_ros.tracking.clustering import Detections, cluster_returns, valid_returns
from mm_fusion_ros.tracking.tracker import RadarTracker, Track, TrackerConfig

__all__ = ['Detections', 'RadarTracker', 'Track', 'TrackerConfig', 'cluster_returns',
           'valid_returns']
