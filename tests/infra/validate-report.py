#!/usr/bin/env python3
"""Validate run reports against their JSON Schema: airlock-fetch --json
against docs/fetch-report.schema.json, airlock-export --json against
docs/export-report.schema.json.

    validate-report.py SCHEMA REPORT...

Exit 0 when every report is valid, 1 with the first problem of each invalid
one, 2 when python3-jsonschema is missing (scripts/install-deps.sh)."""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("validate-report: python3-jsonschema is not installed (scripts/install-deps.sh)",
          file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    rc = 0
    for path in argv[2:]:
        with open(path) as f:
            report = json.load(f)
        errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
        for e in errors[:5]:
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            print(f"{path}: {where}: {e.message}", file=sys.stderr)
        if errors:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
