"""The CPU a speed figure comes from: its model name, the vector features a model's speed depends on.

A TFLite model's speed depends on more than the clock: float kernels use AVX2 and FMA, int8
kernels gain most where the CPU has fast int8 dot products (AVX-512 VNNI, AVX-VNNI, AMX; on Arm,
the dot-product and i8mm extensions). So every timing says which of these its CPU had.
"""

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
#: The flags, as /proc/cpuinfo names them, that change how fast LiteRT's kernels run.
VECTOR_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                   "amx_tile", "amx_int8", "asimd", "asimddp", "i8mm", "sve")
#: Features that give int8 kernels fast dot products (what int8's lead over float depends on).
INT8_DOT_PRODUCTS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
UNKNOWN = "unknown"


def cpu_facts(cpuinfo: str | None = None) -> dict:
    """{"model", "features", "cores"} from /proc/cpuinfo's text (read when not given); "features" is
    None where they cannot be read (no /proc/cpuinfo: not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {"model": platform.processor() or UNKNOWN, "features": None, "cores": os.cpu_count()}
    fields: dict[str, str] = {}
    cores = 0
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon:
            continue
        cores += key == "processor"
        fields.setdefault(key, value.strip())  # the first processor speaks for all
    # x86 says "model name" and "flags"; Arm says "Features" and, at most, "Hardware".
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": fields.get("model name") or fields.get("Hardware") or UNKNOWN,
            "features": [name for name in VECTOR_FEATURES if name in flags],
            "cores": cores or os.cpu_count()}


def has_int8_dot_products(facts: dict) -> bool | None:
    """True when the CPU has fast int8 dot products, False when it has not, None when unknown."""
    if facts.get("features") is None:
        return None
    return any(name in facts["features"] for name in INT8_DOT_PRODUCTS)


def describe(facts: dict | None) -> str:
    """One line for logs and cards, "AMD EPYC (avx2, fma; 2 cores)"; "a CPU not recorded" for None."""
    if not facts:
        return "a CPU not recorded"
    features = facts.get("features")
    shown = ("vector features unknown" if features is None
             else ", ".join(features) or "no vector feature of note")
    return f"{facts.get('model') or UNKNOWN} ({shown}; {facts.get('cores')} cores)"
