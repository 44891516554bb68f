"""How posterq uses Celery, shared by the API (which sends tasks by name) and the workers.

Plain data, no celery import: the API and the workers each build their own Celery app from it.
"""

from posterq.config import Settings

#: The one Celery task the API enqueues (by name, so the API never imports worker code).
TASK_NAME = "posterq.classify_batch"


def celery_config(settings: Settings) -> dict:
    """Celery settings for posterq: late acks, no hoarding, redelivery after the visibility timeout."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Above the longest batch: a batch still running when this passes is handed to another
            # worker too (harmless, results are written once, but wasted work).
            "visibility_timeout": settings.visibility_timeout,
            # Sweep for a dead worker's unacknowledged batches every restore_interval seconds.
            "unacked_restore_interval": settings.restore_interval,
            "unacked_restore_throttle": 1,
        },
        # A batch is acknowledged after it ran, and given back if its process died meanwhile.
        "task_acks_late": True,
        # A batch still running after this is killed with its process and delivered again, which
        # counts towards max_redeliveries: a decode that hangs cannot hold a worker forever.
        "task_time_limit": settings.batch_time_limit,
        "task_reject_on_worker_lost": True,
        # One reserved batch per process: a slow worker does not sit on batches others could run.
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Results live in the job store, not in a Celery result backend.
        "task_ignore_result": True,
        "worker_send_task_events": False,
    }
