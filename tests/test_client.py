"""posterq.client's pure parts: how a folder is cut into jobs under the server's limits."""

from posterq.client import plan_chunks


def test_chunks_respect_both_limits():
    assert plan_chunks([10] * 5, max_posters=2, max_bytes=10**6) == [[0, 1], [2, 3], [4]]
    big = 40 * 1024
    assert plan_chunks([big, big, big], max_posters=10, max_bytes=64 * 1024 + 2 * big + 1024) == [[0, 1], [2]]
