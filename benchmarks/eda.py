"""``datatools eda`` against the floor (decoding every image once with OpenCV), and its memory for N and 4N images.

In one run, for the image list (N, default the medical-waste train split in ../shared/data) and for the same
list repeated (4N, 16N: every image and annotation listed again under new ids):

1. the floor: a fresh Python process that decodes every listed image once with ``cv2.imread`` over a
   ``multiprocessing`` pool of ``--workers`` processes (wall time of the whole process, and of the decoding alone);
2. ``datatools eda --workers W`` as a fresh process: wall time, and peak memory both of its largest process
   (RSS, from ``getrusage`` of a child that waits for it) and of its whole process tree (PSS summed over the
   processes, sampled from /proc every 20 ms in one more run, since sampling costs CPU);
3. ``run_eda`` in a fresh process, once per list, for the time of each phase (records, the image pass, tables,
   figures, write): the image pass, the part that scales with the images, is compared with the decoding of
   the floor run just before it.

Each timing is the best of ``--repeat`` runs, floor and eda interleaved, and the median of the ratios of
back-to-back pairs; CPU seconds (user + system, all processes) are given too, since they move less than wall
time on a shared machine. The lists are the split repeated ``--times`` times (default 1, 4, 16: 512, 2,048 and
8,192 images). Targets (issue 14): eda wall time within 1.5x of the floor at 8,192 images, at most 1.5 s above
it at 512 (the fixed cost); peak RSS for 4x the images within 1.2x. The memory of the parsed annotation file
(``json.load`` of it in a fresh interpreter, less one that parsed nothing) is given beside it: every reader of a
COCO file holds it, so the RSS beyond it is what eda itself adds.

Python is run as an installed package runs, with its bytecode cached (``PYTHONDONTWRITEBYTECODE`` is cleared for
the commands measured and each list is run once before the timed runs), so start-up is not compiling sources.

Run from the repository root::

    .venv/bin/python benchmarks/eda.py [--ann A --images DIR] [--workers 2] [--repeat 3] [--times 1 4 16] [--pss]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPLIT = REPO_ROOT / "../shared/data/medical_waste/train"

FLOOR = """
import sys, json, time, multiprocessing as mp, cv2
def decode(path):
    return cv2.imread(path) is not None
if __name__ == "__main__":
    ann, root, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths = [root + "/" + img["file_name"] for img in json.load(open(ann))["images"]]
    start = time.perf_counter()
    with mp.get_context("fork").Pool(workers) as pool:
        ok = sum(pool.imap(decode, paths, chunksize=4))
    print(json.dumps({"decode_s": time.perf_counter() - start, "images": ok}))
