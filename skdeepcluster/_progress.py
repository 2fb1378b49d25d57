"""Progress bars for the stages of a fit (tqdm), shown only when ``verbose`` asks."""

from __future__ import annotations

import contextlib


class _NoBar:
    """Stands in for a bar when ``verbose`` is off: every call does nothing."""

    def update(self, n=1):
        pass


@contextlib.contextmanager
def stage_bar(desc: str, total: int, verbose, unit: str = "step"):
    """A tqdm bar for one stage of a fit when ``verbose``, else a silent stand-in.

    The bar is closed when the block ends, also on an error. tqdm writes to
    stderr, so the output of a program that prints its results is unchanged.

    Parameters
    ----------
    desc : str
        Name of the stage, the bar's label.
    total : int
        Units of work of the stage (1 for a stage done in one call).
    verbose : int or bool
        Whether to show the bar.
    unit : str, default='step'
        Name of a unit of work.

    Yields
    ------
    bar : tqdm-like
        Its ``update(n)`` advances the bar.
    """
    if not verbose:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, leave=True)
    try:
        yield bar
    finally:
        bar.close()
