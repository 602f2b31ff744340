"""Plain networks, pluggable loss terms, and the three LightningModules that train them."""
