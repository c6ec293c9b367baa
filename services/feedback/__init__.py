"""Feedback: user events and impressions for A/B metrics, and blind similarity ratings."""
