"""Monitoring: metrics, input/score drift and the dashboard."""
