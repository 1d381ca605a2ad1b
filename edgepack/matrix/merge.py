"""`edgepack matrix merge`: the job folders of one matrix, gathered into one output as a single run writes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..api import building
from ..errors import UsageError
from . import outputs


def _job(folder: Path) -> dict:
    try:
        matrix = json.loads((Path(folder) / "matrix.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"{str(folder)!r} holds no readable matrix.json", "pass the --out folders of "
                         "`edgepack matrix ... --job K` runs") from None
    if not matrix.get("job"):
        raise UsageError(f"{str(folder)!r} is a whole matrix run, not one job", "merge the folders of --job runs")
    return matrix


def merge(folders: list[Path], out: Path, force: bool = False) -> dict:
    """Refuses job folders that do not cover the matrix exactly (a missing or repeated job, another matrix)."""
    if not folders:
        raise UsageError("no job folders given", "pass the folders of every --job run")
    if Path(out).exists() and not force:
        raise UsageError(f"output folder {str(out)!r} already exists", "pass --force to replace it, or choose --out")
    jobs = [(Path(f), _job(f)) for f in folders]
    first = jobs[0][1]
    for folder, matrix in jobs:
        if matrix["matrix_sha256"] != first["matrix_sha256"]:
            raise UsageError(f"{str(folder)!r} is a job of another matrix file (or another version of it)",
                             "merge the jobs of one run")
    count = first["job"]["count"]
    seen: dict[int, Path] = {}
    for folder, matrix in jobs:
        index = matrix["job"]["index"]
        if index in seen:
            raise UsageError(f"job {index} is given twice ({str(seen[index])!r} and {str(folder)!r})")
        seen[index] = folder
    missing = [i for i in range(count) if i not in seen]
    if missing:
        names = ", ".join(f"job {i} ({first['models'][i]})" for i in missing)
        raise UsageError(f"the job folders do not cover the matrix: {names} missing",
                         f"pass all {count} job folders")
    jobs.sort(key=lambda j: j[1]["job"]["index"])
    rows = [row for _, matrix in jobs for row in matrix["rows"]]
    cache = {"built": sum(m["cache"]["built"] for _, m in jobs), "reused": sum(m["cache"]["reused"] for _, m in jobs),
             "discarded": [d for _, m in jobs for d in m["cache"]["discarded"]]}
    merged = {**first, "job": None, "passed": all(r["passed"] for r in rows), "rows": rows, "cache": cache,
              "merged_from": [str(f) for f, _ in jobs]}
    with building(Path(out)) as tmp:
        for folder, _ in jobs:
            for sub in folder.iterdir():
                if sub.is_dir():  # each model's pack folder
                    shutil.copytree(sub, tmp / sub.name)
        outputs.write(merged, tmp)
    return merged
