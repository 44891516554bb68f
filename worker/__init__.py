"""posterq workers: a Celery app whose processes each hold one LiteRT interpreter."""
