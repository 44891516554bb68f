"""The image's HEALTHCHECK: an API container answers /healthz; a worker container has a fresh heartbeat.

    docker inspect --format '{{.State.Health.Status}}' CONTAINER     # Docker runs this every 10 s

The role and its options come from the container's main process (PID 1: `posterq api --host H
--port P` or `posterq worker --hostname NAME`), so one image serves both roles and no port or
name is written twice. A worker is healthy while its heartbeat key lives in Redis: its process
runs, reaches Redis, and its heartbeat thread has not stalled. Exit 0 healthy, 1 not (the reason
on stderr, which `docker inspect` shows).
"""

import socket
import sys
import urllib.request


def main_command() -> list[str]:
    """PID 1's arguments."""
    with open("/proc/1/cmdline", "rb") as handle:
        return [arg.decode(errors="replace") for arg in handle.read().split(b"\0") if arg]


def option(args: list[str], names: tuple[str, ...], default: str) -> str:
    """The value of the first of `names` in args (`--name value` or `--name=value`)."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return default


def api_healthy(args: list[str]) -> str | None:
    """None when the API answers /healthz, else why not."""
    host = option(args, ("--host",), "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    url = f"http://{host}:{option(args, ('--port',), '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def worker_healthy(args: list[str]) -> str | None:
    """None when this worker's heartbeat is in Redis, else why not."""
    from celery.utils.nodenames import host_format

    from posterq.config import Settings
    from posterq.jobs.store import JobStore

    # `posterq worker` names itself posterq-<its pid>@<host> unless told; here its pid is 1.
    hostname = host_format(option(args, ("--hostname", "-n"), f"posterq-1@{socket.gethostname()}"))
    store = JobStore.from_settings(Settings.from_env())
    try:
        if store.client.exists(store.keys.worker(hostname)):
            return None
        return f"no heartbeat from {hostname} in Redis"
    except Exception as exc:  # noqa: BLE001 - any failure to ask is unhealthy, with its reason
        return f"Redis at {store.settings.redis_url} did not answer: {exc}"


def main() -> int:
    """Check the role PID 1 plays; 0 healthy, 1 not."""
    args = main_command()
    if "worker" in args:
        problem = worker_healthy(args)
    elif "api" in args:
        problem = api_healthy(args)
    else:
        problem = None  # another command (a shell, a one-off `posterq label`): nothing to check
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
