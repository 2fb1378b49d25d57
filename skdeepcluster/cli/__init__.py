"""Command line interface: ``skdeepcluster`` / ``python -m skdeepcluster``.

Two subcommands:

* ``demo`` (also what runs without arguments): AutoencoderKMeans against
  k-means on scikit-learn's digits, as a table of ACC, NMI, ARI and fit time;
* ``cluster DATA``: cluster a file (``.npy``, ``.npz``, ``.csv``, IDX), data
  read on demand (Parquet, Zarr, a folder of ``.npy`` shards) or a named data
  set (``digits``, ``mnist``, ``fashion-mnist``) and write labels,
  embedding, model, a JSON summary and plots to an output folder, which is
  replaced as a whole once every file is written (see ``_output._OutputFolder``).

User errors (bad files, shapes, options, an unusable output folder) and
input/output errors end with one line ``skdeepcluster: error: ...`` on stderr
and exit status 2.

The modules, each readable alone: ``_main`` (``main``: parse, dispatch, exit
status), ``_args`` (the argument parser and option checks), ``_params`` (the
options as ``AutoencoderKMeans`` parameters), ``_readers`` (DATA: ``.npy``,
``.npz``, CSV, IDX, named data sets; Parquet, Zarr and shards through
``skdeepcluster._sources``), ``_output`` (the output folder, replaced
in one step), ``_commands`` (the ``cluster`` and ``demo`` commands, plots and
summary) and ``_common`` (the program name, ``CLIError``, message helpers).
"""

from ._main import main

__all__ = ["main"]
