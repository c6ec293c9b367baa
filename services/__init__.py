"""hearby services: one folder per deployable, shared code in ``common``."""
