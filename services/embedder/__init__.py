"""The embedder: a Triton Inference Server over hearby's model repository."""
