"""Fuzz harnesses (atheris) for hearby's untrusted-input parsers; run them with fuzz.run."""
