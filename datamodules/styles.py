"""The dance styles d2m-lab knows, in the original release's class order (zumba, ballet, hiphop).

Keeping that order everywhere means label indices line up with a style classifier imported from
the original release. Other styles are accepted where a caller names them explicitly.
"""

KNOWN_STYLES: tuple[str, ...] = ("zumba", "ballet", "hiphop")
