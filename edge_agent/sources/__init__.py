"""Where samples enter: one :class:`~edge_agent.sources.base.Source` per sensor kind."""
