"""Shared test settings."""

import os

import pytest
import torch

# Optuna's reusable sampler test cases run in tests/integrations: rewrite their asserts for readable failures.
pytest.register_assert_rewrite("optuna.testing.pytest_samplers")

# Tests run two workers on two cores: one thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


# Shared database servers on this machine. Each test gets a database of its own (created here, dropped
# afterwards), so concurrent test workers and other users of the servers never see each other's tables.
SERVERS = {
    "postgresql": os.environ.get("AUTOML_META_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("AUTOML_META_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


@pytest.fixture(params=sorted(SERVERS))
def server_url(request):
    """The URL of a fresh, empty database on the PostgreSQL or the MariaDB server (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    admin_url = sa.make_url(SERVERS[request.param])
    name = f"automl_meta_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(
            f"{request.param} server at {admin_url.render_as_string()} is unreachable: {str(exc.orig).splitlines()[0]}"
        )
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        if request.param == "postgresql":
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'experience.db'}"
