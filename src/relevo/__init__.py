"""relevo: a self-hosted, real-time personalization engine."""

__version__ = "0.1.0"