"""

#: the memory of the parsed annotation file alone: json.load of it, less an interpreter that parsed nothing
PARSED = "import json, sys; data = json.load(open(sys.argv[1])) if sys.argv[1] != '-' else None"

PHASES = """
import json, sys
from datatools.eda import run_eda
r = run_eda(sys.argv[1], sys.argv[2], out=sys.argv[3], workers=int(sys.argv[4]), progress=False, overwrite=True)
print(json.dumps(r.timings))
"""


def repeated(ann: Path, root: Path, times: int, out: Path) -> Path:
    """A COCO file listing every image and annotation ``times`` times (new ids, same files)."""
    coco = json.loads(ann.read_text())
    images, anns = [], []
    n_img = max(int(i["id"]) for i in coco["images"]) + 1
    n_ann = max((int(a["id"]) for a in coco["annotations"]), default=0) + 1
    for k in range(times):
        images += [{**img, "id": img["id"] + k * n_img} for img in coco["images"]]
        anns += [{**a, "id": a["id"] + k * n_ann, "image_id": a["image_id"] + k * n_img} for a in coco["annotations"]]
    out.write_text(json.dumps({**coco, "images": images, "annotations": anns}))
    return out


def _tree_pss_kib(pid: int) -> int:
    """Summed PSS of ``pid`` and its descendants: pages shared after fork are split between the processes, so
    the sum is the memory the command really holds (a sum of RSS would count the parent's pages once per
    worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_measured(cmd: list[str], sample_pss: bool = False) -> dict[str, Any]:
    """Wall time, exit code, output, and (``sample_pss``) the peak summed PSS of the process tree, sampled every
    20 ms (sampling costs CPU, so timed runs do not sample)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_pss_kib(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_pss:
        sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    if sample_pss:
        sampler.join()
    return {"wall_s": wall, "rc": proc.returncode, "stdout": stdout, "stderr": stderr,
            "peak_tree_mib": peak_tree / 1024}


def run_with_rusage(cmd: list[str], sample_pss: bool = False) -> dict[str, Any]:
    """:func:`run_measured` in a forked child that waits for ``cmd``, so the child's ``RUSAGE_CHILDREN`` covers
    only this command: peak RSS of its largest process and the CPU seconds of all its processes."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run, report, exit
        os.close(read)
        import resource

        result = run_measured(cmd, sample_pss)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["largest_mib"] = usage.ru_maxrss / 1024
        result["cpu_s"] = usage.ru_utime + usage.ru_stime
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return dict(json.loads(b"".join(chunks)))


def bench(ann: Path, root: Path, workers: int, repeat: int, tmp: Path, label: str, pss: bool) -> dict[str, Any]:
    py = sys.executable
    floor_cmd = [py, "-c", FLOOR, str(ann), str(root), str(workers)]
    eda_cmd = [py, "-m", "datatools", "eda", "--ann", str(ann), "--images", str(root), "--out", str(tmp / "eda"),
               "--workers", str(workers), "--no-progress", "--overwrite"]
    phases_cmd = [py, "-c", PHASES, str(ann), str(root), str(tmp / "eda_phases"), str(workers)]
    floors, edas = [], []
    subprocess.run(eda_cmd, capture_output=True, check=True)  # once untimed: bytecode written, files in the page cache
    for _ in range(repeat):  # floor and eda back to back: pairs see the same load
        f = run_with_rusage(floor_cmd)
        assert f["rc"] == 0, f["stderr"]
        f["decode_s"] = json.loads(f["stdout"])["decode_s"]
        floors.append(f)
        e = run_with_rusage(eda_cmd)
        assert e["rc"] == 0, e["stderr"][-3000:]
        edas.append(e)
    # the phases once, after one more floor (the pass is compared with the decoding just before it)
    f = run_with_rusage(floor_cmd)
    f["decode_s"] = json.loads(f["stdout"])["decode_s"]
    floors.append(f)
    phases = json.loads(subprocess.run(phases_cmd, capture_output=True, text=True, check=True).stdout.strip()
                        .splitlines()[-1])
    memory = run_with_rusage(eda_cmd, sample_pss=True) if pss else None
    parsed = run_with_rusage([py, "-c", PARSED, str(ann)])["largest_mib"] - run_with_rusage(
        [py, "-c", PARSED, "-"])["largest_mib"]
    assert memory is None or memory["rc"] == 0, memory["stderr"][-3000:]
    best = {k: min(r[k] for r in floors) for k in ("wall_s", "decode_s", "cpu_s")}
    best_eda = {k: min(r[k] for r in edas) for k in ("wall_s", "cpu_s")}
    paired = statistics.median(e["wall_s"] / f["wall_s"] for f, e in zip(floors, edas, strict=False))
    row = {
        "list": label, "images": json.loads(floors[0]["stdout"])["images"], "workers": workers,
        "floor_wall_s": round(best["wall_s"], 3), "floor_decode_s": round(best["decode_s"], 3),
        "eda_wall_s": round(best_eda["wall_s"], 3), "eda_vs_floor": round(best_eda["wall_s"] / best["wall_s"], 2),
        "eda_vs_floor_paired_median": round(paired, 2),
        "eda_minus_floor_s": round(best_eda["wall_s"] - best["wall_s"], 2),
        "pass_s": phases["pass"], "pass_vs_decode": round(phases["pass"] / f["decode_s"], 2),
        "floor_cpu_s": round(best["cpu_s"], 3), "eda_cpu_s": round(best_eda["cpu_s"], 3),
        "eda_vs_floor_cpu": round(best_eda["cpu_s"] / best["cpu_s"], 2),
        "phases_s": phases,
        "peak_rss_largest_mib": round(max(e["largest_mib"] for e in [*edas, *([memory] if memory else [])]), 1),
        "peak_pss_tree_mib": round(memory["peak_tree_mib"], 1) if memory else None,
        "parsed_json_mib": round(parsed, 1),
    }
    row["rss_beyond_parsed_mib"] = round(row["peak_rss_largest_mib"] - parsed, 1)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ann", type=Path, default=DEFAULT_SPLIT / "_annotations.coco.json")
    parser.add_argument("--images", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--times", type=int, nargs="+", default=[1, 4, 16],
                        help="list sizes, as multiples of the split (1 4 16: 512, 2,048 and 8,192 images)")
    parser.add_argument("--pss", action="store_true", help="one more eda run per list, sampling the tree's PSS")
    args = parser.parse_args()
    if not args.ann.is_file():
        sys.exit(f"{args.ann}: not found (pass --ann and --images)")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package runs: bytecode cached, not compiled
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_eda_") as tmp_dir:
        tmp = Path(tmp_dir)
        rows = []
        for times in args.times:
            ann = args.ann.resolve() if times == 1 else repeated(args.ann, args.images, times, tmp / f"x{times}.json")
            rows.append(bench(ann, args.images.resolve(), args.workers, args.repeat, tmp, f"{times}N", args.pss))
    print(f"load average at end: {os.getloadavg()}")
    print()
    print("| list | images | floor (process / decode) | eda | eda / floor (best; paired median) | eda - floor "
          "| image pass / decode | CPU: floor, eda (ratio) | peak RSS, largest process | peak PSS, process tree |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tree = f"{r['peak_pss_tree_mib']:.0f} MiB" if r["peak_pss_tree_mib"] else "-"
        print(f"| {r['list']} | {r['images']} | {r['floor_wall_s']:.2f} s / {r['floor_decode_s']:.2f} s "
              f"| {r['eda_wall_s']:.2f} s | {r['eda_vs_floor']:.2f}x; {r['eda_vs_floor_paired_median']:.2f}x "
              f"| {r['eda_minus_floor_s']:.2f} s | {r['pass_vs_decode']:.2f}x "
              f"| {r['floor_cpu_s']:.1f} s, {r['eda_cpu_s']:.1f} s ({r['eda_vs_floor_cpu']:.2f}x) "
              f"| {r['peak_rss_largest_mib']:.0f} MiB | {tree} |")
    for a, b in zip(rows, rows[1:], strict=False):
        print(f"peak RSS {b['list']} / {a['list']}: largest process "
              f"{b['peak_rss_largest_mib'] / a['peak_rss_largest_mib']:.2f}x (target <= 1.2x); beyond the parsed "
              f"annotation file ({a['parsed_json_mib']:.0f} and {b['parsed_json_mib']:.0f} MiB of json.load): "
              f"{b['rss_beyond_parsed_mib'] / a['rss_beyond_parsed_mib']:.2f}x")
    for r in rows:
        print(f"{r['list']}: phases {r['phases_s']}")


if __name__ == "__main__":
    main()
