"""The service domain, one module per concept: `keys` (statuses and Redis key names, no redis),
`records` (job records), `schedule` (the fair queue), `batches` (claims, give-back and results of
batch tasks), `window` (a folder job's next posters), `ledger` over `database` (jobs and results
in SQL), `admission` (queue limits), `pools` (model pools), `stats` (heartbeats, counters and
histograms), `broker` (the Celery side: settings, batch tokens, queue depth), and
`store.JobStore`, which holds the connections with the parts over them.

Nothing is imported here, so `from posterq.jobs.keys import JobStatus` loads no Redis client.
"""
