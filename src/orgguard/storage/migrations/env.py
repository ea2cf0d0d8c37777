"""Only for developers' ``alembic`` commands, such as a new revision with
``alembic revision --autogenerate -m "..."`` run with an ``alembic.ini`` whose
``script_location`` is this folder and ``ORGGUARD_DATABASE_URL`` set. orgguard
itself migrates through ``orgguard.storage.migrate`` (``orgguard db upgrade``).
"""

from __future__ import annotations

from alembic import context

from orgguard.settings import Settings
from orgguard.storage.database import make_engine
from orgguard.storage.schema import metadata

engine = make_engine(Settings().database_url)
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
