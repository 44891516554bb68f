"""Which exported variant ships: the fastest whose metrics are all within a tolerance of the best.

Each variant (float32, float16, int8 dynamic, int8 full, at one input size or several) has been
run over the whole validation split through posterq's runtime with its own per-genre thresholds.
Agreement with Keras is kept in the report as information only: the metrics are what users get.
"""

#: How far below the best variant's figure a variant may score and still ship.
TOLERANCE = {"macro_roc_auc": 0.003, "macro_average_precision": 0.006, "micro_f1": 0.006}
#: Variants this close in time (ms per poster) count as equally fast: one timing run does not
#: tell them apart, and a rerun of the same export must ship the same variant.
SAME_SPEED = 1.10

RULE = ("the fastest variant (ms per poster on one core) whose macro ROC-AUC, macro AP and micro-F1 are "
        "each within " + ", ".join(f"{value} {name}" for name, value in TOLERANCE.items())
        + " of the best variant's, each variant with its own thresholds tuned on validation; variants "
        f"within {SAME_SPEED - 1:.0%} of the fastest time count as equally fast, and the smallest file wins")


def choose_variant(variants: dict[str, dict], tolerance: dict[str, float] = TOLERANCE) -> dict:
    """Apply RULE to {name: {"metrics", "ms_per_poster_1_core", "size_bytes"}}; return the choice and why."""
    if not variants:
        raise ValueError("no variant to choose from")

    def value(entry: dict, key: str) -> float:
        return entry["metrics"].get(key) or 0.0  # None: no genre had enough positives to score

    best = {key: max(value(entry, key) for entry in variants.values()) for key in tolerance}
    eligible = sorted((name for name, entry in variants.items()
                       if all(value(entry, key) >= best[key] - tolerance[key] for key in tolerance)),
                      key=lambda name: (variants[name]["ms_per_poster_1_core"], name))
    fastest = variants[eligible[0]]["ms_per_poster_1_core"]
    fast = [name for name in eligible if variants[name]["ms_per_poster_1_core"] <= SAME_SPEED * fastest]
    shipped = min(fast, key=lambda name: (variants[name]["size_bytes"], name))
    return {"shipped": shipped, "rule": RULE, "best": best, "tolerance": dict(tolerance),
            "eligible": eligible,
            "why": f"{shipped} is the fastest (or as fast and smallest) of {', '.join(eligible)} "
                   f"({variants[shipped]['ms_per_poster_1_core']} ms per poster on one core), all within "
                   "the tolerance of the best variant's metrics"}
