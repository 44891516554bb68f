"""Which exported variant ships: the fastest on the front, its metrics all within a tolerance of the best.

Each variant (float32, float16, int8 dynamic, int8 full, at one input size or several) has been
run over the whole validation split through posterq's runtime with its own per-genre thresholds.
Agreement with Keras is kept in the report as information only: the metrics are what users get.

The front and the rule read the same figures the same way (times within SAME_SPEED are equally
fast for both), and the rule picks among the front's variants only, so the variant that ships is
on the front by construction, however noisy the timing run was.

The times are one CPU's: int8's lead over float depends on the CPU (cpu_note), so the bundle
records the CPU they came from, and the card says it.
"""

from posterq.cpu import describe, has_int8_dot_products

#: How far below the best variant's figure a variant may score and still ship.
TOLERANCE = {"macro_roc_auc": 0.003, "macro_average_precision": 0.006, "micro_f1": 0.006}
#: Variants this close in time (ms per poster) count as equally fast: one timing run does not
#: tell them apart, and a rerun of the same export must ship the same variant.
SAME_SPEED = 1.10

RULE = ("the fastest variant on the front (ms per poster on one core) whose macro ROC-AUC, macro AP and "
        "micro-F1 are each within " + ", ".join(f"{value} {name}" for name, value in TOLERANCE.items())
        + " of the best variant's, each variant with its own thresholds tuned on validation; variants "
        f"within {SAME_SPEED - 1:.0%} of each other's time count as equally fast, on the front and here, "
        "and among the equally fast the smallest file wins")


def cpu_note(facts: dict | None, machine: str | None = None) -> str:
    """What RULE's timings say about other CPUs: int8's lead depends on the CPU's int8 dot products.

    facts: posterq.cpu.cpu_facts() of the CPU the times were measured on (None: not recorded, and
    then `machine`, what was recorded instead, is named).
    """
    has = has_int8_dot_products(facts) if facts else None
    where = describe(facts) if facts else "a CPU" + (f" ({machine})" if machine else "")
    which = {True: "which has them: on a CPU without them int8 may be no faster than float16",
             False: "which has none of them: on a CPU with them int8 may gain more",
             None: "whose model and vector features were not recorded"}[has]
    return ("int8's lead over float16 depends on the CPU: int8 kernels gain most where the CPU has "
            "fast int8 dot products (AVX-512 VNNI, AVX-VNNI or AMX; on Arm, the dot-product and i8mm "
            f"extensions). These times were measured on {where}, {which}. "
            "`python -m bench.variants` times bundles side by side on yours; docs/benchmarks.md "
            "(int8 against float16: the CPU decides) has figures from CPUs with and without them.")


def metric(entry: dict, key: str) -> float:
    """A variant's figure for one metric; None (no genre had enough positives to score) counts as 0."""
    return entry["metrics"].get(key) or 0.0


def clearly_faster(a: dict, b: dict) -> bool:
    """True when a's time per poster is more than SAME_SPEED times below b's (not timing noise)."""
    return a["ms_per_poster_1_core"] * SAME_SPEED < b["ms_per_poster_1_core"]


def beats(a: dict, b: dict, keys=tuple(TOLERANCE)) -> bool:
    """True when a is as accurate as b on every metric and clearly faster, or as fast and more accurate."""
    if any(metric(a, key) < metric(b, key) for key in keys) or clearly_faster(b, a):
        return False
    return clearly_faster(a, b) or any(metric(a, key) > metric(b, key) for key in keys)


def on_front(variants: dict[str, dict], keys=tuple(TOLERANCE)) -> list[str]:
    """Names no other variant beats (see beats), fastest first."""
    front = [name for name, entry in variants.items()
             if not any(beats(other, entry, keys) for other in variants.values() if other is not entry)]
    return sorted(front, key=lambda name: (variants[name]["ms_per_poster_1_core"], name))


def choose_variant(variants: dict[str, dict], tolerance: dict[str, float] = TOLERANCE) -> dict:
    """Apply RULE to {name: {"metrics", "ms_per_poster_1_core", "size_bytes"}}; return the choice and why."""
    if not variants:
        raise ValueError("no variant to choose from")
    best = {key: max(metric(entry, key) for entry in variants.values()) for key in tolerance}
    # Whatever beats a variant within the tolerance is within it too, so the front always has one.
    within = [name for name, entry in variants.items()
              if all(metric(entry, key) >= best[key] - tolerance[key] for key in tolerance)]
    eligible = sorted(set(within) & set(on_front(variants, tuple(tolerance))),
                      key=lambda name: (variants[name]["ms_per_poster_1_core"], name))
    if not eligible:
        raise ValueError(f"no variant is within {tolerance} of the best figures {best}")
    fastest = variants[eligible[0]]
    fast = [name for name in eligible if not clearly_faster(fastest, variants[name])]
    shipped = min(fast, key=lambda name: (variants[name]["size_bytes"], name))
    return {"shipped": shipped, "rule": RULE, "best": best, "tolerance": dict(tolerance),
            "eligible": eligible,
            "why": f"{shipped} is the fastest (or as fast and smallest) of {', '.join(eligible)} "
                   f"({variants[shipped]['ms_per_poster_1_core']} ms per poster on one core), all on the "
                   "front and within the tolerance of the best variant's metrics"}
