"""The trainers of every model (``sdgic train <stage>``). Uses ``codec`` and ``benchmark``;
neither imports it."""
