"""The one place where known, understood library noise is silenced; every other warning still shows.

Each filter below names one message, says why it is harmless here, and matches only that message,
so a new or real warning (a shape mismatch, a NaN loss, a data-loader problem) is printed as usual.
`install()` is called at the start of every `d2m` command (and of `make demo`); cell processes and
DDP workers re-run the command, so they install it too.
"""

from __future__ import annotations

import logging
import warnings

# Lightning prints this on every Trainer whose loggers do not include its own cloud service: an
# advertisement, not a diagnosis (we log to W&B and CSV by design).
_TIP = "💡 Tip: For seamless cloud logging"

# (message regex, category, why it is harmless)
WARNING_FILTERS: tuple[tuple[str, type[Warning], str], ...] = (
    # pytorch_lightning 2.6's own pytree helper builds a `LeafSpec`, which torch 2.13 deprecates; the
    # helper is Lightning's code, not ours, and behaves the same until Lightning moves on.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, "Lightning's use of torch internals"),
    # The composition GAN carries the trained style extractor and the decomposition networks frozen
    # (requires_grad off) and in eval mode, so their dropout stays off and their statistics fixed
    # while the GAN trains; Lightning counts those modules and warns in case it was an accident.
    (r"Found \d+ module\(s\) in eval mode at the start of training", Warning, "frozen upstream networks"),
)


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


def install() -> None:
    """Add the filters; calling it again adds nothing twice."""
    for pattern, category, _why in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=pattern, category=category)  # replaces an identical filter
    lightning = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropTip) for f in lightning.filters):
        lightning.addFilter(_DropTip())
