"""The instrument of tests/test_testing_userproject.py, not part of what a
user writes: making any Redis client (sync or asyncio) appends a line to
the file $USERPROJECT_REDIS_LOG and raises, so a run that tried to reach
Redis is seen even when mizan-hub swallows the error."""

import os
import traceback


def install() -> None:
    import redis
    import redis.asyncio

    log = os.environ.get("USERPROJECT_REDIS_LOG")

    def refuse(self, *args, **kwargs):
        if log:
            with open(log, "a") as f:
                f.write(f"{type(self).__module__}.{type(self).__name__} made at "
                        f"{traceback.format_stack(limit=4)[0].strip()}\n")
        raise redis.ConnectionError("no Redis in this test project")

    redis.Redis.__init__ = refuse
    redis.asyncio.Redis.__init__ = refuse
