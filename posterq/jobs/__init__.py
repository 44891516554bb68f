"""The job store, split by concept: `schema` (statuses and key names, no redis), `jobs` (job
records), `batches` (the worker side), `stats` (heartbeats, and the names of every counter and
histogram), `broker` (the Celery side: settings, batch tokens, queue depth), and `store.JobStore`,
which holds one Redis connection with the three parts over it.

Nothing is imported here, so `from posterq.jobs.schema import JobStatus` loads no Redis client.
"""
