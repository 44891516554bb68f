#!/usr/bin/env bash
# One N-poster directory job over HTTP to `make serve`, for each worker count; checks every poster
# was classified exactly once and prints posters per second (submit to done, as the API times it).
#
#   bash bench/serve_job.sh ../shared/datasets/movie-posters/Images [COUNT=1000] [WORKERS="1 2"]
#
# The first COUNT files (sorted) are copied to a temporary data root; Redis must answer (or
# redis-server be installed) as for `make serve`. Prints one JSON line per run.
set -euo pipefail
src=${1:?usage: bench/serve_job.sh POSTER_FOLDER [COUNT] [WORKERS]}
count=${2:-1000}
workers=${3:-"1 2"}
port=${PORT:-8011}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/posterq-serve-job.XXXXXX)
serve=
stop_serve() { [ -z "$serve" ] || { kill -INT -- -"$serve" 2>/dev/null || true; wait "$serve" 2>/dev/null || true; }; serve=; }
trap 'stop_serve; rm -rf "$work"' EXIT
root="$work/posters"
mkdir "$root"
mapfile -t names < <(ls "$src" | sort | head -n "$count")
for name in "${names[@]}"; do cp "$src/$name" "$root/"; done
api="http://127.0.0.1:$port"
for n in $workers; do
    if curl -sf "$api/healthz" >/dev/null; then echo "something already listens on port $port" >&2; exit 1; fi
    setsid make -s serve WORKERS="$n" PORT="$port" DATA_ROOTS="$root" >"$work/serve.log" 2>&1 &
    serve=$!
    for _ in $(seq 600); do curl -sf "$api/readyz" >/dev/null && break; sleep 0.2; done
    job=$(curl -sf -H 'Content-Type: application/json' -d "{\"directory\": \"$root\", \"recursive\": true}" "$api/jobs")
    id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$job")
    while :; do
        state=$(curl -sf "$api/jobs/$id?limit=1")
        python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["status"] not in ("done","failed"))' <<<"$state" && break
        sleep 0.5
    done
    curl -sf -o "$work/results.csv" "$api/jobs/$id/results?format=csv"
    STATE="$state" python3 - "$n" "$count" "$work/results.csv" <<'PY'
import csv, json, os, sys
workers, count, results = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
job = json.loads(os.environ["STATE"])
rows = list(csv.DictReader(open(results)))
paths = [row["path"] for row in rows]
ok = len(rows) == count and len(set(paths)) == count and job["done"] + job["failed"] == count
print(json.dumps({"workers": workers, "posters": count, "status": job["status"], "classified": job["done"],
                  "failed": job["failed"], "rows": len(rows), "exactly_once": ok,
                  "elapsed_s": job["elapsed_s"], "posters_per_second": job["posters_per_second"],
                  "model": job.get("model")}))
PY
    stop_serve
    sleep 1
done
