"""The ranker: similar tracks, recommendations, sessions and A/B version choice."""
