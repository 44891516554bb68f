"""The service domain, one module per concept: `keys` (statuses and Redis key names, no redis),
`records` (job records), `fair_queue` (which waiting posters are claimed next), `claims` (the
claims registry: batch lists, attempts, give-back, poison, results of batch tasks and the workers'
locks: where a change to recovery goes), `scripts` (their Lua, in `lua/*.lua`), `window` (a
folder job's next posters), `ledger` over `database` (jobs and results in SQL), `admission` (queue
limits), `pools` (model pools), `stats` (heartbeats, counters and histograms), `memory` (how full
Redis is), `broker` (the Celery side: settings, batch tokens, queue depth), `redis_errors`
(Redis's errors, for callers with no Redis client), and `store.JobStore`, which holds the
connections with the parts over them.

Nothing is imported here, so `from posterq.jobs.keys import JobStatus` loads no Redis client.
"""
