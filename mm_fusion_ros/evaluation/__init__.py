"""Evaluation: classification metrics, closed-loop driving metrics, bag replay reports."""
