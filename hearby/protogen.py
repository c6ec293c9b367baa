"""Generates the protobuf/gRPC stubs for every file under ``proto/`` into this package.

Run with ``make proto`` (``python -m hearby.protogen``). The stubs are committed;
``tests/unit/test_protogen.py`` regenerates them into a temp dir and fails when the committed
copies are stale.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """All ``.proto`` files under ``proto_root``, sorted, relative to it."""
    return sorted(p.relative_to(proto_root) for p in proto_root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Runs protoc over every proto file, writing ``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``.

    Args:
        out_dir: Root the package tree is written under (``hearby/<svc>/v1/...`` appears in it).
        proto_root: Folder holding ``hearby/<svc>/v1/*.proto``.

    Returns:
        The generated files, relative to ``out_dir``, sorted.

    Raises:
        RuntimeError: protoc reported an error (its message is on stderr).
    """
    files = proto_files(proto_root)
    # google/protobuf/*.proto (timestamp, ...) ship inside grpc_tools.
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(f) for f in files],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {len(files)} files under {proto_root}")
    generated: list[Path] = []
    for proto in files:
        stem = proto.with_suffix("")
        generated += [
            stem.with_name(stem.name + sfx) for sfx in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
        ]
        # hearby/<svc>/v1 must be regular packages so imports work from an installed wheel
        # too; the top-level hearby/__init__.py is hand-written and not ours to touch.
        for package in (proto.parent, proto.parent.parent):
            init = package / "__init__.py"
            if not (out_dir / init).exists():
                (out_dir / init).write_text("")
            generated.append(init)
    return sorted(set(generated))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: regenerate the stubs in place."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root (default: repo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = generate(args.out)
    logger.info("generated %d files from %d protos", len(files), len(proto_files()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
