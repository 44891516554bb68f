"""The Lua scripts of posterq/jobs/lua/: each command file after the fair queue's shared functions.

Each file's header names its KEYS and ARGV by position. A script's named arguments travel as one
JSON object in ARGV[1] (args), so no list of statuses or templates is passed by position.
"""

import json
from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

#: The shared functions every command file is run after (enter, leave, count, queue, load ...).
PRELUDE = "fair_queue.lua"


@cache
def source(name: str) -> str:
    """A command's Lua: the shared functions, then the command file."""
    folder = resources.files("posterq.jobs") / "lua"
    return (folder / PRELUDE).read_text() + "\n" + (folder / name).read_text()


def register(client: redis.Redis, name: str) -> Script:
    """The command of posterq/jobs/lua/<name>, registered on a client (EVALSHA, loaded on demand)."""
    return client.register_script(source(name))


def args(**named) -> str:
    """A script's named arguments, as its ARGV[1] (cjson.decode'd in the script)."""
    return json.dumps(named)
