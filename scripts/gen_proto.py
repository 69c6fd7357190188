"""Regenerate the gRPC code from ``proto/`` (``make proto``), or check it is current.

The generated modules live in ``src/telehub/v1/``: protoc names a module after
its proto package (``telehub.v1``), so that is the one place their own imports
resolve without rewriting. ``.pyi`` stubs (mypy-protobuf) let mypy check calls.

    python scripts/gen_proto.py          # write src/telehub/v1/*_pb2*.py[i]
    python scripts/gen_proto.py --check  # exit 1 if they differ from proto/
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "src"
PACKAGE = Path("telehub") / "v1"
BIN = Path(sys.executable).parent
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # the well-known types
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[str]:
    return {p.name for p in (root / PACKAGE).iterdir() if p.name.endswith(GENERATED)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in code is stale")
    check = parser.parse_args().check
    if not check:
        for stale in generated_files(OUT_ROOT) if (OUT_ROOT / PACKAGE).exists() else set():
            (OUT_ROOT / PACKAGE / stale).unlink()
        (OUT_ROOT / PACKAGE).mkdir(parents=True, exist_ok=True)
        generate(OUT_ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want, have = generated_files(fresh), generated_files(OUT_ROOT)
        _, differ, _ = filecmp.cmpfiles(fresh / PACKAGE, OUT_ROOT / PACKAGE, sorted(want), False)
        if want != have or differ:
            names = sorted(set(differ) | (want ^ have))
            print(f"generated gRPC code is stale ({', '.join(names)}): run `make proto`")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
