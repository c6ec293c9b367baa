"""Labelled music corpora: programmatic songs and music21 scores rendered with FluidSynth."""
