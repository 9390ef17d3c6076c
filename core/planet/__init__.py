"""PlanetScope catalogue, perspective groups and orders (the ``planet`` SDK, imported lazily)."""
