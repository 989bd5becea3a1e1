"""The collaborators a handler needs, built lazily once per container (tests build their own)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jobline.dal import RunTable
from jobline.runs import RunStarter

if TYPE_CHECKING:
    from jobline.catalog import Catalog
    from jobline.settings import Settings


@dataclass(frozen=True)
class Deps:
    settings: Settings
    catalog: Catalog
    table: RunTable
    starter: RunStarter
    session: Any

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog, session: Any = None) -> Deps:
        if session is None:
            import boto3  # here, not at the top: a handler's import stays light (docs/PERFORMANCE.md)

            session = boto3.session.Session()
        table = RunTable(session.client("dynamodb"), settings.run_table_name)
        starter = RunStarter(settings, table, session.client("stepfunctions"), session.client("s3"))
        return cls(settings=settings, catalog=catalog, table=table, starter=starter, session=session)

    def client(self, service: str) -> Any:
        """A boto3 client, made on first use (most handlers need only a few services)."""
        return _client(self.session, service)


@lru_cache(maxsize=32)
def _client(session: Any, service: str) -> Any:
    return session.client(service)


@lru_cache(maxsize=1)
def get_deps() -> Deps:
    from jobline.catalog import cached_catalog
    from jobline.settings import get_settings

    settings = get_settings()
    return Deps.build(settings, cached_catalog(settings.catalog_path))
