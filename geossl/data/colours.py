"""Colours of classes on maps: land-cover colours where a name says what it is."""

from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.colors import to_hex

#: Colours for class names containing these words (first match wins).
LAND_COVER_COLOURS: tuple[tuple[tuple[str, ...], str], ...] = (
    (('ocean', 'sea', 'marine'), '#08306b'),
    (('water', 'river', 'lake', 'bay', 'lagoon'), '#4292c6'),
    (('marsh', 'wetland', 'swamp'), '#41ae76'),
    (('forest', 'wood', 'tree'), '#00441b'),
    (('crop', 'arable', 'agricultur', 'farm'), '#fec44f'),
    (('pasture', 'grass', 'meadow', 'herbaceous'), '#a1d99b'),
    (('beach', 'sand', 'dune', 'bare'), '#f6e8c3'),
    (('built', 'urban', 'residential', 'industrial', 'town', 'highway'), '#cb181d'),
)


def class_colours(names: Sequence[str]) -> list[str]:
    """One ``#rrggbb`` colour per class: by name where it is land cover, else tab20.

    Args:
        names: class names.

    Returns:
        The colours, distinct where names do not say otherwise.
    """
    palette = colormaps['tab20']
    colours = []
    for position, name in enumerate(names):
        lower = name.lower()
        known = [
            colour
            for words, colour in LAND_COVER_COLOURS
            if any(w in lower for w in words)
        ]
        colours.append(known[0] if known else to_hex(palette(position % 20)))
    return colours
