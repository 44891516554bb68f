"""The original design beside posterq: one poster per request, a new interpreter each time, same client.

    .venv/bin/python -m bench.original ../shared/datasets/movie-posters/Images [--quick] [--posters N] \
        [--clients 2] [--seconds 20]

Three servers are driven by the same client (`drive`: `--clients` threads, each POSTing the base64
text of a poster to URL/analysis/ in a loop for `--seconds`, cycling through the posters):

1. bench.original_server (Flask's threaded development server, as the original project ran)
   with the shipped model (models/effnet-lite0-posters/model.tflite);
2. the same server with the seed network (training/architectures.py, the original project's CNN)
   exported to TFLite float16, untrained: its size and input shape, hence its speed, are those of
   the trained one. It is built with TensorFlow once, in a subprocess, and cached in
   runs/cache/seed-fp16.tflite;
3. posterq's own POST /analysis/ (API and one worker with their default settings, via
   bench.service.Service, private key prefix and queue on POSTERQ_REDIS_URL).

Prints the figures as JSON. bench.all calls `measure`.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from bench.service import (
    ROOT,
    Service,
    bench_settings,
    chosen_posters,
    module_parser,
    provenance,
    run_threads,
)
from posterq.config import DEFAULT_MODEL_DIR
from tests.harness import ServiceProcess, free_port

SEED_CACHE = ROOT / "runs" / "cache" / "seed-fp16.tflite"
DEFAULT_CLIENTS = 2  # the cores of the development machine


def export_seed(path: str | Path) -> None:
    """Build the seed network untrained and write its float16 TFLite export to path (needs TensorFlow)."""
    from posterq.training.architectures import seed_network
    from posterq.training.export import to_tflite

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(to_tflite(seed_network(), "float16"))
    partial.replace(path)


def seed_model(cache: Path = SEED_CACHE) -> Path:
    """The cached seed float16 export, built in a subprocess (TensorFlow stays out of this process)."""
    if not cache.is_file():
        code = "import sys; from bench.original import export_seed; export_seed(sys.argv[1])"
        subprocess.run([sys.executable, "-c", code, str(cache)], cwd=ROOT, check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True)
    return cache


def model_facts(path: Path) -> dict:
    """Size in MB and input shape of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=str(path)).get_input_details()[0]["shape"]
    return {"file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "size_mb": round(path.stat().st_size / 1e6, 2), "input_shape": [int(v) for v in shape]}


def drive(url: str, posters: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` threads POST base64 posters to url/analysis/ in a loop for `seconds`; rate and latency."""
    texts = [base64.b64encode(data) for data in posters]
    latencies, failures, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + seconds
    finished = []

    def client(number: int) -> None:
        http = requests.Session()
        turn = number
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            try:
                response = http.post(url + "/analysis/", data=texts[turn % len(texts)],
                                     headers={"Content-Type": "text/plain"}, timeout=120)
                ok = response.ok and bool(response.json().get("result"))
            except (requests.RequestException, ValueError):
                ok = False
            latency = time.perf_counter() - sent
            with lock:
                latencies.append(1000 * latency)
                failures[0] += not ok
                finished.append(time.monotonic())
            turn += clients

    started = run_threads(clients, client)
    elapsed = (max(finished) if finished else time.monotonic()) - started
    return {"clients": clients, "requests": len(latencies), "failed": failures[0],
            "seconds": round(elapsed, 2), "posters_per_second": round(len(latencies) / elapsed, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None}


def _original(model: Path, posters: list[bytes], clients: int, seconds: float, log_dir: Path) -> dict:
    """Start bench.original_server on a model, warm it once, drive it, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServiceProcess(["--model", str(model), "--port", str(port)], None,
                            log_dir / f"original-{model.stem}.log", module="bench.original_server")
    try:
        server.wait_until(lambda: requests.get(url + "/healthz", timeout=2).ok, "the original server")
        drive(url, posters[:1], 1, 0.01)  # warm-up: imports and the first page-in of the file
        return drive(url, posters, clients, seconds)
    finally:
        server.stop(timeout=20)


def _posterq(posters: list[bytes], clients: int, seconds: float, log_dir: Path) -> dict:
    """posterq's API and one default worker, driven by the same client; keys removed afterwards."""
    with Service(bench_settings("original", model=str(DEFAULT_MODEL_DIR)), log_dir) as service:
        service.start_worker()
        drive(service.url, posters[:2], clients, 1.0)  # warm-up: each process loads its model
        return drive(service.url, posters, clients, seconds)


def measure(posters: list[Path], quick: bool, clients: int = DEFAULT_CLIENTS,
            seconds: float | None = None) -> dict:
    """Original server (shipped model, seed fp16) and posterq's /analysis/, same client; JSON-ready."""
    seconds = seconds or (5.0 if quick else 20.0)
    blobs = [path.read_bytes() for path in posters]
    shipped = DEFAULT_MODEL_DIR / "model.tflite"
    seed = seed_model()
    produced = provenance()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="posterq-original-") as tmp:
        runs["original_shipped"] = {**model_facts(shipped),
                                    **_original(shipped, blobs, clients, seconds, Path(tmp))}
        runs["original_seed_fp16"] = {**model_facts(seed),
                                      **_original(seed, blobs, clients, seconds, Path(tmp))}
        runs["posterq_analysis"] = {**model_facts(shipped), **_posterq(blobs, clients, seconds, Path(tmp))}
    ours = runs["posterq_analysis"]["posters_per_second"]
    ratio = {f"posterq_vs_{name}": round(ours / max(runs[name]["posters_per_second"], 1e-9), 2)
             for name in ("original_shipped", "original_seed_fp16")}
    return {"name": "original", "figures": {"runs": runs, "throughput_ratio": ratio},
            "settings": {"clients": clients, "seconds_per_run": seconds, "posters": len(posters),
                         "client": "each thread POSTs base64 text to /analysis/ in a loop for "
                                   "seconds_per_run, cycling through the posters (not each poster once)"},
            "provenance": produced,
            "targets": [],
            "notes": ["original server: Flask threaded dev server, a new LiteRT interpreter (default "
                      "threads) per request, posterq.imaging.load_input at the model's input size",
                      "seed fp16 is the untrained seed CNN exported with Optimize.DEFAULT + float16 "
                      "(same size and shape as trained, so the same speed)",
                      "posterq: `posterq api` and one `posterq worker` with default settings",
                      "warm-up before timing, not counted: one request to the original server, 1 s of "
                      "calls to posterq"]}


def main() -> int:
    """Run alone and print the figures as JSON."""
    parser = module_parser(__doc__, 16, 8)
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--seconds", type=float, default=None, help="per run (default 20, quick 5)")
    args = parser.parse_args()
    print(json.dumps(measure(chosen_posters(args), args.quick, args.clients, args.seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
