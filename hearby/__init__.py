"""hearby: music recommendation by how it sounds.

This package holds the command-line entry point and the generated gRPC/protobuf stubs
(``hearby.<service>.v1``); the services live in ``services/``, the trainer in ``trainer/``.
"""
