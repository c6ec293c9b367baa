"""Code written once and used by every hearby service."""
