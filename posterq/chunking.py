"""Chunk planning: cutting a pick of posters into jobs that fit the server's limits.

`posterq submit` plans with plan_chunks; the page (api/static/plan.js) plans the same way with
the same numbers, which it reads from GET /limits (part_overhead_bytes, request_overhead_bytes).
"""

#: Bytes counted for each file's multipart part beyond its own (boundary, headers, its name).
PART_OVERHEAD = 512
#: Bytes of a request kept free of files (the rest of the body, and names longer than usual),
#: so that a chunk never trips the request limit.
REQUEST_SLACK = 64 * 1024


def plan_chunks(sizes: list[int], max_posters: int, max_bytes: int) -> list[list[int]]:
    """Split files (by index, with their sizes) into jobs under both limits, keeping their order."""
    budget = max(1, max_bytes - REQUEST_SLACK)
    chunks, current, used = [], [], 0
    for index, size in enumerate(sizes):
        cost = size + PART_OVERHEAD
        if current and (len(current) >= max_posters or used + cost > budget):
            chunks.append(current)
            current, used = [], 0
        current.append(index)
        used += cost
    if current:
        chunks.append(current)
    return chunks
