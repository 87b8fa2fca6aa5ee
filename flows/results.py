"""Where the tasks whose results a Retry reuses keep those results: a place every worker reaches.

`open-period` persists what `record-cycle` and `prepare-requests` return so that a Retry of a
failed run (the UI's button, or a flow-level retry) takes the batches that completed from
Prefect's result cache instead of building their forms again. Prefect keeps those results, by
default, under `PREFECT_LOCAL_STORAGE_PATH` (`~/.prefect/storage`) of the machine that ran the
task. With several workers the Retry may land on another machine, whose local storage does not
have them: Prefect then silently runs every batch again. Nothing is sent twice (the outbox skips
what was sent) but a national cycle's forms are all built again and the UI shows no "Cached".

The setting `result_storage` names a place every worker reaches:

- `""` (default): Prefect's own default (its `PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`, the
  server's default block, else the machine's local storage), which is fine on one machine;
- a filesystem path (a share mounted at the same place on every worker; relative paths are taken
  from the project directory): Prefect's `LocalFileSystem(basepath=...)`;
- `block:<block-type>/<block-name>` (e.g. `block:s3-bucket/baocao-results`): a storage block
  saved on the Prefect server, loaded by the worker when the task runs.

The setting is read when the flow runs, not when its module is imported: a deployed run imports
the flow module by entrypoint in the worker's process, so import time would work there too, but
`baocao` commands, `serve` and tests import the module once and run flows under settings that may
change afterwards; reading it with the rest of the configuration at each run keeps one rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from prefect import Task

from baocao.rules.config import ConfigError, Settings

BLOCK_PREFIX = "block:"

T = TypeVar("T", bound=Task[Any, Any])


def storage(settings: Settings) -> Path | str | None:
    """The result storage `settings.result_storage` names, as a task takes it: None for Prefect's
    default, an absolute `Path` (Prefect makes it a `LocalFileSystem`; a task refuses an unsaved
    block instance), a block slug (`type/name`, loaded when the task runs)."""
    value = settings.result_storage.strip()
    if not value:
        return None
    if value.startswith(BLOCK_PREFIX):
        slug = value[len(BLOCK_PREFIX):].strip()
        kind, _, name = slug.partition("/")
        if not kind or not name or "/" in name:
            raise ConfigError("config/settings.toml or BAOCAO_RESULT_STORAGE", "result_storage",
                              f"{value!r}: a block is named block:<block-type>/<block-name>, "
                              "e.g. block:s3-bucket/baocao-results")
        return slug
    return settings.resolve(Path(value).expanduser())


def shared(task: T, settings: Settings) -> T:
    """`task` persisting its result where `settings` say every worker reaches; unchanged if unset."""
    where = storage(settings)
    if where is None:
        return task
    return task.with_options(result_storage=where, persist_result=True)
