#!/usr/bin/env python3
"""Validate Kubernetes manifests offline against the API's schemas (`loadgen k8s`'s).

    .venv-k8s/bin/python scripts/check_k8s.py [-k 1.30.0] FILE.yaml [MORE.yaml ...]

Every document of every file is read with PyYAML's safe loader (a duplicate key is an
error too) and checked with the pinned kubernetes-validate (scripts/setup_checks.sh
k8s) in strict mode: an unknown field, a wrong type or a kind it has no schema for
fails. Prints one line per file, a JSON array of its documents, and exits 0; on any
problem prints `FILE: what` on stderr and exits 1.
"""

import argparse
import json
import sys

import kubernetes_validate
import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", "--kubernetes-version", default="1.30.0")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    failed = 0
    for name in args.files:
        try:
            with open(name, encoding="utf-8") as f:
                docs = [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]
            if not docs:
                raise ValueError("no documents")
            for d in docs:
                kubernetes_validate.validate(d, args.kubernetes_version, strict=True)
        except Exception as e:  # noqa: BLE001: every kind of failure is one line
            what = getattr(e, "message", None) or str(e)
            path = ".".join(str(p) for p in getattr(e, "path", []) or [])
            print(f"{name}: {type(e).__name__}: {path}: {what}", file=sys.stderr)
            failed = 1
            continue
        print(json.dumps(docs))
    return failed


if __name__ == "__main__":
    sys.exit(main())
