"""The job store, split by concept: `schema` (statuses and key names, no redis), `records` (jobs),
`batches` (the worker side), `stats` (heartbeats and metrics), `broker` (Celery settings), and
`store.JobStore`, which holds one Redis connection with the three parts over it.

Nothing is imported here, so `from posterq.jobs.schema import JobStatus` loads no Redis client.
"""
