"""Memory: peak RSS of the API's processes and of the worker's processes holding the model.

    .venv/bin/python -m bench.memory ../shared/datasets/movie-posters/Images [--quick] [--posters N]

Starts `posterq api` and one `posterq worker` with their default settings (bench.service.Service,
private key prefix and queue on POSTERQ_REDIS_URL), runs one upload job of the posters and some
POST /analysis/ calls, then reads VmHWM (peak RSS) and VmRSS from /proc/<pid>/status of the gunicorn
master (the `posterq api` process) and its workers, and of the Celery main process (`posterq worker`)
and its pool children, and whether any of them mapped TensorFlow (/proc/<pid>/maps). Linux only.
Prints the figures as JSON. bench.all calls `measure`.
"""

import sys
import tempfile
from pathlib import Path

from bench.service import Service, analysed, bench_settings, client, provenance, run_alone
from posterq.config import DEFAULT_MODEL_DIR

TARGETS_MB = {"worker": 250, "api": 120}  # from the issue: RSS of one process of each role
TENSORFLOW_LIBRARIES = ("libtensorflow_framework", "_pywrap_tensorflow", "libtensorflow_cc")


def children(pid: int) -> list[int]:
    """Every descendant of pid, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = sorted(parents.get(todo.pop(), []))
        found += kids
        todo += kids
    return found


def process_memory(pid: int) -> dict:
    """Peak and current RSS in MB of one process, its command, and whether it mapped TensorFlow."""
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    maps = Path(f"/proc/{pid}/maps").read_text()
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return {"pid": pid, "command": command[:120],
            "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
            "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
            "rss_anon_mb": round(int(status.get("RssAnon", "0 kB").split()[0]) / 1024, 1),
            "rss_file_mb": round(int(status.get("RssFile", "0 kB").split()[0]) / 1024, 1),
            "tensorflow_loaded": any(name in maps for name in TENSORFLOW_LIBRARIES),
            "litert_loaded": "_pywrap_tensorflow_interpreter_wrapper" in maps or "litert" in maps.lower()}


def role(root: int, main_name: str, child_name: str) -> dict:
    """The root process and its descendants, and the largest peak among them."""
    processes = [{"role": main_name, **process_memory(root)}]
    processes += [{"role": child_name, **process_memory(pid)} for pid in children(root)]
    return {"processes": processes, "largest_peak_rss_mb": max(p["peak_rss_mb"] for p in processes),
            "largest_rss_mb": max(p["rss_mb"] for p in processes),
            "tensorflow_loaded": any(p["tensorflow_loaded"] for p in processes)}


def measure(posters: list[Path], quick: bool) -> dict:
    """Peak RSS per process of a default API and a default worker after a job and /analysis/ calls."""
    settings = bench_settings("memory", model=str(DEFAULT_MODEL_DIR))
    calls = posters[: 8 if quick else 32]
    produced = provenance()
    with (tempfile.TemporaryDirectory(prefix="posterq-memory-") as tmp,
          Service(settings, Path(tmp)) as service):
        worker = service.start_worker()
        job = service.run_job(Path(tmp), posters, upload=True)
        with client(service.url, timeout=120) as http:
            answered = sum(analysed(http, path.read_bytes()) for path in calls)
        api = role(service.api.pid, "gunicorn master", "gunicorn worker")
        workers = role(worker.pid, "celery main", "celery pool child")
    targets = [{"target": f"{name} process peak RSS under {limit} MB (largest process of the role)",
                "limit": limit, "measured": figures["largest_peak_rss_mb"],
                "met": figures["largest_peak_rss_mb"] < limit}
               for name, limit, figures in (("worker", TARGETS_MB["worker"], workers),
                                            ("API", TARGETS_MB["api"], api))]
    targets.append({"target": "neither API nor worker processes load TensorFlow", "limit": False,
                    "measured": api["tensorflow_loaded"] or workers["tensorflow_loaded"],
                    "met": not (api["tensorflow_loaded"] or workers["tensorflow_loaded"])})
    return {"name": "memory",
            "figures": {"api": api, "worker": workers,
                        "load": {"upload_job": {k: job[k] for k in ("posters", "ok", "errors", "seconds",
                                                                     "posters_per_second", "exactly_once")},
                                 "analysis_calls": len(calls), "analysis_ok": answered}},
            "settings": {"api_and_worker": "defaults", "model": str(DEFAULT_MODEL_DIR)},
            "provenance": produced,
            "targets": targets,
            "notes": ["VmHWM (peak RSS) and VmRSS from /proc/<pid>/status, read after the load while the "
                      "processes still ran; RSS counts shared pages (the model file, libraries) in every "
                      "process that maps them",
                      "api: the `posterq api` process is the gunicorn master, its children the workers; "
                      "worker: the `posterq worker` process is Celery's main process, its children the "
                      "pool processes, each with its own interpreters",
                      "TensorFlow detected by its shared libraries in /proc/<pid>/maps",
                      "rss_anon_mb (heap: tensors, arenas) and rss_file_mb (mapped files: libraries, model) "
                      "split the current RSS, to show where a worker's memory goes"]}


if __name__ == "__main__":
    sys.exit(run_alone(measure, __doc__, 256, 32))
