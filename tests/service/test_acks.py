"""A task's ack or reject after its broker connection was lost ends nothing (posterq.worker.acks)."""

import pytest
from celery.worker.request import Request as CeleryRequest
from kombu.utils.imports import symbol_by_name

from posterq.jobs.broker import TASK_NAME
from posterq.worker.acks import Request
from posterq.worker.celery_app import create_celery


@pytest.fixture
def message_of_a_lost_connection(service_settings, redis_client):
    """A real batch token, received by kombu, whose connection then went the way a lost one goes."""
    app = create_celery(service_settings)
    app.loader.import_default_modules()  # posterq.worker.tasks, as a worker loads it
    queue = f"{service_settings.queue}.acks"
    app.send_task(TASK_NAME, queue=queue)
    with app.connection_for_read() as connection:
        message = connection.SimpleQueue(queue).get(timeout=10)
        # What Celery's recovery from a lost broker does to the old connection's channel: its pools
        # are dropped (kombu's Channel.close) and the transport forgets its address
        # (kombu's Connection._do_close_transport).
        transport = message.channel.connection
        message.channel._disconnect_pools()
        transport.client = None
        yield app, message, connection.connection_errors
        transport.client = connection  # so that the connection closes as usual


@pytest.mark.parametrize("settle", ["acknowledge", "reject"])
def test_an_ack_the_lost_connection_cannot_take_is_logged_and_the_message_kept(
        settle, message_of_a_lost_connection, redis_client, caplog):
    app, message, errors = message_of_a_lost_connection
    assert symbol_by_name(app.tasks[TASK_NAME].Request) is Request  # what the worker's requests are

    def request(cls):
        return cls(message, on_ack=message.ack_log_error, on_reject=message.reject_log_error, app=app,
                   task=app.tasks[TASK_NAME], connection_errors=errors)

    # Celery's own request lets kombu's AttributeError through: the worker's "Unrecoverable error".
    with pytest.raises(AttributeError):
        getattr(request(CeleryRequest), settle)()
    ours = request(Request)
    getattr(ours, settle)()
    assert ours.acknowledged
    assert "its broker connection was lost" in caplog.text
    # Nothing lost: the token is still in kombu's unacked hash, which puts it back on its queue.
    assert redis_client.hlen("unacked") == 1
